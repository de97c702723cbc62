"""Publishing and API keys in the browser: ``/apps``.

Publish a workflow version as a chat app (or republish another version: the switch is atomic), see
which version each app serves, unpublish, and create, list and revoke API keys. A new key is shown
once, here, and never again. Handlers are plain functions (tested without a browser).
"""

from __future__ import annotations

import json

import gradio as gr
from fastapi import FastAPI

from apps import checks, keys, publishing
from apps.models import MAX_KEY_RATE_PER_MINUTE
from stackyard.errors import StackyardError
from store.db import session_scope
from ui.fields import whole_number
from ui.pages import mount_page
from workflows import crud
from workflows.bounds import INT32_MAX

PATH = "/apps"
APP_HEADERS = ["slug", "workflow", "version", "message input", "reply output", "sources output", "chat page", "check",
               "gate"]
KEY_HEADERS = ["id", "prefix", "name", "app", "requests/min", "last used", "revoked"]
ROLE_BOXES = {"message": "Message input", "history": "History input", "reply": "Reply output",
              "sources": "Sources output"}


def publications_table() -> list[list]:
    with session_scope() as session:
        rows = []
        for app in publishing.list_publications(session=session):
            workflow = crud.get_workflow(session=session, ref=app.workflow_id)
            number = crud.get_version_by_id(session=session, version_id=app.version_id).number
            rows.append([app.slug, workflow.name, number, app.message_input, app.reply_output,
                         app.sources_output or "", f"[/chat/{app.slug}](/chat/{app.slug})",
                         f"⚠️ {app.check_warning}" if app.check_warning else "✅ answered",
                         gate_text(app.gate, app.gate_result)])
        return rows


def gate_text(gate: dict | None, result: dict | None) -> str:
    """The gate's last verdict on the live version, as one line (none: the app has no gate)."""
    if not gate:
        return "none"
    if not result:
        return f"test set {gate.get('test_set')}: not judged yet"
    failed = [c["check"] for c in result.get("checks", []) if not c.get("passed")]
    where = f"test set {result.get('test_set')} r{result.get('revision')}, evaluation {result.get('evaluation')}"
    if result.get("override"):
        return f"⚠️ overridden ({result['override']}): failed {', '.join(failed)} · {where}"
    warned = f" (warnings: {', '.join(result['warnings'])})" if result.get("warnings") else ""
    return f"✅ passed{warned} · {where}"


def keys_table() -> list[list]:
    with session_scope() as session:
        return [[k.id, k.prefix + "…", k.name, k.app_slug or "all apps", k.rate_per_minute,
                 str(k.last_used_at or "never"), str(k.revoked_at or "")] for k in keys.list_keys(session=session)]


def workflow_names() -> list[str]:
    with session_scope() as session:
        return [w.name for w in crud.list_workflows(session=session)]


def app_slugs() -> list[str]:
    with session_scope() as session:
        return [p.slug for p in publishing.list_publications(session=session)]


def _opt(value: str | None) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _version(value: str | float | None) -> int | None:
    return whole_number(value, field="Version", high=INT32_MAX, hint="; leave it empty for the newest")


def publish(workflow: str, version: str | float | None, slug: str, message: str, history: str, reply: str,
            sources: str, check: bool = True, force: bool = False,
            test_message: str = checks.DEFAULT_MESSAGE) -> tuple[str, list[list]]:
    try:
        number = _version(version)
        given = {"message": _opt(message), "history": _opt(history), "reply": _opt(reply), "sources": _opt(sources)}
        asked = (test_message or "").strip()[:2000] or checks.DEFAULT_MESSAGE
        with session_scope() as session:
            app, result = checks.publish_checked(session, ref=workflow or "", slug=(slug or "").strip(), version=number,
                                                 given=given, check=check, force=force, message=asked)
            number = crud.get_version_by_id(session=session, version_id=app.version_id).number
        said = f" It answered \"{asked[:80]}\" with: {result.reply[:200]}" if result and result.ok else ""
        warned = f" ⚠️ {app.check_warning}" if app.check_warning else ""
        return f"✅ '{app.slug}' now serves {workflow} version {number}: /chat/{app.slug}.{said}{warned}", publications_table()
    except publishing.BadPublication as exc:
        box = ROLE_BOXES.get(exc.field)
        return f"⚠️ {exc}" + (f" Or type it in '{box}' under Chat roles." if box else ""), publications_table()
    except checks.PublishCheckFailed as exc:
        return f"⚠️ {exc} ('Publish even if the check fails' below.)", publications_table()
    except StackyardError as exc:
        return f"⚠️ {exc}", publications_table()


def unpublish(slug: str) -> tuple[str, list[list]]:
    try:
        with session_scope() as session:
            publishing.unpublish(session=session, slug=(slug or "").strip())
        return f"✅ '{slug}' unpublished", publications_table()
    except StackyardError as exc:
        return f"⚠️ {exc}", publications_table()


def call_snippet(base_url: str, key: str, slug: str) -> str:
    """Ready-to-run calls of app ``slug`` with ``key``: curl, and the ``openai`` Python client."""
    body = json.dumps({"model": slug, "messages": [{"role": "user", "content": "Hello!"}]})
    return (f"# curl\ncurl {base_url}/v1/chat/completions \\\n  -H 'Authorization: Bearer {key}' \\\n"
            f"  -H 'Content-Type: application/json' \\\n  -d '{body}'\n\n"
            f"# Python (pip install openai)\nfrom openai import OpenAI\n\n"
            f"client = OpenAI(base_url=\"{base_url}/v1\", api_key=\"{key}\")\n"
            f"reply = client.chat.completions.create(model=\"{slug}\", messages=[{{\"role\": \"user\", "
            f"\"content\": \"Hello!\"}}])\nprint(reply.choices[0].message.content)\n")


def _base_url(request: gr.Request | None) -> str:
    """This server's address as the browser reached it (for the snippet)."""
    if request is None:
        return "http://127.0.0.1:8000"
    return f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc}"


def create_key(name: str, app: str, rate: float, request: gr.Request | None = None) -> tuple[str, str, list[list], str]:
    """A new key (shown once), a status line, the keys table, and a snippet that calls the app with the key."""
    scope = None if app in ("", "all apps", None) else app
    try:
        per_minute = whole_number(rate, field="Requests / minute", high=MAX_KEY_RATE_PER_MINUTE, empty=60)
        with session_scope() as session:
            if scope:
                publishing.get_publication(session=session, slug=scope)
            row, key = keys.create_key(session=session, name=name or "", app_slug=scope, rate_per_minute=per_minute)
        slug = scope or next(iter(app_slugs()), "SLUG")
        return (key, f"✅ Key {row.prefix}… created. Copy it now: it is shown only once.", keys_table(),
                call_snippet(_base_url(request), key, slug))
    except StackyardError as exc:
        return "", f"⚠️ {exc}", keys_table(), ""


def revoke_key(key_id: str) -> tuple[str, list[list]]:
    try:
        with session_scope() as session:
            row = keys.revoke_key(session=session, key_id=(key_id or "").strip())
        return f"✅ {row.prefix}… revoked", keys_table()
    except StackyardError as exc:
        return f"⚠️ {exc}", keys_table()


def build() -> gr.Blocks:
    with gr.Blocks(title="Stackyard apps") as page:
        gr.Markdown("## Published apps\nEach app serves one workflow version at `/v1/chat/completions` "
                    "(model = slug), `/api/v1/apps/{slug}/run` and `/chat/{slug}`.")
        apps = gr.Dataframe(headers=APP_HEADERS, interactive=False, elem_id="apps-table",
                            datatype=["str"] * (len(APP_HEADERS) - 3) + ["markdown", "str", "str"])
        with gr.Row():
            workflow = gr.Dropdown(label="Workflow", choices=[], allow_custom_value=True, elem_id="publish-workflow")
            # A text box: Gradio's number box shows 0 for "no value", and 0 is no version.
            version = gr.Textbox(label="Version (empty = newest)", placeholder="newest", elem_id="publish-version")
            slug = gr.Textbox(label="Slug", placeholder="support-bot", elem_id="publish-slug")
        # The roles come from the workflow (the editor's Chat app settings); these boxes only override them.
        with gr.Accordion("Chat roles (empty = the workflow's, set in the editor)", open=False, elem_id="chat-roles"):
            with gr.Row():
                message = gr.Textbox(label=ROLE_BOXES["message"])
                history = gr.Textbox(label=ROLE_BOXES["history"])
                reply = gr.Textbox(label=ROLE_BOXES["reply"])
                sources = gr.Textbox(label=ROLE_BOXES["sources"])
        with gr.Row():
            check = gr.Checkbox(label="First check it answers a test message on a worker", value=True,
                                elem_id="publish-check")
            test_message = gr.Textbox(label="Test message", value=checks.DEFAULT_MESSAGE, max_lines=1,
                                      elem_id="publish-test-message")
            force = gr.Checkbox(label="Publish even if the check fails (the app shows a warning)", value=False,
                                elem_id="publish-force")
        with gr.Row():
            publish_btn = gr.Button("Publish", variant="primary", elem_id="publish-button")
            unpublish_btn = gr.Button("Unpublish slug", variant="stop")
        app_status = gr.Markdown(elem_id="publish-status")

        gr.Markdown("## API keys\nKeys are stored only as a hash. Scope a key to one app or allow all apps.")
        key_rows = gr.Dataframe(headers=KEY_HEADERS, interactive=False, elem_id="keys-table")
        with gr.Row():
            key_name = gr.Textbox(label="Name", placeholder="website widget")
            key_app = gr.Dropdown(label="App", choices=["all apps"], value="all apps", allow_custom_value=True)
            key_rate = gr.Number(label="Requests / minute", value=60, precision=0)
            create_btn = gr.Button("Create key", variant="primary", elem_id="create-key")
        new_key = gr.Textbox(label="New key (shown once)", interactive=False, elem_id="new-key", buttons=["copy"])
        key_status = gr.Markdown()
        snippet = gr.Code(label="Call the app with this key", language="python", interactive=False,
                          elem_id="key-snippet")
        with gr.Row():
            revoke_id = gr.Textbox(label="Key id or prefix to revoke")
            revoke_btn = gr.Button("Revoke", variant="stop")

        def refresh():
            return (publications_table(), keys_table(), gr.update(choices=workflow_names()),
                    gr.update(choices=["all apps", *app_slugs()]))

        page.load(refresh, outputs=[apps, key_rows, workflow, key_app])
        publish_btn.click(publish, [workflow, version, slug, message, history, reply, sources, check, force, test_message],
                          [app_status, apps], show_progress="full")
        unpublish_btn.click(unpublish, [slug], [app_status, apps])
        create_btn.click(create_key, [key_name, key_app, key_rate], [new_key, key_status, key_rows, snippet])
        revoke_btn.click(revoke_key, [revoke_id], [key_status, key_rows])
    return page


def mount_apps(app: FastAPI) -> None:
    mount_page(app, build(), PATH)
