"""Tests of the service wiring (src/m365pbx/service)."""
