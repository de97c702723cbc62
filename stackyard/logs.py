"""Logging for every Stackyard process: plain text on a laptop, one JSON object per line in production.

``STACKYARD_LOG_FORMAT=json`` makes each record a JSON object with ``ts``, ``level``, ``logger``,
``message`` and, inside a run or a job item, ``run_id`` / ``job_id`` / ``item_id``, so a log
pipeline can follow one run across the web process and the worker that executed it::

    with log_context(run_id=run.id):
        log.info("run finished")   # {"ts": ..., "message": "run finished", "run_id": "..."}
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.config
from collections.abc import Iterator
from datetime import UTC, datetime

from stackyard.settings import Settings, get_settings

CONTEXT_FIELDS = ("run_id", "job_id", "item_id")
_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("stackyard_log_context", default={})
_TEXT_FORMAT = "[%(asctime)s: %(levelname)s/%(name)s] %(message)s%(context)s"


@contextlib.contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    """Attach ids (run_id, job_id, item_id) to every record logged inside the block, in this thread or task."""
    token = _context.set({**_context.get(), **{k: v for k, v in ids.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the current log context onto each record (as attributes and a text suffix)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for name in CONTEXT_FIELDS:
            if name in context and not hasattr(record, name):
                setattr(record, name, context[name])
        found = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name))
        record.context = f" [{found}]" if found else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        entry.update({name: getattr(record, name) for name in CONTEXT_FIELDS if hasattr(record, name)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def make_formatter(json_lines: bool) -> logging.Formatter:
    return JsonFormatter() if json_lines else logging.Formatter(_TEXT_FORMAT)


def logging_config(settings: Settings | None = None, level: str | None = None) -> dict:
    """A ``dictConfig`` for one stderr handler on the root logger; uvicorn applies it in each of its workers."""
    settings = settings or get_settings()
    # Servers install handlers of their own; route them through the root so every line has one format.
    servers = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery")
    level = (level or settings.log_level).upper()
    loggers: dict = {name: {"handlers": [], "propagate": True} for name in servers}
    if level != "DEBUG":  # Haystack logs every component run at INFO; the run's trace rows already hold that
        loggers["haystack.core.pipeline"] = {"level": "WARNING"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"stackyard": {"()": make_formatter, "json_lines": settings.log_format == "json"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "filters": ["context"], "formatter": "stackyard"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": loggers,
    }


def configure_logging(settings: Settings | None = None, level: str | None = None) -> None:
    logging.config.dictConfig(logging_config(settings, level))
