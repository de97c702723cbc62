"""Secret values never leave in error text: the operator's secret env vars and Stackyard's own secrets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stackyard.redact import MASK, redact, redact_data
from stackyard.settings import reset_settings_cache

KEY = "sk-test-4f9a1c2e7b"


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("STACKYARD_SECRET_ENV", "OPENAI_API_KEY,GATEWAY_TOKEN,SHORT_ONE")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("GATEWAY_TOKEN", "gw-" + KEY)  # contains the other secret: masked whole
    monkeypatch.setenv("SHORT_ONE", "abc")
    monkeypatch.setenv("POSTGRES_PASSWORD", "not-granted-so-unknown")
    monkeypatch.setenv("STACKYARD_ADMIN_PASSWORD", "hunter2-admin")
    monkeypatch.setenv("STACKYARD_DATABASE_URL", "postgresql+psycopg://app:p%40ss-db-9@db:5432/stackyard")
    monkeypatch.setenv("STACKYARD_BROKER_URL", "redis://:broker-pw-77@redis:6379/0")
    reset_settings_cache()
    yield
    reset_settings_cache()


def test_secret_env_values_and_stackyards_own_secrets_are_masked():
    text = (f"401 Incorrect API key provided: Bearer {KEY}; gateway gw-{KEY}; admin hunter2-admin; "
            "db password p%40ss-db-9 (p@ss-db-9); broker broker-pw-77")

    assert redact(text) == f"401 Incorrect API key provided: Bearer {MASK}; gateway {MASK}; admin {MASK}; " \
                           f"db password {MASK} ({MASK}); broker {MASK}"


def test_values_that_are_not_secrets_are_left_alone():
    # Not granted to workflows, and too short to tell from ordinary words.
    assert redact("not-granted-so-unknown abc") == "not-granted-so-unknown abc"


def test_every_string_of_an_error_body_is_masked():
    body = {"error": {"message": f"bad {KEY}", "type": "WorkflowInvalid", "field": None,
                      "issues": [{"code": "bad_param", "message": f"unknown parameter '{KEY}'", "node": "n"}]}}

    assert redact_data(body) == {"error": {"message": f"bad {MASK}", "type": "WorkflowInvalid", "field": None,
                                           "issues": [{"code": "bad_param", "message": f"unknown parameter '{MASK}'",
                                                       "node": "n"}]}}
