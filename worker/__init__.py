"""Celery workers: the app, thin tasks, the warm pipeline cache and the reaper."""

import stackyard  # noqa: F401 - first: it turns Haystack telemetry off before anything imports haystack
