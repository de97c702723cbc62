"""What a knowledge base's documents are made of: reading a source (pasted text or a file under the files root)
with Haystack's converters, and splitting it with the base's chunking — the one code path the preview, the
indexing worker and a re-index share.

Nothing here writes: ``knowledge.bases`` stores, ``knowledge.indexing`` runs on the workers.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from knowledge.settings import BadKnowledgeSettings, Chunking
from nodes.errors import NodeInputError
from nodes.files import FileSource, confine_path
from stackyard.errors import StackyardError

# Suffix → Haystack converter (module, class): the ingest template's loaders, and CSV.
CONVERTERS: dict[str, tuple[str, str]] = {
    ".txt": ("haystack.components.converters.txt", "TextFileToDocument"),
    ".md": ("haystack.components.converters.markdown", "MarkdownToDocument"),
    ".html": ("haystack.components.converters.html", "HTMLToDocument"),
    ".htm": ("haystack.components.converters.html", "HTMLToDocument"),
    ".pdf": ("haystack.components.converters.pypdf", "PyPDFToDocument"),
    ".docx": ("haystack.components.converters.docx", "DOCXToDocument"),
    ".csv": ("haystack.components.converters.csv", "CSVToDocument"),
}
MAX_FILE_BYTES = 50_000_000
MAX_FILES = 1000          # one request adds at most this many files (a folder is expanded first)
MAX_CHUNKS = 10_000       # one document splits into at most this many chunks (a Milvus query returns 16,384)
MAX_PARENT_BYTES = 65_535  # the longest text a Milvus row holds


class BadDocument(StackyardError):
    status = 422


@dataclass(frozen=True)
class Source:
    """One document to add: pasted ``text`` or a confined ``path``, with its bytes' hash."""

    name: str
    kind: str                  # "text" or "file"
    content_hash: str
    size_bytes: int
    text: str | None = None
    path: Path | None = None
    url: str | None = None


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def text_source(name: str, text: str, *, field: str = "texts") -> Source:
    if not name.strip() or len(name) > 500:
        raise BadDocument(f"{field}: each text needs a name of 1-500 characters.", field=f"{field}.name")
    if not text.strip():
        raise BadDocument(f"{field}: '{name}' is empty; paste the text to index.", field=f"{field}.text")
    data = text.encode("utf-8")
    return Source(name=name, kind="text", content_hash=digest(data), size_bytes=len(data), text=text)


MIME_SUFFIX = {"text/plain": ".txt", "text/markdown": ".md", "text/html": ".html", "application/xhtml+xml": ".html",
               "application/pdf": ".pdf", "text/csv": ".csv",
               "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx"}
MAX_URL_CHARS = 2000


def url_source(url: str, *, field: str = "urls") -> Source:
    """A web page or file to fetch when the document is indexed: checked now against the fetch guard (http(s), a
    public address or an allowed host), fetched then by the guarded fetcher. The same URL twice is skipped."""
    from nodes.fetchers import check_outbound_url

    url = url.strip()
    if not url or len(url) > MAX_URL_CHARS:
        raise BadDocument(f"{field}: a URL is 1-{MAX_URL_CHARS} characters.", field=field)
    try:
        check_outbound_url(url, field=field)
    except NodeInputError as exc:
        raise BadDocument(f"{field}: {exc}", field=field) from None
    # the name is what lists show (500 characters); the whole URL is the document's path
    return Source(name=url[:500], kind="url", content_hash=digest(f"url\x00{url}".encode()), size_bytes=0, url=url)


def file_sources(paths: list[str], *, field: str = "paths") -> list[Source]:
    """The files ``paths`` name (files, folders, globs under the files root), each checked: a supported type,
    not empty, not too large. Raises on the first that is not, naming it: nothing is added then."""
    try:
        files = FileSource().run(paths=paths)["sources"]
    except NodeInputError as exc:   # outside the files root, or names nothing
        raise BadDocument(str(exc), field=field) from None
    if len(files) > MAX_FILES:
        raise BadDocument(f"{field} names {len(files)} files; add at most {MAX_FILES} at a time.", field=field)
    root = confine_path(".")
    sources = []
    for path in files:
        shown = str(path.relative_to(root))
        size = _check_file(path, shown, field)
        sources.append(Source(name=shown, kind="file", content_hash=digest(path.read_bytes()), size_bytes=size,
                              path=path))
    return sources


UPLOADS = "uploads"     # uploaded files are kept under <files root>/uploads/<base>/<batch>/


def store_uploads(files: list[Path], base_name: str, *, received_in: Path) -> list[str]:
    """Copy files a page received into the files root, where documents are read from; their paths relative to
    it. Only files under ``received_in`` (the page's upload folder) are taken: a path the browser names is not
    trusted to be an upload. Each is checked (type, size) before anything is copied. Names are reduced to
    letters, digits, '.', '_' and '-'; each call gets its own folder, so an upload never overwrites a file a
    document already reads."""
    if len(files) > MAX_FILES:
        raise BadDocument(f"Upload at most {MAX_FILES} files at a time.", field="files")
    checked = _received(files, received_in)
    folder = confine_path(Path(UPLOADS) / _safe(base_name) / uuid.uuid4().hex[:12])
    folder.mkdir(parents=True, exist_ok=True)
    stored = []
    for file in checked:
        target = folder / (_safe(file.name) or "upload")
        if target.exists():
            target = target.with_stem(f"{target.stem}-{len(stored)}")
        shutil.copyfile(file, target)
        stored.append(str(target.relative_to(confine_path("."))))
    return stored


def received_source(file: Path, *, received_in: Path) -> Source:
    """A file the page received, to preview where it is (nothing is copied): checked as an upload is."""
    [real] = _received([file], received_in)
    return Source(name=file.name, kind="file", content_hash=digest(real.read_bytes()), size_bytes=real.stat().st_size,
                  path=real)


def _received(files: list[Path], received_in: Path) -> list[Path]:
    """``files`` resolved, each under ``received_in`` (the page's upload folder) and of a type and size a base
    reads; else the error naming the first that is not."""
    inbox = received_in.resolve()
    checked = []
    for file in files:
        real = file.resolve()
        if not real.is_relative_to(inbox) or not real.is_file():
            raise BadDocument(f"files: '{file.name}' is not a file this page received; upload it again.",
                              field="files")
        _check_file(real, file.name, "files")
        checked.append(real)
    return checked


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:200]


def _check_file(path: Path, shown: str, field: str) -> int:
    """A file a knowledge base can read: a supported type, not empty, not too large; its size."""
    if path.suffix.lower() not in CONVERTERS:
        raise BadDocument(f"{field}: '{shown}' is a {path.suffix or 'suffix-less'} file; a knowledge base reads "
                          f"{', '.join(sorted(CONVERTERS))}. Convert it or leave it out.", field=field)
    size = path.stat().st_size
    if size == 0:
        raise BadDocument(f"{field}: '{shown}' is empty (0 bytes); nothing in it could be found. Leave it out.",
                          field=field)
    if size > MAX_FILE_BYTES:
        raise BadDocument(f"{field}: '{shown}' is {size:,} bytes; a document may be at most {MAX_FILE_BYTES:,}. "
                          "Split it into smaller files.", field=field)
    return size


def read(name: str, *, text: str | None = None, path: Path | None = None, url: str | None = None,
         root: Path | None = None) -> list[Any]:
    """The Haystack documents in one source (a file's converter by its suffix, a fetched URL's by its content
    type; pasted text as it is). A file is read only inside ``root`` (default: the files root)."""
    from haystack import Document

    if text is not None:
        return [Document(content=text, meta={"file_name": name})]
    if url is not None:
        source, suffix = _fetch(url)
    else:
        assert path is not None
        source, suffix = confine_path(path, root), path.suffix.lower()
    module, cls = CONVERTERS[suffix]
    import importlib

    converter = getattr(importlib.import_module(module), cls)()
    documents = converter.run(sources=[source])["documents"]
    for document in documents:
        document.meta["file_name"] = name
    if not any((document.content or "").strip() for document in documents):
        raise BadDocument(f"'{name}' holds no text a converter could read (a scanned PDF, an image?).", field="paths")
    return documents


def _fetch(url: str) -> tuple[Any, str]:
    """The page or file at ``url`` (the guarded fetcher, at most MAX_FILE_BYTES) and the suffix of its type."""
    from nodes.fetchers import GuardedLinkContentFetcher

    try:
        [stream] = GuardedLinkContentFetcher(max_bytes=MAX_FILE_BYTES, timeout=10).run(urls=[url])["streams"]
    except NodeInputError as exc:
        raise BadDocument(str(exc), field="urls") from None
    mime = (stream.mime_type or stream.meta.get("content_type") or "").split(";")[0].strip().lower()
    if mime not in MIME_SUFFIX:
        raise BadDocument(f"{url} is {mime or 'of no stated type'}; a knowledge base reads "
                          f"{', '.join(sorted(MIME_SUFFIX))}.", field="urls")
    if not stream.data:
        raise BadDocument(f"{url} sent nothing (0 bytes).", field="urls")
    return stream, MIME_SUFFIX[mime]


def split(documents: list[Any], chunking: Chunking) -> list[Any]:
    """The chunks of ``documents`` under ``chunking`` (Haystack's RecursiveDocumentSplitter; under parent–child,
    the chunks :func:`split_in_parents` cuts)."""
    if chunking.parent_length:
        return [chunk for chunk, _ in split_in_parents(documents, chunking)[0]]
    from haystack.components.preprocessors import RecursiveDocumentSplitter

    splitter = RecursiveDocumentSplitter(split_length=chunking.length, split_overlap=chunking.overlap,
                                         split_unit=chunking.unit, separators=list(chunking.separators))
    splitter.warm_up()
    return _counted([chunk for chunk in splitter.run(documents=documents)["documents"] if (chunk.content or "").strip()])


def split_in_parents(documents: list[Any], chunking: Chunking) -> tuple[list[tuple[Any, int | None]], list[str]]:
    """Parent–child: Haystack's HierarchicalDocumentSplitter cuts parents of ``parent_length`` words and chunks of
    ``length`` words from each. The chunks in order, each with the position of its parent among the parents'
    texts (None: a document no longer than one chunk, which is its own parent), and those texts."""
    from haystack.components.preprocessors import HierarchicalDocumentSplitter

    assert chunking.parent_length is not None
    made = HierarchicalDocumentSplitter(block_sizes={chunking.parent_length, chunking.length},
                                        split_overlap=chunking.overlap, split_by="word").run(documents=documents)
    by_id = {document.id: document for document in made["documents"]}
    parents: dict[str, int] = {}
    texts: list[str] = []
    chunks: list[tuple[Any, int | None]] = []
    for document in made["documents"]:
        if document.meta.get("__children_ids") or not (document.content or "").strip():
            continue
        parent = by_id.get(document.meta.get("__parent_id") or "")
        if parent is not None and parent.id not in parents:
            parents[parent.id] = len(texts)
            texts.append(parent.content or "")
        meta = {k: v for k, v in document.meta.items() if not k.startswith("__")}
        chunks.append((replace(document, meta=meta), None if parent is None else parents[parent.id]))
    _counted(chunks)
    for position, text in enumerate(texts):
        if len(text.encode("utf-8")) > MAX_PARENT_BYTES:
            raise BadKnowledgeSettings(f"Parent chunk {position} of this document is {len(text.encode()):,} bytes; the "
                                       f"vector store keeps at most {MAX_PARENT_BYTES:,}. Lower "
                                       "chunking.parent_length.", field="chunking.parent_length")
    return chunks, texts


def _counted(chunks: list[Any]) -> list[Any]:
    if len(chunks) > MAX_CHUNKS:
        raise BadKnowledgeSettings(f"This document splits into {len(chunks):,} chunks, more than {MAX_CHUNKS:,}; raise "
                                   "chunking.length or split the document.", field="chunking.length")
    return chunks


def preview(source: Source, chunking: Chunking, *, first: int = 5, root: Path | None = None) -> dict[str, Any]:
    """The first chunks ``chunking`` makes of ``source`` and how many there are in all; nothing is embedded. A
    file is read inside ``root`` (default: the files root; the page's upload folder for an upload)."""
    chunks = split(read(source.name, text=source.text, path=source.path, root=root), chunking)
    return {"name": source.name, "total": len(chunks),
            "chunks": [{"position": index, "text": chunk.content, "length": len(chunk.content or "")}
                       for index, chunk in enumerate(chunks[:first])]}
