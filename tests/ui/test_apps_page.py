"""The publishing and keys page's handlers, called directly (no browser), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlmodel import select

from apps import checks, publishing
from apps.models import ApiKey
from store.db import session_scope
from ui import apps_page
from workflows import crud
from workflows.spec import spec_from_dict

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"


def make_workflow(template: str) -> None:
    spec = spec_from_dict({"components": {"p": {"type": PROMPT, "init_parameters": {"template": template}}},
                           "inputs": {"name": ["p.name"]}, "outputs": {"greeting": "p.prompt"}})
    with session_scope() as session:
        if not crud.list_workflows(session=session):
            crud.create_workflow(session=session, name="greet", spec=spec)
        else:
            crud.create_version(session=session, ref="greet", spec=spec)


def test_publish_republish_and_unpublish(database):
    make_workflow("Hello {{ name }}")
    make_workflow("Hi {{ name }}")
    status, table = apps_page.publish("greet", 1, "hello", "name", "", "greeting", "", False)
    assert status.startswith("✅") and "version 1" in status
    assert table == [["hello", "greet", 1, "name", "greeting", "", "[/chat/hello](/chat/hello)",  # a link
                      f"⚠️ {checks.SKIPPED}", "none"]]                                          # and why unchecked
    assert checks.SKIPPED in status
    status, table = apps_page.publish("greet", None, "hello", "name", "", "greeting", "", False)
    assert "version 2" in status and table[0][2] == 2
    status, _ = apps_page.publish("greet", "0", "other", "name", "", "greeting", "", False)
    assert status.startswith("⚠️ Version '0' is not a whole number from 1 to 2147483647; leave it empty for the newest")
    status, _ = apps_page.publish("greet", None, "Bad Slug", "name", "", "greeting", "", False)
    assert status.startswith("⚠️") and "lowercase" in status
    status, _ = apps_page.publish("greet", None, "other", "nope", "", "greeting", "", False)
    assert "'nope' is not a declared input" in status
    status, table = apps_page.unpublish("hello")
    assert status.startswith("✅") and table == []
    assert apps_page.unpublish("hello")[0].startswith("⚠️")


def test_keys_are_shown_once_and_stored_hashed(database):
    make_workflow("Hello {{ name }}")
    apps_page.publish("greet", None, "hello", "name", "", "greeting", "", False)
    key, status, table, snippet = apps_page.create_key("widget", "hello", 30)
    assert key.startswith("sy_") and "shown only once" in status
    assert f"Bearer {key}" in snippet and 'model="hello"' in snippet and f'api_key="{key}"' in snippet
    row = table[0]
    assert row[1] == key[:11] + "…" and row[3] == "hello" and row[4] == 30 and key not in str(table)
    with session_scope() as session:
        stored = session.exec(select(ApiKey)).one()
        assert key not in str(stored.model_dump())
    key2, status, _, snippet2 = apps_page.create_key("", "nope", 10)
    assert key2 == "" and snippet2 == "" and "No published app 'nope'" in status
    status, table = apps_page.revoke_key(row[0])
    assert status.startswith("✅") and table[0][6] != ""


@pytest.mark.parametrize("version", [2**31, str(2**31), -1, "-1", "abc", 1.5, float("inf")])
def test_a_version_out_of_range_is_refused_naming_the_field_and_its_range(database, version):
    make_workflow("Hello {{ name }}")
    status, table = apps_page.publish("greet", version, "hello", "name", "", "greeting", "", False)
    assert status.startswith(f"⚠️ Version '{str(version).strip()}' is not a whole number from 1 to 2147483647")
    assert table == []


@pytest.mark.parametrize("rate", [-1, 0.5, 100_001, 2**31, float("nan"), "abc"])
def test_a_key_rate_out_of_range_is_refused_naming_the_field_and_its_range(database, rate):
    key, status, table, snippet = apps_page.create_key("widget", "all apps", rate)
    assert (key, snippet, table) == ("", "", [])
    assert status.startswith(f"⚠️ Requests / minute '{rate}' is not a whole number from 1 to 100000")


def test_the_editor_is_told_which_version_is_live(database):
    from ui import handlers

    make_workflow("Hello {{ name }}")
    make_workflow("Hi {{ name }}")
    assert handlers.open_workflow({"ref": "greet"})["workflow"]["published"] == {}
    apps_page.publish("greet", 1, "hello", "name", "", "greeting", "", False)
    opened = handlers.open_workflow({"ref": "greet"})
    assert opened["workflow"]["published"] == {"hello": 1} and opened["version"]["number"] == 2


def test_a_forced_apps_visitors_see_that_it_is_unchecked_not_why(database):
    """The reason (a run's error) may name internal hosts or paths; the chat page is public."""
    from ui.chat_page import UNCHECKED, _warning

    make_workflow("Hello {{ name }}")
    with session_scope() as session:
        publishing.publish(session=session, ref="greet", slug="forced", message="name", reply="greeting",
                           check_warning="Published although its check failed: Refused http://10.0.0.5:8000/v1.")
        publishing.publish(session=session, ref="greet", slug="checked", message="name", reply="greeting")
    assert _warning("forced") == UNCHECKED and "10.0.0.5" not in UNCHECKED
    assert _warning("checked") is None and _warning("nope") is None


def test_the_apps_table_shows_the_gates_last_verdict_on_the_live_version():
    from ui.apps_page import gate_text

    gate = {"test_set": "faq"}
    passed = {"test_set": "faq", "revision": 2, "evaluation": "e1", "checks": [{"check": "recall ≥ 0.8",
                                                                                "passed": True}], "warnings": []}
    assert gate_text(None, None) == "none"
    assert gate_text(gate, None) == "test set faq: not judged yet"
    assert gate_text(gate, passed) == "✅ passed · test set faq r2, evaluation e1"
    forced = {**passed, "checks": [{"check": "recall ≥ 0.8", "passed": False}], "override": "hotfix"}
    assert gate_text(gate, forced) == "⚠️ overridden (hotfix): failed recall ≥ 0.8 · test set faq r2, evaluation e1"
