"""Test cases from CSV or JSONL, each checked with the line it came from before anything is stored.

A case is its ``inputs`` (the workflow's declared inputs by name; a single ``input`` goes to the workflow's one
text input), an optional expected answer, optional expected sources (knowledge-base document ids with a gold
snippet), tags and a ``key`` (its id; made from its position when not given).

* CSV: a header row; ``input`` or ``input.<name>`` columns (one at least), ``id``, ``expected_answer``,
  ``expected_document_ids`` and ``tags`` (several separated by ``|``), ``expected_snippet``.
* JSONL: one object per line: ``{"id", "input" | "inputs": {...}, "expected_answer", "expected_sources":
  [{"document_id", "snippet"}], "tags": [...]}``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from stackyard.errors import StackyardError
from stackyard.json_limits import MAX_JSON_DEPTH, JsonTooDeep, loads, too_deep

MAX_CASES = 100_000
MAX_IMPORT_BYTES = 50_000_000
MAX_FIELD_CHARS = 100_000
SEPARATOR = "|"
INPUT = "input"


class BadTestSet(StackyardError):
    status = 422


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document_id: str = Field(min_length=1, max_length=64)
    document: str | None = Field(default=None, max_length=500)
    snippet: str = Field(default="", max_length=2000)
    chunk_id: str | None = Field(default=None, max_length=64, description="For match 'chunk' only: chunk ids do "
                                                                           "not survive re-chunking")
    meta: dict[str, StrictStr | StrictInt | StrictFloat] = Field(default_factory=dict, max_length=10,
                                                description="For match 'meta.<key>': the value a right document has")


class CaseIn(BaseModel):
    """One case as given."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(default=None, min_length=1, max_length=100, description="The case's id (default: made "
                                                                                         "from its position)")
    inputs: dict[str, Any] = Field(min_length=1, max_length=50, description="The workflow's inputs by name; "
                                                                            "'input' feeds its one text input")
    expected_answer: str | None = Field(default=None, max_length=MAX_FIELD_CHARS)
    expected_sources: list[Source] = Field(default_factory=list, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("inputs")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        if too_deep(value):
            raise ValueError(f"inputs nest more than {MAX_JSON_DEPTH} levels deep")
        if len(json.dumps(value)) > MAX_FIELD_CHARS:
            raise ValueError(f"inputs are over {MAX_FIELD_CHARS:,} characters")
        return value

    @field_validator("tags")
    @classmethod
    def _short_tags(cls, value: list[str]) -> list[str]:
        if any(not 1 <= len(tag) <= 50 for tag in value):
            raise ValueError("each tag is 1-50 characters")
        return value


def parse(text: str, kind: str) -> list[CaseIn]:
    """The cases in ``text`` (``kind``: "csv" or "jsonl"); the first bad line is refused, naming it."""
    if len(text.encode("utf-8")) > MAX_IMPORT_BYTES:
        raise BadTestSet(f"The {kind.upper()} is over {MAX_IMPORT_BYTES:,} bytes; split it into several imports.",
                         field="data")
    rows = _csv(text) if kind == "csv" else _jsonl(text) if kind == "jsonl" else None
    if rows is None:
        raise BadTestSet(f"format must be csv or jsonl, not '{kind}'.", field="format")
    cases = []
    for where, row in rows:
        if len(cases) >= MAX_CASES:
            raise BadTestSet(f"More than {MAX_CASES:,} cases; a test set holds at most that. Split it.", field="data")
        try:
            cases.append(CaseIn.model_validate(row))
        except ValidationError as exc:
            first = exc.errors()[0]
            name = ".".join(str(p) for p in first["loc"]) or "case"
            raise BadTestSet(f"{where}: {name}: {first['msg']}.", field="data") from None
    if not cases:
        raise BadTestSet(f"The {kind.upper()} holds no cases.", field="data")
    return cases


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(SEPARATOR) if part.strip()]


def _csv(text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = [c.strip() for c in reader.fieldnames or [] if c]
    if not any(c == INPUT or c.startswith(INPUT + ".") for c in columns):
        raise BadTestSet(f"The CSV has no input column (its columns: {', '.join(columns) or 'none'}). Name the "
                         "question's column 'input', or 'input.<name>' for each workflow input.", field="data")
    known = {"id", "expected_answer", "expected_document_ids", "expected_snippet", "tags"}
    unknown = [c for c in columns if c not in known and c != INPUT and not c.startswith(INPUT + ".")]
    if unknown:
        raise BadTestSet(f"The CSV has column(s) {', '.join(unknown)} that a case has no place for; use input, "
                         f"input.<name>, {', '.join(sorted(known))}.", field="data")
    try:
        for row in reader:
            row = {(k or "").strip(): v for k, v in row.items() if k}
            inputs = {(k.split(".", 1)[1] if "." in k else INPUT): v for k, v in row.items()
                      if (k == INPUT or k.startswith(INPUT + ".")) and v not in (None, "")}
            snippet = (row.get("expected_snippet") or "").strip()
            case: dict[str, Any] = {"inputs": inputs, "tags": _split(row.get("tags")),
                                    "expected_sources": [{"document_id": d, "snippet": snippet}
                                                         for d in _split(row.get("expected_document_ids"))]}
            if (row.get("id") or "").strip():
                case["key"] = row["id"].strip()
            if (row.get("expected_answer") or "").strip():
                case["expected_answer"] = row["expected_answer"]
            yield f"CSV line {reader.line_num}", case
    except csv.Error as exc:
        raise BadTestSet(f"The CSV cannot be read at line {reader.line_num}: {exc}.", field="data") from None


def _jsonl(text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"JSONL line {number}"
        try:
            record = loads(line)
        except JsonTooDeep:
            raise BadTestSet(f"{where} nests more than {MAX_JSON_DEPTH} levels deep.", field="data") from None
        except json.JSONDecodeError as exc:
            raise BadTestSet(f"{where} is not valid JSON ({exc.msg} at column {exc.colno}).", field="data") from None
        if not isinstance(record, dict):
            raise BadTestSet(f'{where} is not a JSON object; each line is one, such as {{"input": "..."}}.',
                             field="data")
        record = dict(record)
        if INPUT in record:
            if "inputs" in record:
                raise BadTestSet(f"{where}: give input or inputs, not both.", field="data")
            record["inputs"] = {INPUT: record.pop(INPUT)}
        if "id" in record:
            record["key"] = str(record.pop("id"))
        if "expected_document_ids" in record:
            ids = record.pop("expected_document_ids")
            record["expected_sources"] = [{"document_id": d} for d in ids] if isinstance(ids, list) else ids
        if "inputs" not in record:
            raise BadTestSet(f"{where} has no input; give \"input\" or \"inputs\": {{...}}.", field="data")
        yield where, record
