"""Tests of workstation.store (a package, so its conftest does not shadow tests/conftest.py)."""
