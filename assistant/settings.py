"""The one settings object: environment variables with the ASSISTANT_ prefix, typos rejected."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from assistant.errors import UserError

PACKAGED_MODEL = "packaged:all-MiniLM-L6-v2"
PACKAGED_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
ENV_PREFIX = "ASSISTANT_"
LLM_ANSWERS_IN_FLIGHT = 16
DEFAULT_MAX_FILE_MB = 10


class SettingsError(UserError, ValueError):
    """A setting is unknown or has a value that cannot be used."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    data_dir: Path = Field(Path("data"), description="Where the index, lexical index and feedback live.")
    corpus_dir: Path = Field(Path("corpus"), description="Documents `assistant ingest` reads by default.")
    site_file: Path = Field(
        Path("site.yaml"),
        description="The study's name, example questions and the emergency and crisis messages (with your country's"
        " numbers); without the file, generic defaults that name no study and no number.",
    )
    prompts_dir: Path = Field(Path("prompts"), description="Prompt templates for the LLM answerer.")
    embedding_model: str = Field(
        PACKAGED_MODEL,
        description="`packaged:all-MiniLM-L6-v2` (the pip-shipped copy) or a local sentence-transformers model path.",
    )
    embedding_sha256: str | None = Field(
        PACKAGED_MODEL_SHA256,
        description="Expected sha256 of the model's model.safetensors; empty to skip the check for a custom model.",
    )
    chroma_url: str | None = Field(None, description="A Chroma server, e.g. http://127.0.0.1:8000; unset = embedded.")
    collection: str = Field("celltop", description="Chroma collection name.")
    chroma_timeout_s: float = Field(
        10.0, gt=0, description="Timeout for one call to the Chroma server; beyond it the store counts as down."
    )
    chroma_retry_s: float = Field(
        1.0, gt=0, description="While the Chroma server is down: the first wait before trying it again (it doubles)."
    )
    chroma_retry_max_s: float = Field(
        30.0, gt=0, description="While the Chroma server is down: the longest wait between tries."
    )
    chunk_size: int = Field(200, ge=32, le=254, description="Maximum tokens per chunk (model tokenizer).")
    chunk_overlap: int = Field(0, ge=0, le=120, description="Tokens of whole sentences repeated between chunks.")
    retrieval_k: int = Field(6, ge=1, le=50, description="Chunks of evidence retrieved per question.")
    answerer: Literal["extractive", "llm"] = Field("extractive", description="Who writes the answer.")
    llm_model: str = Field("gpt-4o-mini", description="Model name sent to the OpenAI-compatible endpoint.")
    llm_base_url: str | None = Field(
        None, description="Base URL of an OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1."
    )
    llm_api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the endpoint's key.")
    llm_timeout_s: float = Field(60.0, gt=0, description="Timeout for one LLM call.")
    host: str = Field("127.0.0.1", description="Address the app listens on.")
    port: int = Field(7860, ge=1, le=65535, description="Port the app listens on.")
    feedback_enabled: bool = Field(True, description="Store thumbs up/down votes under the data dir.")
    frame_ancestors: list[str] = Field(
        default_factory=list,
        description="Origins allowed to frame /widget (CSP frame-ancestors and CORS); empty = same origin only.",
    )
    max_file_mb: int = Field(
        DEFAULT_MAX_FILE_MB,
        ge=1,
        description="Largest document file ingest reads, in MB (and the most text it takes from one PDF);"
        " larger ones are skipped with a message, so ingest's memory stays bounded.",
    )
    ingest_wait_s: float = Field(0.0, ge=0, description="How long a second ingest waits for a running one.")
    reload_interval_s: float = Field(
        2.0, gt=0, description="How often the serving app looks for a newer index written by `assistant ingest`."
    )
    extra_kinds: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='A clinic\'s own kinds of document, as JSON: {"leaflet": {"label": "Patient leaflet", "trust": 0.9}}'
        " (fields as in assistant/data/kinds.yaml).",
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted (413 beyond it, refused before it is read)."
    )
    body_timeout_s: float = Field(10.0, gt=0, description="Time allowed to receive a whole request body (408 beyond).")
    max_answers_in_flight: int | None = Field(
        None,
        ge=1,
        description="Answers computed at once (API and UI together); others wait for a slot. Default: the"
        " number of cores for the extractive answerer (more threads only fight over the GIL), 16 for an LLM"
        " (its answers wait on the network).",
    )
    workers: int | None = Field(
        None,
        ge=1,
        description="Processes that compute answers, each with its own model and index; the serving process only"
        " moves requests. Default: the number of cores. 1 answers in the serving process itself.",
    )
    worker_timeout_s: float = Field(
        120.0, gt=0, description="How long the serving process waits for the next word of an answer from a worker."
    )
    answer_wait_s: float = Field(
        5.0, ge=0, description="How long a question waits for an answer slot before 503 with Retry-After."
    )
    max_answers_waiting: int = Field(
        64, ge=0, description="Questions that may wait for a slot at once; beyond it 503 with Retry-After at once."
    )
    rate_limit_per_minute: float = Field(
        30.0, ge=0, description="Questions and UI events per client per minute (429 beyond); 0 = no limit."
    )
    rate_limit_burst: int = Field(10, ge=1, description="Requests a client may make at once before the rate applies.")
    rate_limit_exempt: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="Client addresses never rate limited (JSON list); [] limits loopback too.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Proxy addresses whose X-Forwarded-For names the client (JSON list); empty = use the peer address.",
    )
    shutdown_grace_s: int = Field(
        10, ge=0, description="On SIGTERM: how long answers in flight may take to finish before they are cut off."
    )
    serve_torch_threads: int = Field(
        1,
        ge=0,
        description="threads per answer while serving (OMP/BLAS/torch; 0: the libraries' defaults, one per core)."
        " Many answers run at once, so one thread each wastes less time waiting; `assistant ingest` keeps the default.",
    )
    embedding_cache: int = Field(
        4096,
        ge=0,
        description="Vectors of recent short texts kept in memory (questions, safety sentences; 1.5 KB each);"
        " a question asked again skips the model. 0 keeps none.",
    )
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics at /metrics.")
    log_questions: bool = Field(
        False, description="Put question and answer text (and full UI tracebacks) in the request log."
    )

    @field_validator("chroma_url", "llm_base_url", "embedding_sha256", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def answers_in_flight(self) -> int:
        if self.max_answers_in_flight is not None:
            return self.max_answers_in_flight
        return LLM_ANSWERS_IN_FLIGHT if self.answerer == "llm" else usable_cores()

    @property
    def worker_count(self) -> int:
        return self.workers if self.workers is not None else usable_cores()

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def feedback_path(self) -> Path:
        return self.data_dir / "feedback.jsonl"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (plus overrides); unknown ASSISTANT_ variables are an error.

    pydantic-settings ignores environment variables that match no field, so a typo such as
    ASSISTANT_CHROMA_ULR would silently do nothing; check for them here.
    """
    known = {name.upper() for name in Settings.model_fields}
    for key in os.environ:
        if key.upper().startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].upper()
            if name not in known:
                raise SettingsError(
                    f"unknown setting {key}; known: " + ", ".join(sorted(ENV_PREFIX + k for k in known))
                )
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
    apply_kinds(settings)
    return settings


def apply_kinds(settings: Settings) -> None:
    """Make the clinic's own kinds (ASSISTANT_EXTRA_KINDS) known to loading and answering."""
    from assistant.kinds import register_kinds

    try:
        register_kinds(settings.extra_kinds)
    except ValueError as exc:
        raise SettingsError(f"ASSISTANT_EXTRA_KINDS: {exc}") from exc
