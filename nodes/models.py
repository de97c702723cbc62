"""Why a node's model did not load, in words that say what to set.

A model named by its hub id (``Qwen/Qwen2.5-0.5B-Instruct``) loads from a local folder mapped to that name
(``STACKYARD_MODEL_PATHS``), from the local Hugging Face cache, or from the hub. Where the hub cannot be
reached (this machine, or ``HF_HUB_OFFLINE=1``) Transformers says only that it "couldn't connect to
huggingface.co"; :func:`load_failure` names the node, the model and the fix instead.
"""

from __future__ import annotations

import json
import os
from typing import Any

from nodes.errors import NodeLoadError

_MISSING_HINTS = ("huggingface.co", "is not a local folder", "Cannot find the requested files")


def model_of(component: Any) -> str | None:
    """The model name or folder a component loads, if it loads one."""
    kwargs = getattr(component, "huggingface_pipeline_kwargs", None)  # Transformers generators
    if isinstance(kwargs, dict) and isinstance(kwargs.get("model"), str):
        return kwargs["model"]
    model = getattr(component, "model", None)  # Sentence Transformers embedders and rankers
    return model if isinstance(model, str) else None


def _missing_model(exc: BaseException) -> bool:
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (LocalEntryNotFoundError, RepositoryNotFoundError, EntryNotFoundError)):
            return True
        if isinstance(seen, OSError) and any(hint in str(seen) for hint in _MISSING_HINTS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def hub_offline() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def load_failure(node: str, component: Any, exc: BaseException) -> NodeLoadError:
    """The error to record when ``component`` (node ``node``) failed to get ready with ``exc``."""
    model = model_of(component)
    component_type = f"{type(component).__module__}.{type(component).__name__}"
    if model and _missing_model(exc):
        why = ("downloads are turned off (HF_HUB_OFFLINE)" if hub_offline()
               else "the model hub (huggingface.co) cannot be reached")
        example = json.dumps({model: "/models/" + model.rsplit("/", 1)[-1]})
        message = (f"Node '{node}' cannot load model '{model}': it is not on this machine and {why}. Copy the model "
                   f"to a folder and map its name to it (STACKYARD_MODEL_PATHS='{example}'), pick a model this "
                   "machine has, or use an OpenAI-compatible server (OpenAIChatGenerator with api_base_url).")
    else:
        message = f"Node '{node}' could not get ready to run: {type(exc).__name__}: {exc}"
    return NodeLoadError(message, node=node, component_type=component_type)
