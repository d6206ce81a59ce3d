"""Shared helpers for the SaltOps test suite (see tests/conftest.py for the fixtures)."""
