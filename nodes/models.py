"""Models: why a node's model did not load, in words that say what to set; and which models this installation
can use right now (``local_models``, ``servers``, ``provider_keys``, ``default_generator``).

A model named by its hub id (``Qwen/Qwen2.5-0.5B-Instruct``) loads from a local folder mapped to that name
(``STACKYARD_MODEL_PATHS``), from the local Hugging Face cache, or from the hub. Where the hub cannot be
reached (this machine, or ``HF_HUB_OFFLINE=1``) Transformers says only that it "couldn't connect to
huggingface.co"; :func:`load_failure` names the node, the model and the fix instead.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodes.catalog import MINILM
from nodes.errors import FileAccessError, NodeInputError, NodeLoadError
from nodes.fetchers import check_outbound_url
from nodes.files import confine_model_path, looks_like_model_path
from stackyard.settings import Settings

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


HUB = ("huggingface.co", 443)
HUB_PROBE_SECONDS = 1.5
HUB_PROBE_TTL = 300.0
_hub_seen: dict[str, tuple[float, bool]] = {}


def hub_reachable() -> bool:
    """Whether models could download now: not turned off, and the hub accepts a connection (remembered 5 min)."""
    if hub_offline():
        return False
    checked = _hub_seen.get("hub")
    if checked and time.monotonic() - checked[0] < HUB_PROBE_TTL:
        return checked[1]
    try:
        socket.create_connection(HUB, timeout=HUB_PROBE_SECONDS).close()
        reachable = True
    except OSError:
        reachable = False
    _hub_seen["hub"] = (time.monotonic(), reachable)
    return reachable


def missing_model(value: str, settings: Settings, cached: set[str]) -> str | None:
    """Why a node could not load model ``value`` on this machine now, or None when it could (a mapped or bundled
    folder, a folder path, a model in the cache (``cached``: ``cached_names()``), or the hub within reach)."""
    local = settings.local_model_path(value)
    if local:
        return None if Path(local).is_dir() else f"'{value}' is mapped to {local}, which is not a folder here"
    if looks_like_model_path(value):
        try:  # resolved as loading resolves it (relative to the files root), and only inside the model roots
            folder = confine_model_path(value, settings)
        except FileAccessError:
            return None  # validation refuses the path itself; whether it exists is not said
        return None if folder.is_dir() else f"there is no folder {value} on this machine"
    if value in cached or hub_reachable():
        return None
    why = "downloads are turned off (HF_HUB_OFFLINE)" if hub_offline() else "the model hub cannot be reached"
    return f"no model '{value}' on this machine and {why}"


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
                   "machine has (/models), or use an OpenAI-compatible server (OpenAIChatGenerator with api_base_url).")
    else:
        message = f"Node '{node}' could not get ready to run: {type(exc).__name__}: {exc}"
    return NodeLoadError(message, node=node, component_type=component_type)


# What this installation can use right now: local model folders, the Hugging Face cache, OpenAI-compatible
# servers, provider keys. Read by GET /api/v1/models and the Models page; nothing here downloads.

GENERATOR, EMBEDDER, RANKER, OTHER = "generator", "embedder", "ranker", "other"
LOCAL_GENERATOR = "haystack_integrations.components.generators.transformers.chat.chat_generator.TransformersChatGenerator"
SERVER_GENERATOR = "haystack.components.generators.chat.openai.OpenAIChatGenerator"
PROBE_SECONDS = 2.0
MAX_LISTING_BYTES = 1_000_000            # what one GET /models answer may be
_MAX_CONFIG_BYTES = 1_000_000
_MAX_FOLDERS = 500                       # per root: a model root is a folder of model folders, not a disk to crawl


@dataclass(frozen=True)
class LocalModel:
    name: str            # what a node's ``model`` param takes: a hub id mapped or cached here, or a folder path
    kind: str            # generator, embedder, ranker or other
    source: str          # "model path" (STACKYARD_MODEL_PATHS), "model root", "cache" or "bundled"
    path: str


@dataclass
class Server:
    name: str
    url: str
    source: str          # "configured" (STACKYARD_LLM_SERVERS) or "detected" (a local Ollama)
    reachable: bool = False
    models: list[str] = field(default_factory=list)
    error: str | None = None
    latency_ms: float | None = None


def kind_of(folder: Path) -> str:
    """What a model folder holds, from its own files (never by importing or loading it)."""
    if (folder / "modules.json").is_file() or (folder / "config_sentence_transformers.json").is_file():
        return EMBEDDER
    config = folder / "config.json"
    try:
        if config.stat().st_size > _MAX_CONFIG_BYTES:
            return OTHER
        architectures = json.loads(config.read_text()).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return OTHER
    names = [a for a in architectures if isinstance(a, str)]
    if any(a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in names):
        return GENERATOR
    if any(a.endswith("ForSequenceClassification") for a in names):
        return RANKER
    return OTHER


def _is_model(folder: Path) -> bool:
    return any((folder / name).is_file() for name in ("config.json", "modules.json"))


def _cache_dir() -> Path:
    explicit = os.environ.get("HF_HUB_CACHE")
    if explicit:
        return Path(explicit)
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _newest_first(folder: Path) -> list[Path]:
    dated = []
    for path in folder.glob("*"):
        try:
            dated.append((path.stat().st_mtime, path))
        except OSError:  # a dangling link, or a snapshot removed meanwhile
            continue
    return [path for _, path in sorted(dated, reverse=True)]


def _cached_repos() -> list[tuple[str, Path]]:
    """(hub id, newest complete snapshot) of each model in the local Hugging Face cache."""
    found = []
    for repo in sorted(_cache_dir().glob("models--*"))[:_MAX_FOLDERS]:
        folder = next((s for s in _newest_first(repo / "snapshots") if _is_model(s)), None)
        if folder is not None:
            found.append((repo.name.removeprefix("models--").replace("--", "/"), folder))
    return found


def _cached_models() -> list[LocalModel]:
    return [LocalModel(name, kind_of(folder), "cache", str(folder)) for name, folder in _cached_repos()]


def cached_names() -> set[str]:
    """The hub ids of the models in the local Hugging Face cache (one directory scan; no config is read)."""
    return {name for name, _ in _cached_repos()}


def local_models(settings: Settings) -> list[LocalModel]:
    """Models this machine has: mapped names, folders under the model roots, the cache, and the bundled MiniLM."""
    found: dict[str, LocalModel] = {}
    for name, path in settings.model_paths.items():
        found.setdefault(name, LocalModel(name, kind_of(Path(path)), "model path", path))
    for root in settings.model_roots:
        try:
            folders = sorted(p for p in Path(root).iterdir() if p.is_dir())[:_MAX_FOLDERS]
        except OSError:
            continue
        for folder in folders:
            if _is_model(folder):
                path = str(folder.resolve())
                found.setdefault(path, LocalModel(path, kind_of(folder), "model root", path))
    for model in _cached_models():
        found.setdefault(model.name, model)
    bundled = settings.local_model_path(MINILM)
    if bundled:
        found.setdefault(MINILM, LocalModel(MINILM, EMBEDDER, "bundled", bundled))
    return list(found.values())


def servers(settings: Settings, *, probed: bool = True) -> list[Server]:
    """The configured OpenAI-compatible servers, each probed once, and a local Ollama when one answers (with
    ``probed=False``: the configured ones and where Ollama would be, none of them contacted)."""
    listed = [Server(name, url.rstrip("/"), "configured") for name, url in settings.llm_servers.items()]
    ollama = settings.ollama_url.rstrip("/")
    if ollama and not any(s.url.startswith(ollama) for s in listed):
        listed.append(Server("ollama", f"{ollama}/v1", "detected"))
    if not probed:
        return listed
    for server in listed:
        probe(server)
    return [s for s in listed if s.reachable or s.source == "configured"]


def probe(server: Server) -> Server:
    """Ask ``server`` for its models (GET /models, as OpenAI, Ollama, vLLM and llama.cpp serve it).

    Only operator-set addresses are probed (STACKYARD_LLM_SERVERS, STACKYARD_OLLAMA_URL), never one a user typed.
    """
    import httpx

    started = time.perf_counter()
    try:
        body = bytearray()
        with httpx.stream("GET", f"{server.url}/models", timeout=PROBE_SECONDS, follow_redirects=False) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_LISTING_BYTES:
                    raise ValueError(f"its model list is over {MAX_LISTING_BYTES:,} bytes")
                if time.perf_counter() - started > 2 * PROBE_SECONDS:  # a server that drips its answer
                    raise TimeoutError(f"its model list took over {2 * PROBE_SECONDS:g} s")
        data = json.loads(body).get("data", [])
        server.models = [str(item["id"])[:200] for item in data[:200] if isinstance(item, dict) and "id" in item]
        server.reachable, server.error = True, None
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, AttributeError, TypeError, TimeoutError) as exc:
        server.reachable, server.models = False, []
        server.error = f"{type(exc).__name__}: {str(exc)[:300]}"
    server.latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return server


def server_named(settings: Settings, name: str) -> Server | None:
    """The configured (or would-be Ollama) server called ``name``, not yet contacted."""
    return next((s for s in servers(settings, probed=False) if s.name == name), None)


def unknown_server(settings: Settings, name: str) -> str:
    known = ", ".join(s.name for s in servers(settings, probed=False)) or "none: set STACKYARD_LLM_SERVERS"
    return f"No model server named '{name}'; the servers are {known}."


@dataclass(frozen=True)
class Inventory:
    """Everything the Models page and GET /api/v1/models show, gathered once."""
    local: list[LocalModel]
    servers: list[Server]
    keys: list[str]
    default_generator: dict[str, Any] | None


def inventory(settings: Settings) -> Inventory:
    local, found, keys = local_models(settings), servers(settings), provider_keys(settings)
    return Inventory(local, found, keys, default_generator(local, found, keys))


def provider_keys(settings: Settings) -> list[str]:
    """The secret variables workflows may read that are set here (names only, never values)."""
    return [name for name in settings.secret_env if os.environ.get(name)]


def default_generator(models: list[LocalModel], found: list[Server], keys: list[str]) -> dict[str, Any] | None:
    """The generator a new chat workflow gets: the first model of a reachable server workflows may call, else a
    local generator, else OpenAI when its key is set; None when this machine has none (``NO_GENERATOR``)."""
    for server in found:
        if server.reachable and server.models and _admitted(server.url):
            return {"type": SERVER_GENERATOR, "init_parameters": {"model": server.models[0], "api_base_url": server.url},
                    "from": f"server '{server.name}'"}
    local = next((m for m in models if m.kind == GENERATOR), None)
    if local:
        return {"type": LOCAL_GENERATOR, "init_parameters": {"model": local.name, "task": "text-generation"},
                "from": f"local model ({local.source})"}
    if "OPENAI_API_KEY" in keys:
        return {"type": SERVER_GENERATOR, "init_parameters": {"model": "gpt-4o-mini"}, "from": "OPENAI_API_KEY"}
    return None


def _admitted(url: str) -> bool:
    """Whether workflows may call this server (a detected Ollama on this machine needs an operator's
    STACKYARD_FETCH_ALLOWED_HOSTS entry; a listed STACKYARD_LLM_SERVERS entry is admitted)."""
    try:
        check_outbound_url(url, field="api_base_url", offline_ok=True)
    except NodeInputError:
        return False
    return True


NO_GENERATOR = ("No generator is available on this machine. Map a local model folder to its name "
                "(STACKYARD_MODEL_PATHS), add a folder of models (STACKYARD_MODEL_ROOTS), configure an OpenAI-compatible "
                "server (STACKYARD_LLM_SERVERS, or start Ollama), or set OPENAI_API_KEY.")
