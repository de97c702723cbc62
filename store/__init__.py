"""Persistence plumbing: engine and sessions, the compare-and-set, migrations."""
