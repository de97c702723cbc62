"""The attempt policy runs and job items share: what an attempt's error means, and when retries stop."""

from __future__ import annotations

import httpx

from runs import attempts
from runs.attempts import MAX_ATTEMPTS, Ending
from stackyard.errors import StackyardError
from stackyard.settings import reset_settings_cache


class Stopped(Exception):
    pass


class Cancelled(Exception):
    pass


def wrapped(inner: BaseException) -> RuntimeError:
    """As Haystack raises it: a component's error under a pipeline error."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise RuntimeError("Component 'llm' failed") from exc
    except RuntimeError as outer:
        return outer


def test_a_transient_error_is_retried_with_a_doubling_backoff_then_given_up():
    error = wrapped(httpx.ConnectError("connection refused"))
    verdicts = [attempts.judge(error, attempt) for attempt in range(1, MAX_ATTEMPTS + 1)]
    assert [v.ending for v in verdicts] == [Ending.RETRY] * (MAX_ATTEMPTS - 1) + [Ending.FAILED]
    assert [v.delay for v in verdicts[:-1]] == [attempts.backoff_seconds(n) for n in range(1, MAX_ATTEMPTS)]
    assert attempts.backoff_seconds(1) < attempts.backoff_seconds(2) <= attempts.BACKOFF_MAX_SECONDS
    assert attempts.backoff_seconds(50) == attempts.BACKOFF_MAX_SECONDS
    assert verdicts[0].error.startswith("attempt 1 hit a transient error, retrying in 1 s: ConnectError")
    assert verdicts[-1].error.startswith(f"gave up after {MAX_ATTEMPTS} attempts; last error: RuntimeError")


def test_other_errors_fail_at_once_and_say_what_failed():
    verdict = attempts.judge(wrapped(ValueError("bad prompt")), 1)
    assert (verdict.ending, verdict.error) == (Ending.FAILED, "RuntimeError: Component 'llm' failed")
    own = attempts.judge(StackyardError("Set OPENAI_API_KEY."), 1)
    assert own.error == "Set OPENAI_API_KEY."          # our own errors read as written, without a class name


def test_cancel_and_time_limit_are_found_under_the_wrapper():
    cancelled = attempts.judge(wrapped(Cancelled()), 1, cancelled=(Cancelled,), time_limit=(Stopped,))
    assert (cancelled.ending, cancelled.error) == (Ending.CANCELLED, "cancelled by request")
    stopped = attempts.judge(wrapped(Stopped()), 1, cancelled=(Cancelled,), time_limit=(Stopped,),
                             time_limit_error="exceeded the soft time limit")
    assert (stopped.ending, stopped.error) == (Ending.FAILED, "exceeded the soft time limit")


def test_secrets_in_errors_are_redacted(monkeypatch):
    secret = "sk-live-" + "x" * 24
    monkeypatch.setenv("STACKYARD_SECRET_ENV", "OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    reset_settings_cache()
    try:
        for verdict in (attempts.judge(httpx.ConnectError(f"refused for key {secret}"), 1),
                        attempts.judge(ValueError(f"bad key {secret}"), 1)):
            assert secret not in verdict.error and secret not in verdict.cause and "***" in verdict.error
    finally:
        reset_settings_cache()


def test_a_retry_that_cannot_be_recorded_fails_with_the_reason():
    verdict = attempts.judge(TimeoutError("slow"), 1).not_retried("the job was cancelled")
    assert (verdict.ending, verdict.error) == (Ending.FAILED, "not retried (the job was cancelled): TimeoutError: slow")
