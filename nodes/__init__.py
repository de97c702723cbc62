"""The palette: node families the canvas offers, and the stores they write to."""

import stackyard  # noqa: F401 - first: it turns Haystack telemetry off before anything imports haystack
