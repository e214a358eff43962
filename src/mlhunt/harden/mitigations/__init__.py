"""The built-in mitigations: ``NAME.yaml`` (what it is) beside ``NAME.py`` (what it does)."""
