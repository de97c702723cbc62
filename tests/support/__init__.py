"""Test helpers: a tiny offline chat model and a folder of mixed-format documents."""
