"""Run a built pipeline with a workflow's declared inputs and collect its declared outputs.

This is the plain function the Celery task and ``stackyard run`` both call; it knows nothing about
queues or databases.

Example::

    pipeline = build_pipeline(spec)
    outputs = run_pipeline(spec, pipeline, {"query": "Who is Ada?"})
    outputs["answer"]
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from haystack import Pipeline

from stackyard.errors import StackyardError
from workflows.agents import run_budget
from workflows.spec import WorkflowSpec, split_socket


class BadRunInputs(StackyardError):
    status = 422


def check_known(spec: WorkflowSpec, inputs: dict[str, Any]) -> None:
    unknown = sorted(set(inputs) - set(spec.inputs))
    if unknown:
        raise BadRunInputs(f"Unknown input '{unknown[0]}'; this workflow takes {', '.join(sorted(spec.inputs)) or 'no inputs'}.",
                           field=f"inputs.{unknown[0]}")


def pipeline_data(spec: WorkflowSpec, inputs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Map declared inputs to component sockets; refuse unknown names."""
    check_known(spec, inputs)
    data: dict[str, dict[str, Any]] = {}
    for alias, refs in spec.inputs.items():
        if alias not in inputs:
            continue
        for ref in refs:
            name, socket = split_socket(ref)
            data.setdefault(name, {})[socket] = inputs[alias]
    return data


def check_paths(spec: WorkflowSpec, pipeline: Pipeline, inputs: dict[str, Any]) -> None:
    """Refuse, naming the input, a declared input that hands a node a file path outside the files root.

    Only an early, clearer error: the nodes confine every path they open themselves, whatever feeds them.
    """
    from nodes.errors import FileAccessError
    from nodes.files import confine_paths, path_sockets

    for alias, refs in spec.inputs.items():
        for ref in refs if alias in inputs else ():
            name, socket = split_socket(ref)
            if socket in path_sockets(pipeline.get_component(name)):
                try:
                    confine_paths(inputs[alias], field=socket)
                except FileAccessError as exc:
                    raise BadRunInputs(f"Input '{alias}' (node '{name}'): {exc}", field=f"inputs.{alias}") from None


def required_inputs(spec: WorkflowSpec, pipeline: Pipeline) -> list[str]:
    """Declared inputs that feed a mandatory socket."""
    required = []
    for alias, refs in spec.inputs.items():
        for ref in refs:
            name, socket = split_socket(ref)
            if pipeline.get_component(name).__haystack_input__._sockets_dict[socket].is_mandatory:
                required.append(alias)
                break
    return required


def check_required(required: list[str], inputs: dict[str, Any]) -> None:
    missing = [alias for alias in required if alias not in inputs]
    if missing:
        raise BadRunInputs(f"Input '{missing[0]}' is required; pass it in inputs.", field=f"inputs.{missing[0]}")



CHAT_ROLES = ("system", "user", "assistant")
MAX_HISTORY_MESSAGES = 10_000
MAX_HISTORY_CHARS = 2_000_000


def history_input(spec: WorkflowSpec) -> str | None:
    """The input the version declares as its chat history (``metadata.stackyard.chat.history``)."""
    chat = spec.canvas.get("chat")
    name = chat.get("history") if isinstance(chat, dict) else None
    return name if isinstance(name, str) and name in spec.inputs else None


def chat_messages(value: Any, *, field: str) -> list[Any]:
    """A chat history given as JSON (``[{"role", "content"}, …]``, oldest first) as Haystack ``ChatMessage``
    objects, which a ``ChatPromptBuilder`` template places with ``{% insert history %}``; a 422 naming the field
    for anything else."""
    from haystack.dataclasses import ChatMessage

    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_HISTORY_MESSAGES:
        raise BadRunInputs(f"{field} must be a list of at most {MAX_HISTORY_MESSAGES} messages "
                           "{'role': 'user'|'assistant'|'system', 'content': text}, oldest first.", field=field)
    made, chars = [], 0
    for index, message in enumerate(value):
        if isinstance(message, ChatMessage):
            made.append(message)
            continue
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role not in CHAT_ROLES or not isinstance(content, str):
            raise BadRunInputs(f"{field}[{index}] must be {{'role': 'user'|'assistant'|'system', 'content': text}}.",
                               field=f"{field}[{index}]")
        chars += len(content)
        if chars > MAX_HISTORY_CHARS:
            raise BadRunInputs(f"{field} holds more than {MAX_HISTORY_CHARS:,} characters; send fewer messages (a "
                               "chat app's memory policy cuts them for you).", field=field)
        made.append({"system": ChatMessage.from_system, "user": ChatMessage.from_user,
                     "assistant": ChatMessage.from_assistant}[role](content))
    return made


def run_pipeline(spec: WorkflowSpec, pipeline: Pipeline, inputs: dict[str, Any],
                 extra: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run once and return ``{output alias: JSON-ready value}``.

    ``extra`` adds socket values Stackyard itself supplies, e.g. a generator's ``streaming_callback``. The
    declared chat history input (JSON in a run's inputs) reaches its sockets as ``ChatMessage`` objects.
    """
    check_known(spec, inputs)
    check_required(required_inputs(spec, pipeline), inputs)
    check_paths(spec, pipeline, inputs)
    include = {split_socket(ref)[0] for ref in spec.outputs.values()}
    if (history := history_input(spec)) is not None and history in inputs:
        inputs = {**inputs, history: chat_messages(inputs[history], field=f"inputs.{history}")}
    data = pipeline_data(spec, inputs)
    for name, values in (extra or {}).items():
        data.setdefault(name, {}).update(values)
    with run_budget():                  # the agents of one run spend one token budget
        result = pipeline.run(data, include_outputs_from=include)
    return collect_outputs(spec, result)


def collect_outputs(spec: WorkflowSpec, result: dict[str, dict[str, Any]]) -> dict[str, Any]:
    outputs = {}
    for alias, ref in spec.outputs.items():
        name, socket = split_socket(ref)
        outputs[alias] = jsonable(result.get(name, {}).get(socket))
    return outputs


def jsonable(value: Any, *, max_text: int | None = None) -> Any:
    """A JSON-ready view of Haystack values (documents without embeddings, chat messages as role/text)."""
    from haystack import Document
    from haystack.dataclasses import ByteStream, ChatMessage

    def clip(text: str | None) -> str | None:
        if text is None or max_text is None or len(text) <= max_text:
            return text
        return text[:max_text] + f"… (+{len(text) - max_text} chars)"

    if isinstance(value, Document):
        return {"id": value.id, "content": clip(value.content), "meta": jsonable(value.meta, max_text=max_text), "score": value.score}
    if isinstance(value, ChatMessage):
        return {"role": value.role.value, "text": clip(value.text), "meta": jsonable(value.meta, max_text=max_text)}
    if isinstance(value, ByteStream):
        return {"mime_type": value.mime_type, "bytes": len(value.data), "meta": jsonable(value.meta, max_text=max_text)}
    if isinstance(value, dict):
        return {str(k): jsonable(v, max_text=max_text) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v, max_text=max_text) for v in value]
    if isinstance(value, str):
        return clip(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)       # NaN and infinity are not JSON: PostgreSQL refuses them in a JSON column
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value), max_text=max_text)
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict(), max_text=max_text)
    return repr(value)
