"""m365sim: a simulator of the parts of Entra ID and Microsoft Graph that m365pbx uses."""

__version__ = "0.1.0"
