"""Wiring of the running service: persistence adapters, per-tenant parts, PBX connections."""
