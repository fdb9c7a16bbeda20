"""Placeholder: fixtures are added by the adapter work."""
