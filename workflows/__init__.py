"""The domain: a workflow is a Haystack pipeline plus Stackyard metadata, saved as immutable versions."""

import stackyard  # noqa: F401 - first: it turns Haystack telemetry off before anything imports haystack
