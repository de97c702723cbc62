"""Knowledge bases in the browser: ``/knowledge``.

Create a base, upload files (or name files and folders under the files root, or paste text) and watch each
document's progress bar, browse and search its chunks, edit one or switch it off, test a query with the
retriever's own code (a bar chart of the scores), and re-index with another chunking while the current index
keeps answering. Handlers are plain functions (tested without a browser) over the same modules the HTTP API
uses; mount with ``mount_knowledge(app)`` before the editor at ``/``.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI
from gradio.utils import get_upload_folder

from apps.publishing import apps_using_knowledge_base
from knowledge import bases, generations, lifecycle, queries, search
from knowledge.documents import (
    CONVERTERS,
    MAX_FILE_BYTES,
    MAX_FILES,
    file_sources,
    preview,
    received_source,
    store_uploads,
    text_source,
    url_source,
)
from knowledge.models import DocState
from knowledge.settings import SCALES, Chunking, Retrieval, model_window
from nodes.catalog import MILVUS_STORE
from stackyard.errors import StackyardError
from stackyard.settings import get_settings
from store.db import session_scope
from ui import fields
from ui.pages import mount_page
from worker.enqueue import enqueue_documents

PATH = "/knowledge"
DOCUMENT_HEADERS = ["id", "name", "state", "progress", "chunks", "attempts", "error"]
CHUNK_HEADERS = ["id", "document", "position", "length", "enabled", "edited", "text"]
HIT_HEADERS = ["rank", "score", "dense", "keyword", "document", "position", "text", "chunk id", "answers for"]
MODES = ("dense", "keyword", "hybrid")
TEXT_CELL = 300
COLOURS = {"done": "#16a34a", "error": "#dc2626", "queued": "#9ca3af"}   # working states: blue


def _short(text: str) -> str:
    return text if len(text) <= TEXT_CELL else text[:TEXT_CELL] + "…"


def _fail(exc: Exception) -> str:
    return f"⚠️ {exc}"


def base_names() -> list[str]:
    with session_scope() as session:
        return [b.name for b in bases.list_all(session)]


def create_base(name: str, description: str, unit: str, length: Any, overlap: Any, mode: str,
                top_k: Any, ranker: str = "", parent_length: Any = None) -> tuple[str, Any]:
    try:
        chunking = Chunking(unit=unit or "word", length=fields.whole_number(length, field="Chunk length", high=100_000),
                            overlap=fields.whole_number(overlap, field="Overlap", low=0, high=100_000, empty=0),
                            parent_length=fields.whole_number(parent_length, field="Parent length", low=0,
                                                              high=100_000, empty=None) or None)
        retrieval = Retrieval(mode=mode or "dense", top_k=fields.whole_number(top_k, field="Top k", high=100, empty=5),
                              ranker=(ranker or "").strip() or None)
        with session_scope() as session:
            base = bases.create(session, get_settings(), name=(name or "").strip(), description=description or "",
                                chunking=chunking, retrieval=retrieval)
            created = base.name
        return f"✅ Knowledge base '{created}' created. Add documents below.", gr.update(choices=base_names(),
                                                                                        value=created)
    except (StackyardError, ValueError) as exc:
        return _fail(exc), gr.update()


def _parents(chunking: dict[str, Any]) -> str:
    return f" cut from parents of {chunking['parent_length']} words" if chunking.get("parent_length") else ""


def summary_html(name: str | None) -> str:
    """The base's status, counts and serving generation, with the re-index's progress bar while one builds."""
    if not name:
        return "<p>Pick a knowledge base, or create one.</p>"
    try:
        with session_scope() as session:
            base = bases.get(session, name)
            counted = lifecycle.counts(session, base.id)
            building = generations.progress(session, base)
            status = lifecycle.status(counted, reindexing=building is not None)
            chunking = base.chunking
            line = (f"<b>{status}</b> · generation {base.generation} · {counted['done']} of "
                    f"{sum(counted[s.value] for s in DocState)} documents indexed · {counted['chunks']} chunks · "
                    f"{html.escape(base.embedding_model)} · chunks of {chunking['length']} {chunking['unit']}s "
                    f"(overlap {chunking['overlap']}){_parents(chunking)} · {base.retrieval['mode']} retrieval, "
                    f"top {base.retrieval['top_k']}")
            if base.retrieval.get("ranker"):
                line += f" re-ordered by {html.escape(base.retrieval['ranker'])}"
    except StackyardError as exc:
        return f"<p>⚠️ {html.escape(str(exc))}</p>"
    bar = ""
    if building:
        share = 100 * building["done"] / max(building["documents"], 1)
        failed = (f", {building['failed']} failed (retry them or cancel the re-index)" if building["failed"] else "")
        bar = (f'<div id="kb-reindex" data-done="{building["done"]}" data-total="{building["documents"]}">'
               f"<p>Re-indexing into generation {building['generation']} (chunks of "
               f"{building['chunking']['length']}): {building['done']} of {building['documents']} documents"
               f"{failed}; generation {base.generation} answers until then.</p>{_bar(share, '#2563eb')}</div>")
    return f'<div id="kb-state" data-status="{status}" data-generation="{base.generation}"><p>{line}</p>{bar}</div>'


def _bar(percent: float, colour: str) -> str:
    return (f'<div style="height:10px;border-radius:4px;overflow:hidden;background:#e5e7eb">'
            f'<div style="width:{percent:.1f}%;height:100%;background:{colour}"></div></div>')


def documents_view(name: str | None) -> tuple[str, list[list]]:
    """One progress bar per document, and the documents table."""
    if not name:
        return "", []
    try:
        with session_scope() as session:
            documents = bases.documents(session, bases.get(session, name))
    except StackyardError as exc:
        return f"<p>⚠️ {html.escape(str(exc))}</p>", []
    bars = "".join(
        f'<div class="kb-doc" data-name="{html.escape(d.name)}" data-state="{d.state.value}" style="margin:4px 0">'
        f'<span>{html.escape(d.name)} — {d.state.value} {100 * d.progress:.0f}%</span>'
        f'{_bar(100 * d.progress if d.state != DocState.ERROR else 100, COLOURS.get(d.state.value, "#2563eb"))}</div>'
        for d in documents[:200])
    rows = [[d.id, d.name, d.state.value, f"{100 * d.progress:.0f}%", d.chunk_count, d.attempts, d.error or ""]
            for d in documents]
    return f'<div id="kb-docs">{bars}</div>', rows


def add_documents(name: str | None, uploads: list[str] | None, paths: str, text_name: str,
                  text: str, urls: str = "", folder: list[str] | None = None) -> str:
    """Queue uploaded files and folders, files named under the files root, URLs and pasted text; the same content
    is skipped. An uploaded folder's files of other types are left out and counted (a folder holds what it holds);
    a file picked one by one must be of a type a base reads."""
    if not name:
        return "⚠️ Pick a knowledge base first."
    folder_files = [u for u in folder or [] if Path(u).suffix.lower() in CONVERTERS]
    left_out = len(folder or []) - len(folder_files)
    uploads = [*(uploads or []), *folder_files]
    try:
        entries = [p.strip() for p in (paths or "").replace(",", "\n").splitlines() if p.strip()]
        sources = file_sources(entries, field="Paths") if entries else []
        listed = [u.strip() for u in (urls or "").splitlines() if u.strip()]
        if len(listed) > MAX_FILES:
            return f"⚠️ URLs: give at most {MAX_FILES} at a time."
        sources += [url_source(u, field="URLs") for u in listed]
        if (text or "").strip():
            sources.append(text_source((text_name or "").strip() or "pasted text", text, field="Text"))
        if uploads:                  # copied under the files root last: only once everything else is checked
            sources += file_sources(store_uploads([Path(u) for u in uploads], name,
                                                  received_in=Path(get_upload_folder())), field="Files")
        if not sources:
            return "⚠️ Upload files, name files or folders under the files root, give URLs, or paste text."
        with session_scope() as session:
            base = bases.get(session, name)
            added = bases.add_documents(session, base, sources)
            bases.touch(session, base)
            ids = [d.id for d in added.added]
            skipped = [s["name"] for s in added.skipped]
        enqueue_documents(ids)
    except (StackyardError, OSError) as exc:
        return _fail(exc)
    note = f" Skipped {len(skipped)} already there: {', '.join(skipped[:5])}." if skipped else ""
    if left_out:
        note += (f" Left out {left_out} file(s) of the folder a knowledge base cannot read (it reads "
                 f"{', '.join(sorted(CONVERTERS))}).")
    return f"✅ {len(ids)} document(s) queued for indexing.{note}"


PREVIEW_HEADERS = ["position", "length (characters)", "text"]


def preview_chunks(name: str | None, uploads: list[str] | None, folder: list[str] | None, paths: str, text: str,
                   length: Any, overlap: Any, parent_length: Any) -> tuple[str, list[list]]:
    """Before spending: the chunks the first file picked (an upload, a folder's, a path under the files root) or
    the pasted text would make under the base's chunking, or the lengths typed here; how many in all, nothing
    embedded or stored."""
    if not name:
        return "⚠️ Pick a knowledge base first.", []
    try:
        with session_scope() as session:
            base = bases.get(session, name)
            current, model = Chunking(**base.chunking), base.embedding_model
        parent = fields.whole_number(parent_length, field="Preview parent length", low=0, high=100_000, empty=-1)
        chunking = Chunking(**{**current.model_dump(),
            "length": fields.whole_number(length, field="Preview chunk length", high=100_000, empty=current.length),
            "overlap": fields.whole_number(overlap, field="Preview overlap", low=0, high=100_000,
                                           empty=current.overlap),
            "parent_length": current.parent_length if parent == -1 else (parent or None)}
        ).check(model_window(model, get_settings()))
        received = [u for u in [*(uploads or []), *(folder or [])] if Path(u).suffix.lower() in CONVERTERS]
        entries = [p.strip() for p in (paths or "").replace(",", "\n").splitlines() if p.strip()]
        root = None
        if received:
            root = Path(get_upload_folder())
            source = received_source(Path(received[0]), received_in=root)
        elif entries:
            source = file_sources(entries[:1], field="Paths")[0]
        elif (text or "").strip():
            source = text_source("pasted text", text, field="Text")
        else:
            return "⚠️ Pick a file or folder, name a path, or paste text to preview.", []
        shown = preview(source, chunking, root=root)
    except (StackyardError, ValueError, OSError) as exc:
        return _fail(exc), []
    line = (f"**{shown['total']} chunk(s)** from '{html.escape(source.name)}' with chunks of {chunking.length} "
            f"{chunking.unit}s (overlap {chunking.overlap}){_parents(chunking.model_dump())}; the first "
            f"{len(shown['chunks'])} below. Nothing was embedded or stored.")
    return line, [[c["position"], c["length"], _short(c["text"])] for c in shown["chunks"]]


NO_DOCUMENT = "⚠️ Pick a document in the table first."


def _picked(session: Any, name: str, document_id: str) -> tuple[Any, Any]:
    """The base and the document the page's fields name."""
    base = bases.get(session, name)
    return base, bases.document(session, base, document_id.strip())


def retry_document(name: str | None, document_id: str) -> str:
    if not name or not (document_id or "").strip():
        return NO_DOCUMENT
    try:
        with session_scope() as session:
            _, document = _picked(session, name, document_id)
            if lifecycle.requeue(session, document.id) is None:
                return f"⚠️ '{document.name}' is {document.state.value}; retry it once it is done or failed."
        enqueue_documents([document.id])
        return f"✅ '{document.name}' queued again."
    except StackyardError as exc:
        return _fail(exc)


def document_switch(name: str | None, document_id: str, enabled: bool) -> str:
    if not name or not (document_id or "").strip():
        return NO_DOCUMENT
    try:
        with session_scope() as session:
            moved = bases.change_document(session, *_picked(session, name, document_id), enabled=enabled)
        enqueue_documents([moved.id])
    except StackyardError as exc:
        return _fail(exc)
    return (f"✅ '{moved.name}' switched {'on' if enabled else 'off'}; its chunks are "
            f"{'' if enabled else 'no longer '}retrieved once it is indexed again.")


def delete_document(name: str | None, document_id: str) -> str:
    if not name or not (document_id or "").strip():
        return NO_DOCUMENT
    try:
        with session_scope() as session:
            _, document = _picked(session, name, document_id)
            shown = document.name
            base, ever_indexed = generations.delete_document(session, document)
            session.expunge_all()
        if ever_indexed:
            search.forget_document(base, document_id.strip(), get_settings())
    except StackyardError as exc:
        return _fail(exc)
    except Exception as exc:  # noqa: BLE001 - the rows are gone; the vector store did not answer
        return f"⚠️ '{document_id}' is deleted, but its vectors were not removed ({type(exc).__name__}: {exc})."
    return f"✅ '{shown}' deleted with its chunks."


def chunks_table(name: str | None, document_id: str, text: str) -> list[list]:
    if not name:
        return []
    try:
        with session_scope() as session:
            base = bases.get(session, name)
            page, _ = bases.chunks(session, base, document_id=(document_id or "").strip() or None,
                                   search=(text or "").strip()[:200] or None, limit=200)
            names = bases.document_names(session, {c.document_id for c in page})
            return [[c.id, names.get(c.document_id, c.document_id), c.position, len(c.text), c.enabled, c.edited,
                     _short(c.text)] for c in page]
    except StackyardError:
        return []


def chunk_text(name: str | None, chunk_id: str) -> str:
    if not name or not (chunk_id or "").strip():
        return ""
    with session_scope() as session:
        found = bases.chunks_by_id(session, bases.get(session, name), [chunk_id.strip()])
        return found[0].text if found else ""


def save_chunk(name: str | None, chunk_id: str, text: str | None, enabled: bool | None = None) -> str:
    """Save a chunk's new text (only it is embedded again) or switch it on or off."""
    if not name or not (chunk_id or "").strip():
        return "⚠️ Pick a chunk in the table first."
    try:
        with session_scope() as session:
            base = bases.get(session, name)
            chunk, document = bases.edit_chunk(session, base, chunk_id.strip(), text=text, enabled=enabled)
            session.expunge_all()
        search.reindex_chunk(base, chunk, document, get_settings())
    except StackyardError as exc:
        return _fail(exc)
    except Exception as exc:  # noqa: BLE001 - the row is saved; the vector store did not answer
        return f"⚠️ Chunk saved, but its vector was not updated ({type(exc).__name__}: {exc}); save it again."
    what = "saved and embedded again" if text is not None else ("switched on" if chunk.enabled else "switched off")
    return f"✅ Chunk {chunk.position} of its document {what}."


def _hit_rows(hits: list[dict[str, Any]]) -> list[list]:
    return [[i + 1, round(h["score"], 4), "" if h["dense"] is None else round(h["dense"], 4),
             "" if h["keyword"] is None else round(h["keyword"], 4), h["document"] or "", h["position"],
             _short(h["text"]), h["chunk_id"], _answers_for(h)] for i, h in enumerate(hits)]


def _answers_for(hit: dict[str, Any]) -> str:
    """A parent's hit: the chunks of it that matched (the parent answers in their place)."""
    kids = hit.get("chunks") or []
    return f"parent of {len(kids)} matched chunk(s): {', '.join(k[:8] for k in kids)}" if kids else ""


def chart_html(hits: list[dict[str, Any]], mode: str, scale: str | None = None) -> str:
    """The hits' scores as horizontal bars: cosine similarity on its own 0..1 width, BM25 and rank-fusion
    scores (no fixed top) relative to the best hit."""
    if not hits:
        return '<div id="kb-chart"></div>'
    top = 1.0 if mode == "dense" else max(h["score"] for h in hits) or 1.0
    bars = "".join(
        f'<div class="kb-bar" data-chunk="{html.escape(h["chunk_id"])}" data-score="{h["score"]:.4f}" '
        f'style="display:grid;grid-template-columns:22em 1fr 5em;gap:8px;align-items:center;margin:3px 0">'
        f'<span style="overflow:hidden;text-overflow:ellipsis;white-space:nowrap">#{i + 1} '
        f'{html.escape(Path(h["document"] or "?").name)} · {"passage" if h.get("chunks") else "chunk"} '
        f'{h["position"]}</span>'
        f'{_bar(100 * max(h["score"], 0.0) / top, "#f97316")}<span>{h["score"]:.4f}</span></div>'
        for i, h in enumerate(hits))
    return f'<div id="kb-chart"><p><b>Scores</b> ({html.escape(scale or SCALES[mode][0])})</p>{bars}</div>'


def ask(name: str | None, query: str, mode: str, top_k: Any) -> tuple[str, str, list[list]]:
    """A retrieval test: the line saying what answered, the score chart, the hits table."""
    empty = chart_html([], "dense")
    if not name:
        return "⚠️ Pick a knowledge base first.", empty, []
    try:
        k = fields.whole_number(top_k, field="Top k", high=100, empty=None)
        with session_scope() as session:
            answer = queries.ask(session, bases.get(session, name), query or "", get_settings(), mode=mode or None,
                                 top_k=k)
    except (StackyardError, ValueError) as exc:
        return _fail(exc), empty, []
    hits = answer.hits
    chart = chart_html(hits, answer.mode, answer.scale)
    rows = _hit_rows(hits)
    notice = f" {answer.notice}" if answer.notice else ""
    line = (f"**{len(hits)} hit(s)** in {answer.took_ms:g} ms from generation {answer.generation}, {answer.mode} "
            f"(scores: {answer.scale}).{notice}")
    return line, chart, rows


QUERY_HEADERS = ["id", "asked", "query", "mode", "generation", "hits", "best", "test case"]


def history_table(name: str | None) -> list[list]:
    """Recorded retrieval tests, newest first."""
    if not name:
        return []
    try:
        with session_scope() as session:
            rows = queries.history(session, bases.get(session, name), limit=50)
            return [[q.id, q.created_at.strftime("%Y-%m-%d %H:%M:%S"), _short(q.query), q.mode, q.generation,
                     len(q.hits), (q.hits[0].get("document") or "") if q.hits else "",
                     "yes" if q.expected else ""] for q in rows]
    except StackyardError:
        return []


def rerun(name: str | None, query_id: str) -> tuple[str, str, list[list]]:
    """Ask a recorded query again; the line says what changed since it was recorded."""
    if not name or not (query_id or "").strip():
        return "⚠️ Pick a recorded query first.", chart_html([], "dense"), []
    try:
        with session_scope() as session:
            answer, change = queries.rerun(session, bases.get(session, name), query_id.strip(), get_settings())
    except StackyardError as exc:
        return _fail(exc), chart_html([], "dense"), []
    what = "the same chunks in the same order" if change["same"] else (
        f"{len(change['gained'])} chunk(s) gained, {len(change['lost'])} lost")
    line = (f"**Asked again** on generation {answer.generation} (recorded on {change['generation_before']}): {what}.")
    return line, chart_html(answer.hits, answer.mode, answer.scale), _hit_rows(answer.hits)


def save_case(name: str | None, query_id: str) -> str:
    if not name or not (query_id or "").strip():
        return "⚠️ Pick a recorded query first."
    try:
        with session_scope() as session:
            row = queries.save_case(session, bases.get(session, name), query_id.strip(), None)
            sources = ", ".join(e["document"] or e["document_id"] for e in row.expected or [])
    except StackyardError as exc:
        return _fail(exc)
    return f"✅ Kept as a test case: a right answer finds {sources}."


def reindex(name: str | None, length: Any, overlap: Any, parent_length: Any = None) -> str:
    if not name:
        return "⚠️ Pick a knowledge base first."
    try:
        with session_scope() as session:
            base = bases.get(session, name)
            current = Chunking(**base.chunking)
            parent = fields.whole_number(parent_length, field="Parent length", low=0, high=100_000, empty=-1)
            chunking = Chunking(**{**current.model_dump(),
                "length": fields.whole_number(length, field="Chunk length", high=100_000, empty=current.length),
                "overlap": fields.whole_number(overlap, field="Overlap", low=0, high=100_000, empty=current.overlap),
                "parent_length": current.parent_length if parent == -1 else (parent or None)})
            again = generations.start(session, base, get_settings(), chunking=chunking,
                                      apps=apps_using_knowledge_base(session, name))
        enqueue_documents(again)
    except (StackyardError, ValueError) as exc:
        return _fail(exc)
    return (f"✅ Re-indexing {len(again)} document(s) with chunks of {chunking.length}"
            f"{_parents(chunking.model_dump())}; the current index answers until the new one is complete.")


def cancel_reindex(name: str | None) -> str:
    if not name:
        return "⚠️ Pick a knowledge base first."
    try:
        with session_scope() as session:
            base = bases.get(session, name)
            abandoned, again = generations.cancel(session, base)
        enqueue_documents(again)
        search.drop_generation(base, abandoned, get_settings())
    except StackyardError as exc:
        return _fail(exc)
    except Exception as exc:  # noqa: BLE001 - cancelled and committed; the vector store did not answer
        return (f"⚠️ The re-index is cancelled, but its collection was not dropped ({type(exc).__name__}: {exc}); "
                "drop it when the vector store answers.")
    return f"✅ Re-index into generation {abandoned} cancelled; generation {base.generation} keeps answering."


def workflow_hint(name: str | None) -> str:
    if not name:
        return ""
    return (f"In a workflow, a Milvus retriever or document writer reads this base with `document_store: {{type: "
            f"knowledge_base, init_parameters: {{name: {name}}}}}`; export writes it as a plain `{MILVUS_STORE}`.")


def build() -> gr.Blocks:
    with gr.Blocks(title="Stackyard knowledge") as page:
        gr.Markdown("## Knowledge bases\nLoad → split → embed → store, and check each step: see the chunks a "
                    "document became, and test a query with the same retriever code a published app runs.")
        with gr.Row():
            base = gr.Dropdown(label="Knowledge base", choices=[], elem_id="kb-base")
            refresh_btn = gr.Button("Refresh")
        with gr.Accordion("New knowledge base", open=False, elem_id="kb-new"):
            with gr.Row():
                new_name = gr.Textbox(label="Name", placeholder="handbook", elem_id="kb-name")
                description = gr.Textbox(label="Description")
            with gr.Row():
                unit = gr.Radio(["word", "char"], value="word", label="Chunk unit")
                length = gr.Number(label="Chunk length", value=200, precision=0, elem_id="kb-length")
                overlap = gr.Number(label="Overlap", value=20, precision=0, elem_id="kb-overlap")
                mode = gr.Radio(list(MODES), value="dense", label="Retrieval")
                top_k = gr.Number(label="Top k", value=5, precision=0)
                ranker = gr.Textbox(label="Ranker (a cross-encoder, optional)", placeholder="models on /models")
                parent_length = gr.Textbox(label="Parent length (words, optional)", max_lines=1,
                                           elem_id="kb-parent-length", placeholder="none",
                                          info="Parent–child: match small chunks, answer with the passage of this "
                                               "many words they were cut from.")
            create_btn = gr.Button("Create knowledge base", variant="primary", elem_id="kb-create")
        status = gr.Markdown(elem_id="kb-message")
        summary = gr.HTML(summary_html(None), elem_id="kb-summary")
        hint = gr.Markdown()

        gr.Markdown("### Documents")
        with gr.Row():
            uploads = gr.File(label="Files", file_count="multiple", type="filepath", elem_id="kb-upload",
                              file_types=[".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".csv"])
            folder = gr.File(label="A folder", file_count="directory", type="filepath", elem_id="kb-folder")
            with gr.Column():
                paths = gr.Textbox(label="Files, folders or globs under the files root", lines=2)
                urls = gr.Textbox(label="URLs (one per line)", lines=2, elem_id="kb-urls")
            with gr.Column():
                text_name = gr.Textbox(label="Text name")
                text = gr.Textbox(label="Or paste text", lines=3)
        with gr.Accordion("Preview the chunks first (nothing is embedded)", open=False, elem_id="kb-preview"):
            with gr.Row():
                # text boxes: an empty number box sends 0, and 0 is an overlap (or "no parents") of its own
                pre_length = gr.Textbox(label="Chunk length", placeholder="the base's", max_lines=1,
                                        elem_id="kb-pre-length")
                pre_overlap = gr.Textbox(label="Overlap", placeholder="the base's", max_lines=1)
                pre_parent = gr.Textbox(label="Parent length (0: none)", placeholder="the base's", max_lines=1)
                preview_btn = gr.Button("Preview chunks", elem_id="kb-preview-btn")
            preview_line = gr.Markdown(elem_id="kb-preview-line")
            preview_rows = gr.Dataframe(headers=PREVIEW_HEADERS, interactive=False, wrap=True,
                                        elem_id="kb-preview-chunks")
        add_btn = gr.Button("Add documents", variant="primary", elem_id="kb-add")
        progress = gr.HTML(elem_id="kb-progress")
        documents = gr.Dataframe(headers=DOCUMENT_HEADERS, interactive=False, wrap=True, elem_id="kb-documents")
        with gr.Row():
            document_id = gr.Textbox(label="Document id", elem_id="kb-document-id")
            retry_btn = gr.Button("Retry document")
            off_doc_btn = gr.Button("Switch document off")
            on_doc_btn = gr.Button("Switch document on")
            delete_doc_btn = gr.Button("Delete document", variant="stop")

        gr.Markdown("### Chunks")
        with gr.Row():
            chunk_search = gr.Textbox(label="Search chunks", elem_id="kb-chunk-search")
            search_btn = gr.Button("Search")
        chunks = gr.Dataframe(headers=CHUNK_HEADERS, interactive=False, wrap=True, elem_id="kb-chunks")
        with gr.Row():
            chunk_id = gr.Textbox(label="Chunk id", elem_id="kb-chunk-id")
            chunk_body = gr.Textbox(label="Chunk text", lines=4, elem_id="kb-chunk-text")
            with gr.Column():
                save_btn = gr.Button("Save chunk", variant="primary")
                off_btn = gr.Button("Switch off")
                on_btn = gr.Button("Switch on")

        gr.Markdown("### Test retrieval")
        with gr.Row():
            query = gr.Textbox(label="Query", elem_id="kb-query")
            query_mode = gr.Radio(list(MODES), value="dense", label="Mode", elem_id="kb-mode")
            query_k = gr.Number(label="Top k", value=5, precision=0)
            ask_btn = gr.Button("Test query", variant="primary", elem_id="kb-ask")
        answer = gr.Markdown(elem_id="kb-answer")
        plot = gr.HTML(chart_html([], "dense"), elem_id="kb-plot")
        hits = gr.Dataframe(headers=HIT_HEADERS, interactive=False, wrap=True, elem_id="kb-hits")
        gr.Markdown("#### Recorded queries\nEvery test is kept: ask one again after an edit or a re-index to see what "
                    "changed, or keep it as a test case (its first hit's document is the right source) for "
                    "evaluations.")
        history = gr.Dataframe(headers=QUERY_HEADERS, interactive=False, wrap=True, elem_id="kb-queries")
        with gr.Row():
            query_id = gr.Textbox(label="Recorded query id", elem_id="kb-query-id")
            rerun_btn = gr.Button("Ask again")
            case_btn = gr.Button("Keep as test case")

        gr.Markdown("### Re-index\nBuild the index again with other chunks; the current one keeps answering until "
                    "the new one holds every document. Edited and hand-added chunks carry over.")
        with gr.Row():
            re_length = gr.Textbox(label="New chunk length", placeholder="the same", max_lines=1, elem_id="kb-re-length")
            re_overlap = gr.Textbox(label="New overlap", placeholder="the same", max_lines=1, elem_id="kb-re-overlap")
            re_parent = gr.Textbox(label="New parent length (0: none)", placeholder="the same", max_lines=1,
                                   elem_id="kb-re-parent")
            reindex_btn = gr.Button("Re-index", elem_id="kb-reindex-btn")
            cancel_btn = gr.Button("Cancel re-index", variant="stop")
        timer = gr.Timer(1.5)

        def everything(name):
            return (summary_html(name), *documents_view(name), chunks_table(name, "", ""), workflow_hint(name),
                    history_table(name))

        def pick(rows, event: gr.SelectData):
            return str(rows.iloc[event.index[0], 0]) if event.index is not None else ""

        page.load(lambda: gr.update(choices=base_names()), outputs=[base])
        refresh_btn.click(lambda: gr.update(choices=base_names()), outputs=[base])
        create_btn.click(create_base, [new_name, description, unit, length, overlap, mode, top_k, ranker, parent_length],
                         [status, base])
        base.change(everything, [base], [summary, progress, documents, chunks, hint, history])
        add_btn.click(add_documents, [base, uploads, paths, text_name, text, urls, folder], [status])
        preview_btn.click(preview_chunks, [base, uploads, folder, paths, text, pre_length, pre_overlap, pre_parent],
                          [preview_line, preview_rows])
        timer.tick(lambda name: (summary_html(name), *documents_view(name)), [base], [summary, progress, documents])
        documents.select(pick, [documents], [document_id])
        document_id.change(lambda name, d, q: chunks_table(name, d, q), [base, document_id, chunk_search], [chunks])
        retry_btn.click(retry_document, [base, document_id], [status])
        off_doc_btn.click(lambda name, d: document_switch(name, d, False), [base, document_id], [status])
        on_doc_btn.click(lambda name, d: document_switch(name, d, True), [base, document_id], [status])
        delete_doc_btn.click(delete_document, [base, document_id], [status])
        search_btn.click(chunks_table, [base, document_id, chunk_search], [chunks])
        chunk_search.submit(chunks_table, [base, document_id, chunk_search], [chunks])
        chunks.select(pick, [chunks], [chunk_id])
        chunk_id.change(chunk_text, [base, chunk_id], [chunk_body])
        save_btn.click(lambda name, c, t: save_chunk(name, c, t), [base, chunk_id, chunk_body], [status])
        off_btn.click(lambda name, c: save_chunk(name, c, None, False), [base, chunk_id], [status])
        on_btn.click(lambda name, c: save_chunk(name, c, None, True), [base, chunk_id], [status])
        for asking in (ask_btn.click, query.submit):
            asking(ask, [base, query, query_mode, query_k], [answer, plot, hits]).then(history_table, [base], [history])
        history.select(pick, [history], [query_id])
        rerun_btn.click(rerun, [base, query_id], [answer, plot, hits]).then(history_table, [base], [history])
        case_btn.click(save_case, [base, query_id], [status]).then(history_table, [base], [history])
        reindex_btn.click(reindex, [base, re_length, re_overlap, re_parent], [status])
        cancel_btn.click(cancel_reindex, [base], [status])
    return page


def mount_knowledge(app: FastAPI) -> None:
    mount_page(app, build(), PATH, uploads=MAX_FILE_BYTES)
