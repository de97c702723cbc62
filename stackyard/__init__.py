"""Stackyard: a low-code builder for Haystack LLM workflows.

The rooms live in top-level packages (``workflows``, ``nodes``, ``worker``, ``api``, ``ui``);
this package holds what they share: settings and the command line.

Importing it turns Haystack's usage telemetry off unless ``HAYSTACK_TELEMETRY_ENABLED`` is set:
Haystack reads the variable once, when it is first imported, and would otherwise contact an outside
analytics host from every process. The packages that import Haystack import this one first. Gradio's
usage analytics (``GRADIO_ANALYTICS_ENABLED``, read when a page is built) are off the same way.
"""

import os

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
