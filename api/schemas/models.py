"""Shapes of the models endpoints: what generators and embedders this installation can use right now."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class LocalModelPublic(BaseModel):
    name: str = Field(description="What a node's `model` parameter takes: a hub id found here, or a folder path")
    kind: str = Field(description="generator, embedder, ranker or other (from the folder's own config files)")
    source: str = Field(description="model path (STACKYARD_MODEL_PATHS), model root, cache or bundled")
    path: str


class ServerPublic(BaseModel):
    name: str
    url: str = Field(description="Base URL, for a generator's api_base_url")
    source: str = Field(description="configured (STACKYARD_LLM_SERVERS) or detected (a local Ollama)")
    reachable: bool
    models: list[str] = Field(description="What GET {url}/models listed")
    error: str | None = Field(description="Why it could not be reached, when it could not")
    latency_ms: float | None


class ModelsPublic(BaseModel):
    local: list[LocalModelPublic]
    servers: list[ServerPublic]
    keys: list[str] = Field(description="Secret variables workflows may read that are set here (names only)")
    default_generator: dict[str, Any] | None = Field(
        description="The generator a new chat workflow gets (type, init_parameters, from), or null when there is none")
    hint: str | None = Field(description="What to set when no generator is available")


class CollectionsPublic(BaseModel):
    collections: list[str] = Field(description="Collections in the configured vector store, sorted")
