"""m365pbx: one truth about who is reachable, across Microsoft 365 and the PBX."""

__version__ = "0.1.0"
