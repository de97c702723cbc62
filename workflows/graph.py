"""What the editor asks of a spec: node ports, whether one new edge is allowed, and what a version changed.

Nothing here decides type compatibility: :func:`check_connection` runs the foundation's validator
(Haystack's ``Pipeline.connect``) on the two nodes involved and reports the issue pinned to the new edge.
No Gradio import, so the HTTP API can use it too.

Example::

    check_connection(spec, "prompt.prompt", "llm.messages")     # ConnectionCheck(ok=True, ...)
    check_connection(spec, "embedder.embedding", "llm.messages")
    # ConnectionCheck(ok=False, message="Cannot connect 'embedder.embedding' ... ")
    spec_diff(v1.spec, v2.spec)["summary"]                       # '1 node added, 2 params changed'
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from typing import Any

from workflows.errors import Issue, IssueCode, WorkflowInvalid
from workflows.spec import Connection, WorkflowSpec, split_socket
from workflows.validation import validate

_BUILD_CODES = frozenset({IssueCode.UNKNOWN_COMPONENT, IssueCode.NOT_ALLOWED, IssueCode.REMOVED_COMPONENT,
                          IssueCode.BAD_PARAM, IssueCode.DANGEROUS_PARAM, IssueCode.SHAPE})


@functools.lru_cache(maxsize=4096)
def _ports_cached(type_: str, params_json: str) -> dict[str, Any]:
    from workflows.build import ComponentBuildError
    from workflows.palette import ports

    try:
        return ports(type_, json.loads(params_json))
    except ComponentBuildError as exc:
        return {"problem": exc.issues[0].message, "inputs": [], "outputs": []}


def node_ports(type_: str, params: dict[str, Any]) -> dict[str, Any]:
    """Ports of one node built with ``params``; ``{"problem": ...}`` (and no ports) when it cannot be built."""
    return _ports_cached(type_, json.dumps(params, sort_keys=True, default=str))


def spec_ports(spec: WorkflowSpec) -> dict[str, dict[str, Any]]:
    """Ports of every node of a spec, keyed by node name."""
    return {name: node_ports(comp.type, comp.init_parameters) for name, comp in spec.components.items()}


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str = ""
    issue: dict[str, Any] | None = None
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_connection(spec: WorkflowSpec, sender: str, receiver: str) -> ConnectionCheck:
    """Would Haystack accept the edge ``sender → receiver`` in this spec?

    Only the nodes Haystack needs to judge the edge are built: both ends and whatever already feeds the
    receiving socket (so "already receives from" is caught too). The rest of the spec may be unfinished.
    """
    sender_node, receiver_node = split_socket(sender)[0], split_socket(receiver)[0]
    if any(c.sender == sender and c.receiver == receiver for c in spec.connections):
        return ConnectionCheck(False, f"'{sender}' is already connected to '{receiver}'.")
    feeding = [c for c in spec.connections if c.receiver == receiver]
    names = {sender_node, receiver_node} | {split_socket(c.sender)[0] for c in feeding}
    unknown = sorted(names - set(spec.components))
    if unknown:
        return ConnectionCheck(False, f"There is no node named '{unknown[0]}' in this workflow.")
    reduced = WorkflowSpec(components={name: spec.components[name] for name in names},
                           connections=[*feeding, Connection(sender=sender, receiver=receiver)],
                           max_runs_per_component=spec.max_runs_per_component or 100)
    try:
        issues = validate(reduced)
    except WorkflowInvalid as exc:
        issues = exc.issues
    edge_field = f"connections[{len(feeding)}]"
    for issue in issues:
        if issue.field == edge_field:
            return ConnectionCheck(False, issue.message, issue=issue.to_dict())
    broken = [issue for issue in issues if issue.code in _BUILD_CODES and issue.node in (sender_node, receiver_node)]
    if broken:
        return ConnectionCheck(True, warning=f"Types not checked: {broken[0].message}")
    return ConnectionCheck(True)


def issues_payload(issues: list[Issue]) -> list[dict[str, Any]]:
    return [issue.to_dict() for issue in issues]


# --- version diffs ---------------------------------------------------------------------------------

def _edges(spec: dict[str, Any]) -> set[str]:
    return {f"{c.get('sender')} → {c.get('receiver')}" for c in spec.get("connections") or []}


def _canvas(spec: dict[str, Any]) -> dict[str, Any]:
    meta = (spec.get("metadata") or {}).get("stackyard")
    return meta if isinstance(meta, dict) else {}


def _mapping_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[str]]:
    return {"added": sorted(set(after) - set(before)), "removed": sorted(set(before) - set(after)),
            "changed": sorted(k for k in set(before) & set(after) if before[k] != after[k])}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def spec_diff(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    """What changed between two stored specs: nodes, params, edges, declared inputs/outputs, layout."""
    before = before or {}
    old, new = before.get("components") or {}, after.get("components") or {}
    params = []
    retyped = []
    for name in sorted(set(old) & set(new)):
        if old[name].get("type") != new[name].get("type"):
            retyped.append(name)
            continue
        old_params, new_params = old[name].get("init_parameters") or {}, new[name].get("init_parameters") or {}
        for key in sorted(set(old_params) | set(new_params)):
            if old_params.get(key) != new_params.get(key):
                params.append({"node": name, "param": key, "before": old_params.get(key), "after": new_params.get(key)})
    old_edges, new_edges = _edges(before), _edges(after)
    old_pos, new_pos = _canvas(before).get("positions") or {}, _canvas(after).get("positions") or {}
    diff = {
        "nodes": {"added": sorted(set(new) - set(old)), "removed": sorted(set(old) - set(new)), "retyped": retyped},
        "params": params,
        "edges": {"added": sorted(new_edges - old_edges), "removed": sorted(old_edges - new_edges)},
        "inputs": _mapping_changes(before.get("inputs") or {}, after.get("inputs") or {}),
        "outputs": _mapping_changes(before.get("outputs") or {}, after.get("outputs") or {}),
        "moved": sorted(name for name in set(old_pos) & set(new_pos) if old_pos[name] != new_pos[name]),
        "notes_changed": (_canvas(before).get("notes") or []) != (_canvas(after).get("notes") or []),
    }
    diff["summary"] = _summary(diff) if before else "first version"
    return diff


def _summary(diff: dict[str, Any]) -> str:
    parts = []
    for key, word in (("added", "added"), ("removed", "removed")):
        if diff["nodes"][key]:
            parts.append(f"{_plural(len(diff['nodes'][key]), 'node')} {word}")
    if diff["params"]:
        parts.append(f"{_plural(len(diff['params']), 'param')} changed")
    for key, word in (("added", "added"), ("removed", "removed")):
        if diff["edges"][key]:
            parts.append(f"{_plural(len(diff['edges'][key]), 'edge')} {word}")
    io = sum(len(v) for part in ("inputs", "outputs") for v in diff[part].values())
    if io:
        parts.append(f"{_plural(io, 'input/output')} changed")
    if diff["moved"] or diff["notes_changed"]:
        parts.append("layout changed")
    return ", ".join(parts) or "no changes"
