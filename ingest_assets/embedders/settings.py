"""The embedding configuration, declared once: `INGEST_EMBEDDING_*` variables fill it (through
IngestSettings.embedding), the Dagster resource *is* one (EmbeddingResource subclasses it, so
every field is also a resource config field in the UI), and the embedders take it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

EmbeddingProvider = Literal["local", "hashing", "openai", "tei", "ollama"]
SERVER_PROVIDERS = ("openai", "tei", "ollama")
DEFAULT_LOCAL_MODEL = "all-MiniLM-L6-v2"


class EmbeddingSettings(BaseModel):
    """How chunk texts are embedded. A field added here is a setting
    (`INGEST_EMBEDDING_<NAME>`), a resource config field, and a value the embedders see."""

    provider: EmbeddingProvider = Field(
        default="local", description="local, hashing (tests), openai, tei or ollama."
    )
    model: str = Field(default=DEFAULT_LOCAL_MODEL, description="Embedding model name.")
    url: str | None = Field(default=None, description="Base URL of an embedding server.")
    api_key: str | None = Field(
        default=None,
        repr=False,
        description="Embedding API key (the resource takes it through EnvVar, so the UI never "
        "shows it).",
    )
    batch_size: int = Field(
        default=32, ge=1, description="Texts per request to start from; the batch size adapts."
    )
    max_batch_tokens: int = Field(
        default=8192, ge=1, description="Most tokens per request (chunking tokenizer's count)."
    )
    dimension: int | None = Field(
        default=None, ge=1, description="Vector size, only for providers that cannot report it."
    )
    concurrency: int = Field(default=4, ge=1, description="Requests in flight at once, per step.")
    timeout_s: float = Field(default=60.0, gt=0, description="Timeout per request.")
    max_attempts: int = Field(
        default=6, ge=1, description="Tries per request before the step fails."
    )
    deadline_s: float = Field(
        default=600.0, gt=0, description="Longest time one request may spend retrying."
    )
    backoff_s: float = Field(
        default=0.5, ge=0, description="First retry's backoff ceiling; doubles per attempt."
    )
    price_per_million_tokens: float | None = Field(
        default=None, ge=0, description="The server's price, for `ingest model plan`'s cost."
    )

    @model_validator(mode="after")
    def _server_has_a_url(self) -> EmbeddingSettings:
        if self.provider in SERVER_PROVIDERS and not self.url:
            raise ValueError(
                f"INGEST_EMBEDDING_PROVIDER={self.provider} needs INGEST_EMBEDDING_URL, the "
                "server's base URL (e.g. http://127.0.0.1:8080)"
            )
        return self
