"""Where a batch job's items come from, and how each becomes a workflow's inputs.

A source yields *records* (dicts); the job's ``mapping`` (declared input → record field) and ``fixed``
inputs turn each record into one item's inputs, checked against the workflow before anything is stored.

* ``{"type": "csv", "data": "<text>"}`` — one item per row; fields are the header's columns (strings).
* ``{"type": "jsonl", "data": "<text>"}`` — one item per line, a JSON object; fields are its keys.
* ``{"type": "files", "paths": ["reports", "notes/*.md"]}`` — one item per file under the files root
  (folders and globs expanded as the Files node does); the field is ``path``, passed to the workflow's
  file input as a one-file list.
* ``{"type": "single", "inputs": {...}}`` — one item with these inputs.

Without a mapping, a field feeds the input of the same name; a files source feeds the workflow's file
input (the one wired to a Files node or a converter's ``sources``).

Example::

    source = read_source({"type": "csv", "data": "q\\nWho?\\nWhy?\\n"})
    item_inputs(spec, source, mapping={"question": "q"}, fixed={}, required=["question"])
    # [{'question': 'Who?'}, {'question': 'Why?'}]
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from stackyard.errors import StackyardError
from stackyard.json_limits import MAX_JSON_DEPTH, JsonTooDeep, loads
from stackyard.settings import get_settings
from workflows.spec import WorkflowSpec, split_socket

FILES_NODE = "nodes.files.FileSource"
_FILE_SOCKETS = frozenset({"sources", "paths"})
PATH_FIELD = "path"


class BadJobSource(StackyardError):
    status = 422
    field = "source"


class CsvSource(BaseModel):
    type: Literal["csv"]
    data: str = Field(description="CSV text with a header row")


class JsonlSource(BaseModel):
    type: Literal["jsonl"]
    data: str = Field(description="One JSON object per line")


class FilesSource(BaseModel):
    type: Literal["files"]
    paths: list[str] = Field(min_length=1, description="Files, folders or globs relative to the files root")


class SingleSource(BaseModel):
    type: Literal["single"]
    inputs: dict[str, Any] = Field(default_factory=dict)


SourceSpec = Annotated[CsvSource | JsonlSource | FilesSource | SingleSource, Field(discriminator="type")]
_ADAPTER: TypeAdapter[SourceSpec] = TypeAdapter(SourceSpec)


@dataclass
class ItemRecords:
    kind: str
    records: list[dict[str, Any]]
    summary: dict[str, Any]        # stored on the job: what the items came from, not the data


def parse_source(source: dict[str, Any] | BaseModel) -> SourceSpec:
    if isinstance(source, BaseModel):
        return source
    try:
        return _ADAPTER.validate_python(source)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("source", *first["loc"]))
        raise BadJobSource(f"{where}: {first['msg']}; a source is {{'type': 'csv'|'jsonl', 'data': '<text>'}}, "
                           "{'type': 'files', 'paths': [...]} or {'type': 'single', 'inputs': {...}}.",
                           field=where) from None


def read_source(source: dict[str, Any] | BaseModel | ItemRecords) -> ItemRecords:
    """Expand a source into records (files are listed now: the job's items are fixed when it is created).
    Records another room made (an evaluation's cases) are taken as they are, within the same limits."""
    settings = get_settings()
    if isinstance(source, ItemRecords):
        if not source.records or len(source.records) > settings.job_max_items:
            raise BadJobSource(f"A job has 1 to {settings.job_max_items} items (STACKYARD_JOB_MAX_ITEMS); this one "
                               f"would have {len(source.records)}.")
        return source
    spec = parse_source(source)
    if isinstance(spec, (CsvSource, JsonlSource)) and len(spec.data.encode()) > settings.job_upload_max_bytes:
        raise BadJobSource(f"The {spec.type.upper()} data is over {settings.job_upload_max_bytes} bytes "
                           "(STACKYARD_JOB_UPLOAD_MAX_BYTES); split it into several jobs.", field="source.data")
    if isinstance(spec, CsvSource):
        records, summary = _csv(spec.data)
    elif isinstance(spec, JsonlSource):
        records, summary = _jsonl(spec.data)
    elif isinstance(spec, FilesSource):
        records, summary = _files(spec.paths)
    else:
        records, summary = [dict(spec.inputs)], {}
    if not records:
        raise BadJobSource(f"The {spec.type} source has no items; a job needs at least one.")
    if len(records) > settings.job_max_items:
        raise BadJobSource(f"The source has {len(records)} items; a job may have {settings.job_max_items} "
                           "(STACKYARD_JOB_MAX_ITEMS). Split it into several jobs.")
    return ItemRecords(kind=spec.type, records=records, summary={"type": spec.type, "items": len(records), **summary})


def _csv(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = [c for c in reader.fieldnames or [] if c]
    if not columns:
        raise BadJobSource("The CSV has no header row; its first line must name the columns.", field="source.data")
    try:
        records = [{k: v for k, v in row.items() if k and v not in (None, "")} for row in reader]
    except csv.Error as exc:
        raise BadJobSource(f"The CSV cannot be read at line {reader.line_num}: {exc}.", field="source.data") from None
    return records, {"columns": columns}


def _jsonl(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    records, keys = [], {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = loads(line)
        except JsonTooDeep:
            raise BadJobSource(f"JSONL line {number} nests objects and arrays more than {MAX_JSON_DEPTH} levels deep; "
                               f"the limit is {MAX_JSON_DEPTH}. Flatten it (e.g. a long text as one string).",
                               field="source.data") from None
        except json.JSONDecodeError as exc:
            raise BadJobSource(f"JSONL line {number} is not valid JSON ({exc.msg} at column {exc.colno}).",
                               field="source.data") from None
        if not isinstance(record, dict):
            raise BadJobSource(f"JSONL line {number} is not a JSON object; each line must be one, such as "
                               '{"question": "..."}.', field="source.data")
        records.append(record)
        keys.update(dict.fromkeys(record))
    return records, {"keys": list(keys)}


def _files(paths: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from nodes.errors import FileAccessError
    from nodes.files import FileSource

    root = get_settings().resolved_files_root
    try:
        found = FileSource().run(paths=paths)["sources"]
    except FileAccessError as exc:
        raise BadJobSource(str(exc), field="source.paths") from None
    return [{PATH_FIELD: str(path.relative_to(root))} for path in found], {"paths": paths}


def file_input(spec: WorkflowSpec) -> str | None:
    """The declared input that takes files: wired to a Files node's ``paths`` or a converter's ``sources``."""
    found = [alias for alias, refs in spec.inputs.items()
             if any(split_socket(ref)[1] in _FILE_SOCKETS and
                    (spec.components[split_socket(ref)[0]].type == FILES_NODE or split_socket(ref)[1] == "sources")
                    for ref in refs)]
    return found[0] if len(found) == 1 else None


def resolve_mapping(spec: WorkflowSpec, source: ItemRecords, mapping: dict[str, str]) -> dict[str, str]:
    """The mapping with defaults filled in; refuses inputs the workflow lacks and fields the source lacks."""
    for alias in mapping:
        if alias not in spec.inputs:
            raise BadJobSource(f"mapping names input '{alias}', which the workflow does not declare; its inputs are "
                               f"{', '.join(sorted(spec.inputs)) or 'none'}.", field=f"mapping.{alias}")
    if source.kind == "single":
        return {}
    fields = [PATH_FIELD] if source.kind == "files" else source.summary.get("columns") or source.summary.get("keys", [])
    for alias, name in mapping.items():
        if name not in fields:
            raise BadJobSource(f"mapping sends '{name}' to input '{alias}', but the source has no such field; it has "
                               f"{', '.join(map(str, fields))}.", field=f"mapping.{alias}")
    resolved = dict(mapping)
    if source.kind == "files" and not mapping:
        loader = file_input(spec)
        if loader is None:
            raise BadJobSource("Which input takes the file? Map it: mapping {\"<input>\": \"path\"}; the workflow's "
                               f"inputs are {', '.join(sorted(spec.inputs)) or 'none'}.", field="mapping")
        resolved[loader] = PATH_FIELD
    elif source.kind != "files":
        resolved.update({alias: alias for alias in spec.inputs if alias in fields and alias not in mapping})
    if not resolved:
        raise BadJobSource(f"No input is fed by the source: its fields are {', '.join(map(str, fields))} and the "
                           f"workflow's inputs are {', '.join(sorted(spec.inputs))}; pass a mapping "
                           "{\"<input>\": \"<field>\"}.", field="mapping")
    return resolved


def item_inputs(spec: WorkflowSpec, source: ItemRecords, *, mapping: dict[str, str], fixed: dict[str, Any],
                required: list[str]) -> list[dict[str, Any]]:
    """Each record's inputs (fixed first, then mapped fields); every required input must be present."""
    from workflows.execute import check_known

    check_known(spec, fixed)
    if source.kind == "single":
        check_known(spec, source.records[0])
    resolved = resolve_mapping(spec, source, mapping)
    items = []
    for index, record in enumerate(source.records):
        inputs = dict(fixed)
        if source.kind == "single":
            inputs.update(record)
        for alias, name in resolved.items():
            if name in record:
                inputs[alias] = [record[name]] if source.kind == "files" else record[name]
        missing = [alias for alias in required if alias not in inputs]
        if missing:
            where = {"csv": f"row {index + 1}", "jsonl": f"item {index + 1}"}.get(source.kind, "the item")
            raise BadJobSource(f"{where}: input '{missing[0]}' is required but empty or missing; fill it, map a field "
                               f"to it or give it in fixed.", field=f"mapping.{missing[0]}")
        items.append(inputs)
    return items
