"""Starter templates: Haystack YAML files that validate and run offline.

A new workflow made from one gets this machine's default generator (``nodes.models.default_generator``: a
reachable OpenAI-compatible server, a local model, or OpenAI when its key is set) in place of the file's
hub model, so it answers on a fresh install wherever any generator is available; where none is, the file's
model stays and the editor's model warning says what to set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodes.models import LOCAL_GENERATOR, SERVER_GENERATOR
from workflows.io import import_text
from workflows.spec import ComponentSpec, WorkflowSpec

GENERATORS = (LOCAL_GENERATOR, SERVER_GENERATOR)

TEMPLATES_DIR = Path(__file__).parent


def template_names() -> list[str]:
    return sorted(path.stem for path in TEMPLATES_DIR.glob("*.yaml"))


def template_path(name: str) -> Path:
    path = TEMPLATES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"No template '{name}'; choose one of {', '.join(template_names())}.")
    return path


def starter(name: str, generator: dict[str, Any] | None = None) -> WorkflowSpec:
    """Template ``name`` as a spec, its generators replaced by ``generator`` (``{"type", "init_parameters"}``)
    when one is given; a local generator keeps the template's generation settings."""
    spec = import_text(template_path(name).read_text())
    if not generator:
        return spec
    for node, component in list(spec.components.items()):
        spec.components[node] = ComponentSpec(**_with_generator(component.model_dump(), generator))
    return spec


def _with_generator(component: dict[str, Any], generator: dict[str, Any]) -> dict[str, Any]:
    """``component`` with ``generator`` in place of its generator, and of those inside it (an agent's model and
    the generators of the workflows it calls as tools)."""
    if component.get("type") in GENERATORS:
        params = dict(generator["init_parameters"])
        kept = component.get("init_parameters") or {}
        if generator["type"] == component["type"] == LOCAL_GENERATOR and "generation_kwargs" in kept:
            params["generation_kwargs"] = kept["generation_kwargs"]
        return {"type": generator["type"], "init_parameters": params}
    return {key: _swapped(value, generator) for key, value in component.items()}


def _swapped(value: Any, generator: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return _with_generator(value, generator)
    if isinstance(value, list):
        return [_swapped(item, generator) for item in value]
    return value
