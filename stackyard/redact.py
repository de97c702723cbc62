"""Keep secret values out of error text that leaves the process or is stored with a run.

An error can quote what it was given: an LLM server that echoes the ``Authorization`` header, a driver
that prints its connection URL. :func:`redact` replaces every secret value with ``***``. The secrets are
the values of the environment variables workflows may read (``STACKYARD_SECRET_ENV``), the admin password,
and the passwords inside ``STACKYARD_DATABASE_URL`` and ``STACKYARD_BROKER_URL``.

Example::

    from stackyard.redact import redact

    redact("401: Incorrect API key provided: sk-live-1234567890")   # "401: Incorrect API key provided: ***"
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

from stackyard.settings import get_settings

MASK = "***"
# Shorter values are left alone: masking them would garble ordinary words, and they are too weak to guard.
MIN_SECRET_CHARS = 6


def _url_password(url: str | None) -> list[str]:
    try:
        password = urlsplit(url).password if url else None
    except ValueError:
        return []
    return [password, unquote(password)] if password else []


def secret_values() -> list[str]:
    """The values to mask, longest first (a value that contains another is masked whole)."""
    settings = get_settings()
    values = [os.environ.get(name) for name in settings.secret_env]
    values += [settings.admin_password, *_url_password(settings.database_url), *_url_password(settings.broker_url)]
    return sorted({value for value in values if value and len(value) >= MIN_SECRET_CHARS}, key=len, reverse=True)


def _mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def redact(text: str) -> str:
    """``text`` with every secret value replaced by ``***``."""
    return _mask(text, secret_values())


def redact_data(value: Any) -> Any:
    """A JSON-ready value (an error body) with every string in it redacted."""
    secrets = secret_values()

    def scrub(item: Any) -> Any:
        if isinstance(item, str):
            return _mask(item, secrets)
        if isinstance(item, dict):
            return {key: scrub(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [scrub(inner) for inner in item]
        return item

    return scrub(value) if secrets else value
