"""Publishing: serve a specific version as a chat app under a slug.

Later edits do not change what is served; republishing swaps the version in one UPDATE, so requests
see either the old or the new version, never a mix. Publishing is an upsert: of two simultaneous
publishes of one new slug both succeed (the later one's settings stay). Chat roles (which input takes the user message,
which the history, which output is the reply and which the sources) come from the version's
``metadata.stackyard.chat`` (the editor's Chat app settings) unless given explicitly. Errors name the role
as ``field``; each transport adds how to give it there (``--message``, a box on ``/apps``).

Example::

    publish(session=s, ref="support-bot", slug="support", version=3)
    get_publication(session=s, slug="support").version_id
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from apps.models import Publication
from knowledge.search import named_bases
from stackyard.errors import NotFound, StackyardError
from store.clock import utcnow
from store.db import race_safe
from workflows import crud
from workflows.models import WorkflowVersion

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class BadPublication(StackyardError):
    status = 422


def _role(given: str | None, declared: dict, key: str) -> str | None:
    return given if given is not None else declared.get(key)


def publish(session: Session, *, ref: str, slug: str, version: int | None = None, message: str | None = None,
            history: str | None = None, reply: str | None = None, sources: str | None = None,
            max_concurrency: int | None = None, check_warning: str | None = None) -> Publication:
    """Serve ``ref``'s version (default: the newest) under ``slug``; ``check_warning`` is shown on the app
    (a publish check that failed or was skipped, see ``apps.checks``)."""
    check_slug(slug)
    given = {"message": message, "history": history, "reply": reply, "sources": sources}
    # A slug inserted or unpublished meanwhile, or the version deleted: the rerun updates, inserts or answers 404.
    publication = race_safe(session, lambda: _upsert(session, ref, slug, version, given, max_concurrency, check_warning),
                            what=f"Publishing '{slug}'")
    return publication


def check_slug(slug: str) -> None:
    if not SLUG.match(slug):
        raise BadPublication(f"Slug '{slug}' must be lowercase letters, digits and dashes (max 64), e.g. 'support-bot'.",
                             field="slug")


def resolve(session: Session, *, ref: str, version: int | None,
            given: dict[str, str | None]) -> tuple[WorkflowVersion, dict[str, str | None]]:
    """The version to serve and its chat roles (``given`` over the version's own), each checked against the
    version's declared inputs and outputs."""
    row = crud.get_version(session=session, ref=ref, number=version)
    spec = crud.version_spec(row)
    chat = spec.canvas.get("chat", {}) if isinstance(spec.canvas.get("chat"), dict) else {}
    roles = {role: _role(value, chat, role) for role, value in given.items()}
    for role, names, required in (("message", spec.inputs, True), ("history", spec.inputs, False),
                                  ("reply", spec.outputs, True), ("sources", spec.outputs, False)):
        value = roles[role]
        kind = "input" if names is spec.inputs else "output"
        if value is None and required:
            raise BadPublication(f"Choose which workflow {kind} is the chat {role}: in the editor, Inspect with nothing "
                                 f"selected, under Chat app, then save a version; {kind}s are "
                                 f"{', '.join(sorted(names)) or '(none)'}.", field=role)
        if value is not None and value not in names:
            raise BadPublication(f"'{value}' is not a declared {kind} of this version; {kind}s are "
                                 f"{', '.join(sorted(names)) or '(none)'}.", field=role)
    return row, roles


def _upsert(session: Session, ref: str, slug: str, version: int | None, given: dict[str, str | None],
            max_concurrency: int | None, check_warning: str | None) -> Publication:
    row, roles = resolve(session, ref=ref, version=version, given=given)
    existing = session.get(Publication, slug)
    publication = existing or Publication(slug=slug, workflow_id=row.workflow_id, version_id=row.id,
                                          message_input=roles["message"], reply_output=roles["reply"])
    if existing and existing.workflow_id != row.workflow_id:
        raise BadPublication(f"Slug '{slug}' already serves another workflow; unpublish it first or pick another slug.",
                             field="slug")
    publication.version_id = row.id
    publication.message_input, publication.history_input = roles["message"], roles["history"]
    publication.reply_output, publication.sources_output = roles["reply"], roles["sources"]
    publication.check_warning = check_warning
    if max_concurrency is not None:
        publication.max_concurrency = max_concurrency
    publication.updated_at = utcnow()
    session.add(publication)
    session.flush()
    return publication


def unpublish(session: Session, *, slug: str) -> None:
    def remove() -> None:
        if not session.execute(delete(Publication).where(col(Publication.slug) == slug)).rowcount:
            raise _not_published(slug)

    race_safe(session, remove, what=f"Unpublishing '{slug}'")


def get_publication(session: Session, *, slug: str) -> Publication:
    publication = session.get(Publication, slug, populate_existing=True)
    if publication is None:
        raise _not_published(slug)
    return publication


def _not_published(slug: str) -> NotFound:
    return NotFound(f"No published app '{slug}'; publish one with `stackyard publish WORKFLOW --slug {slug}`.")


def list_publications(session: Session) -> list[Publication]:
    return list(session.exec(select(Publication).order_by(Publication.slug)))


def live_version_numbers(session: Session, *, workflow_id: str) -> dict[str, int]:
    """slug → version number served, for one workflow (the editor shows which version is live)."""
    rows = session.exec(select(Publication.slug, WorkflowVersion.number)
                        .join(WorkflowVersion, WorkflowVersion.id == Publication.version_id)
                        .where(Publication.workflow_id == workflow_id)).all()
    return dict(rows)


def apps_using_knowledge_base(session: Session, name: str) -> list[str]:
    """Slugs of the published apps whose live version reads knowledge base ``name``."""
    rows = session.exec(select(Publication.slug, WorkflowVersion.spec).join(
        WorkflowVersion, WorkflowVersion.id == Publication.version_id)).all()
    return sorted(slug for slug, spec in rows if name in named_bases(spec))


def set_memory(session: Session, slug: str, memory: dict[str, Any]) -> Publication:
    """The app's memory policy (``conversations.memory.Memory``, checked by the caller); flushed."""
    publication = get_publication(session=session, slug=slug)
    publication.memory, publication.updated_at = memory, utcnow()
    session.add(publication)
    session.flush()
    return publication
