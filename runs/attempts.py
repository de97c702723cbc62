"""The attempt policy shared by runs and batch-job items: how an attempt ended, and what follows from it.

One place decides, for both state machines:

- which errors are worth another attempt (the network, a busy database, a vector store or LLM server
  that is down) and how long to back off before it (1 s, 2 s, 4 s … capped at a minute);
- how many attempts a piece of work gets (:data:`MAX_ATTEMPTS`), whether its worker failed it or died
  under it (its :class:`Lease` expired), and the words a user reads when it gives up.

Each state machine maps a :class:`Verdict` onto its own states (``runs.lifecycle.end_attempt``,
``jobs.dispatch.end_item_attempt``); the worker only runs the pipeline and asks :func:`judge`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from stackyard.errors import StackyardError
from stackyard.redact import redact

MAX_ATTEMPTS = 3
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class Lease:
    """How long work may go without its worker's heartbeat before it belongs to a dead worker, and the
    rhythms that follow from it (``STACKYARD_WORKER_LEASE_SECONDS``, 15 s by default)."""

    seconds: float

    @property
    def beat_seconds(self) -> float:
        """A worker renews the work it holds this often: four beats may be missed before it is taken."""
        return self.seconds / 5

    @property
    def look_seconds(self) -> float:
        """Each worker's reaper looks for dead workers' work (and lost messages) this often."""
        return self.seconds / 3

    @property
    def alive_seconds(self) -> float:
        """A worker process counts as consuming its queues this long after its last beat."""
        return self.seconds * 4 / 3


def lease() -> Lease:
    from stackyard.settings import get_settings

    return Lease(get_settings().worker_lease_seconds)


class Ending(str, enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRY = "retry"             # a transient error with attempts left: try again after ``delay``


@dataclass(frozen=True)
class Verdict:
    """How an attempt ended. ``error`` is what to record; ``cause`` the bare (redacted) error under it."""

    ending: Ending
    error: str | None = None
    cause: str | None = None
    delay: float = 0.0

    def not_retried(self, why: str) -> Verdict:
        """The retry could not be recorded (``why``): the attempt's failure is final."""
        return Verdict(Ending.FAILED, f"not retried ({why}): {self.cause}", self.cause)


SUCCEEDED = Verdict(Ending.SUCCEEDED)


def backoff_seconds(attempt: int) -> float:
    return min(BACKOFF_BASE_SECONDS * 2 ** (attempt - 1), BACKOFF_MAX_SECONDS)


def exhausted(attempts: int) -> bool:
    return attempts >= MAX_ATTEMPTS


def died_each_time(attempts: int) -> str:
    return f"gave up after {attempts} attempts: the worker running it died each time"


def transient_types() -> tuple[type[BaseException], ...]:
    """Errors worth retrying: the network, a busy database, a vector store or LLM server that is down."""
    import httpx
    from sqlalchemy.exc import OperationalError

    from nodes.stores import VectorStoreUnavailable

    types: list[type[BaseException]] = [ConnectionError, TimeoutError, httpx.TransportError, OperationalError,
                                        VectorStoreUnavailable]
    try:
        import openai

        types += [openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError]
    except ImportError:
        pass
    return tuple(types)


def cause_of(exc: BaseException, wanted: tuple[type[BaseException], ...]) -> BaseException:
    """The first of ``wanted`` in ``exc``'s chain (Haystack wraps what a component raises), else ``exc``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, wanted):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


def judge(exc: BaseException, attempt: int, *, cancelled: tuple[type[BaseException], ...] = (),
          time_limit: tuple[type[BaseException], ...] = (), time_limit_error: str = "exceeded its time limit") -> Verdict:
    """What attempt number ``attempt``, which raised ``exc``, means for its work.

    ``cancelled``: exceptions that mean the user cancelled it; ``time_limit``: that its soft time limit
    stopped it (``time_limit_error`` is then the error). Anything else fails it, unless it is transient and
    attempts are left: then it is retried after a backoff.
    """
    transient = transient_types()
    cause = cause_of(exc, (*cancelled, *time_limit, *transient))
    if cancelled and isinstance(cause, cancelled):
        return Verdict(Ending.CANCELLED, "cancelled by request")
    if time_limit and isinstance(cause, time_limit):
        return Verdict(Ending.FAILED, time_limit_error, time_limit_error)
    error = redact(str(exc) if isinstance(exc, StackyardError) else f"{type(exc).__name__}: {exc}")
    if not isinstance(cause, transient):
        return Verdict(Ending.FAILED, error, error)
    if exhausted(attempt):
        return Verdict(Ending.FAILED, f"gave up after {attempt} attempts; last error: {error}", error)
    delay = backoff_seconds(attempt)
    what = redact(f"{type(cause).__name__}: {cause}")
    return Verdict(Ending.RETRY, f"attempt {attempt} hit a transient error, retrying in {delay:g} s: {what}", error,
                   delay)
