"""The HTTP API (FastAPI): workflows, versions, runs, health. The web UI mounts into the same app."""
