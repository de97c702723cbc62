"""Validate a workflow: every problem as an Issue pinned to a node and port, with the fix.

The checks are Haystack's own wherever Haystack has one: components are created with
``component_from_dict``, edges with ``Pipeline.connect`` (its type rules), and ports are read from the
live components' sockets. Stackyard adds what Haystack cannot know: declared inputs/outputs, inputs
nobody feeds, and loops without an explicit run limit.

Example::

    issues = validate(parse_definition(text))
    [(i.node, i.port, i.message) for i in issues]
"""

from __future__ import annotations

import dataclasses
from typing import Any

import networkx as nx
from haystack import Pipeline
from haystack.core.errors import PipelineConnectError, PipelineError

from stackyard.settings import Settings, get_settings
from workflows.agents import AGENT, build_agent
from workflows.build import BuildMode, ComponentBuildError, instantiate
from workflows.errors import Issue, IssueCode, WorkflowInvalid
from workflows.spec import ComponentSpec, WorkflowSpec, split_socket


def input_sockets(component: Any) -> dict[str, Any]:
    return component.__haystack_input__._sockets_dict


def output_sockets(component: Any) -> dict[str, Any]:
    return component.__haystack_output__._sockets_dict


def _socket_issue(code: str, *, node: str, port: str | None, field: str, message: str) -> Issue:
    return Issue(code, node=node, port=port, field=field, message=message)


def _check_ref(ref: str, components: dict[str, Any], *, outputs: bool, field: str, code: str, known: set[str]) -> Issue | None:
    """Check that ``comp.socket`` names an existing input (or output) socket."""
    name, socket = split_socket(ref)
    kind = "output" if outputs else "input"
    if name not in components:
        if name in known:  # the component itself is broken; its own issue says why
            return None
        return _socket_issue(code, node=name, port=socket, field=field,
            message=f"{field}: '{ref}' points to no component named '{name}'; use one of {', '.join(sorted(known)) or '(none)'}.")
    sockets = output_sockets(components[name]) if outputs else input_sockets(components[name])
    if socket not in sockets:
        return _socket_issue(code, node=name, port=socket, field=field,
            message=f"{field}: '{name}' has no {kind} '{socket}'; its {kind}s are {', '.join(sorted(sockets)) or '(none)'}.")
    return None


def _connect(pipeline: Pipeline, components: dict[str, Any], known: set[str], index: int, sender: str, receiver: str) -> Issue | None:
    field = f"connections[{index}]"
    for ref, is_out in ((sender, True), (receiver, False)):
        problem = _check_ref(ref, components, outputs=is_out, field=field, code=IssueCode.DANGLING_EDGE, known=known)
        if problem:
            return problem
        if split_socket(ref)[0] not in components:
            return None
    r_name, r_socket = split_socket(receiver)
    target = input_sockets(components[r_name])[r_socket]
    if target.senders and not target.is_variadic:
        return _socket_issue(IssueCode.DANGLING_EDGE, node=r_name, port=r_socket, field=field,
            message=f"'{receiver}' already receives from '{target.senders[0]}'; remove one edge or add a joiner "
                    "(BranchJoiner, DocumentJoiner) in front of it.")
    try:
        pipeline.connect(sender, receiver)
    except PipelineConnectError as exc:
        return _socket_issue(IssueCode.TYPE_MISMATCH, node=r_name, port=r_socket, field=field, message=f"{exc}")
    return None


def build_node(name: str, comp: ComponentSpec, *, mode: BuildMode = BuildMode.RUN, settings: Settings | None = None) -> Any:
    """One node's component: an agent with its model and tools (``workflows.agents``), or any other node.

    :raises ComponentBuildError: with issues pinned to the node and its parameter.
    """
    settings = settings or get_settings()
    if comp.type != AGENT:
        return instantiate(name, comp, mode=mode, settings=settings)

    def pipeline_of(spec: WorkflowSpec) -> Pipeline:
        pipeline, issues = assemble(spec, mode=mode, settings=settings)
        if issues:
            raise ComponentBuildError([dataclasses.replace(issue, node=name, message=f"In a workflow tool of '{name}': "
                                                           f"{issue.message}") for issue in issues])
        return pipeline

    return build_agent(name, comp.init_parameters, settings=settings, running=mode is BuildMode.RUN,
                       make_component=lambda inner: build_node(name, inner, mode=mode, settings=settings),
                       make_pipeline=pipeline_of)


def assemble(spec: WorkflowSpec, *, mode: BuildMode, settings: Settings) -> tuple[Pipeline, list[Issue]]:
    """Build as much of the pipeline as possible and collect every issue on the way."""
    issues: list[Issue] = []
    pipeline = Pipeline(max_runs_per_component=spec.max_runs_per_component or 100, metadata=spec.metadata)
    components: dict[str, Any] = {}
    for name, comp in spec.components.items():
        if not name or "." in name:
            issues.append(Issue(IssueCode.SHAPE, node=name, field=f"components.{name}",
                message=f"Component name {name!r} must be non-empty and contain no '.'; rename it (e.g. '{name.replace('.', '_')}')."))
            continue
        try:
            components[name] = build_node(name, comp, mode=mode, settings=settings)
        except ComponentBuildError as exc:
            issues.extend(exc.issues)
            continue
        pipeline.add_component(name, components[name])
    known = set(spec.components)

    for index, edge in enumerate(spec.connections):
        problem = _connect(pipeline, components, known, index, edge.sender, edge.receiver)
        if problem:
            issues.append(problem)

    # A socket fed by an edge from a node that failed to build is fed all the same: that node's issue says why.
    declared: dict[tuple[str, str | None], str] = {split_socket(edge.receiver): "" for edge in spec.connections
                                            if split_socket(edge.sender)[0] in known - set(components)}
    for alias, refs in spec.inputs.items():
        for ref in refs:
            field = f"inputs.{alias}"
            problem = _check_ref(ref, components, outputs=False, field=field, code=IssueCode.BAD_INPUT_MAPPING, known=known)
            if problem:
                issues.append(problem)
                continue
            name, socket = split_socket(ref)
            if name not in components:
                continue
            if declared.get((name, socket)):
                issues.append(_socket_issue(IssueCode.BAD_INPUT_MAPPING, node=name, port=socket, field=field,
                    message=f"{field}: '{ref}' is already fed by input '{declared[name, socket]}'; one socket takes one "
                            f"input: remove it from one of them (one input may feed several sockets)."))
                continue
            declared[name, socket] = alias
            target = input_sockets(components[name])[socket]
            if target.senders and not target.is_variadic:
                issues.append(_socket_issue(IssueCode.BAD_INPUT_MAPPING, node=name, port=socket, field=field,
                    message=f"{field}: '{ref}' is already fed by '{target.senders[0]}'; map the input to a free port or remove the edge."))
    for alias, ref in spec.outputs.items():
        problem = _check_ref(ref, components, outputs=True, field=f"outputs.{alias}", code=IssueCode.BAD_OUTPUT_MAPPING, known=known)
        if problem:
            issues.append(problem)
    if isinstance(spec.streaming_components, list):
        for index, name in enumerate(spec.streaming_components):
            if name not in known:
                issues.append(Issue(IssueCode.BAD_OUTPUT_MAPPING, node=name, field=f"streaming_components[{index}]",
                    message=f"streaming_components[{index}]: no component named '{name}'; use one of "
                            f"{', '.join(sorted(known)) or '(none)'}, or 'all'."))

    for name, component in components.items():
        for socket_name, socket in input_sockets(component).items():
            if socket.is_mandatory and not socket.senders and not {(name, socket_name), (name, None)} & declared.keys():
                issues.append(_socket_issue(IssueCode.MISSING_INPUT, node=name, port=socket_name,
                    field=f"components.{name}", message=f"Input '{name}.{socket_name}' ({_type_name(socket.type)}) is "
                    "required but nothing feeds it; connect an edge to it or declare a workflow input for it."))

    if spec.max_runs_per_component is None and not nx.is_directed_acyclic_graph(pipeline.graph):
        cycle = nx.find_cycle(pipeline.graph)
        loop = " → ".join([edge[0] for edge in cycle] + [cycle[0][0]])
        issues.append(Issue(IssueCode.UNBOUNDED_CYCLE, node=cycle[0][0], field="max_runs_per_component",
            message=f"Loop {loop} has no run limit; set max_runs_per_component (e.g. 10) so it cannot run forever."))
    return pipeline, issues


def build_pipeline(spec, *, mode: BuildMode = BuildMode.RUN, settings: Settings | None = None) -> Pipeline:
    """Build the Haystack pipeline of a spec, or raise WorkflowInvalid listing every problem."""
    pipeline, issues = assemble(spec, mode=mode, settings=settings or get_settings())
    if issues:
        raise WorkflowInvalid(issues)
    return pipeline


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def validate(spec: WorkflowSpec, *, settings: Settings | None = None) -> list[Issue]:
    """All problems of a spec; an empty list means it can be saved and run."""
    try:
        return assemble(spec, mode=BuildMode.VALIDATE, settings=settings or get_settings())[1]
    except PipelineError as exc:  # a Haystack check we did not anticipate: still a 4xx, never a crash
        return [Issue(IssueCode.SHAPE, message=f"Haystack refused the pipeline: {exc}")]
