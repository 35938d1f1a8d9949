"""`m365pbx demo`: the service against a local Microsoft 365 simulator, with people acting."""
