"""Deployment settings, read from `INGEST_*` environment variables (and a `.env` file)."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest_assets.resources.providers.base import EmbedderSpec

EmbeddingProvider = Literal["local", "hashing", "openai", "tei", "ollama"]
SERVER_PROVIDERS = ("openai", "tei", "ollama")
ENV_PREFIX = "INGEST_"


class SettingsError(ValueError):
    """A bad INGEST_* value, said in one line: the variable, the value, what is allowed."""


DEFAULT_LOCAL_MODEL = "all-MiniLM-L6-v2"


class IngestSettings(BaseSettings):
    """Everything a deployment may change; local and production differ only in these values."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    home: Path = Field(
        default=Path(".ingest"),
        description="Folder for the embedded PostgreSQL data and the Dagster home.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL with pgvector; unset starts the embedded server under home.",
    )
    db_schema: str = Field(default="ingest", description="Schema of the pipeline's tables.")
    embedding_provider: EmbeddingProvider = Field(
        default="local", description="local, hashing (tests), openai, tei or ollama."
    )
    embedding_model: str = Field(default=DEFAULT_LOCAL_MODEL, description="Embedding model name.")
    embedding_url: str | None = Field(default=None, description="Base URL of an embedding server.")
    embedding_api_key: SecretStr | None = Field(default=None, description="Embedding API key.")
    embedding_batch_size: int = Field(default=32, ge=1, description="Most texts per request.")
    embedding_max_batch_tokens: int = Field(
        default=8192, ge=1, description="Most tokens per request (chunking tokenizer's count)."
    )
    embedding_concurrency: int = Field(
        default=4, ge=1, description="Requests in flight at once, per step."
    )
    embedding_timeout_s: float = Field(default=60.0, gt=0, description="Timeout per request.")
    embedding_max_attempts: int = Field(
        default=6, ge=1, description="Tries per request before the step fails."
    )
    embedding_deadline_s: float = Field(
        default=600.0, gt=0, description="Longest time one request may spend retrying."
    )
    embedding_backoff_s: float = Field(
        default=0.5, ge=0, description="First retry's backoff ceiling; doubles per attempt."
    )
    shards: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="Hash buckets per source. Fixed for a deployment: changing it reshuffles "
        "every document into a different partition.",
    )
    sources_file: Path | None = Field(
        default=None, description="YAML registry of sources; default: sources.yaml under home."
    )
    stage_retries: int = Field(
        default=2, ge=0, description="Retries of a failed stage step (Dagster RetryPolicy)."
    )
    stage_retry_delay_s: float = Field(
        default=2.0, ge=0, description="First stage retry's delay; doubles, with jitter."
    )
    sensor_interval_s: int = Field(
        default=30, ge=1, description="Seconds between the sources and change sensors' ticks."
    )
    chunk_tokens: int = Field(
        default=200, ge=16, description="Largest chunk, in tokens of the chunking tokenizer."
    )

    @model_validator(mode="after")
    def _server_has_a_url(self) -> IngestSettings:
        if self.embedding_provider in SERVER_PROVIDERS and not self.embedding_url:
            raise ValueError(
                f"INGEST_EMBEDDING_PROVIDER={self.embedding_provider} needs "
                "INGEST_EMBEDDING_URL, the server's base URL (e.g. http://127.0.0.1:8080)"
            )
        return self

    def embedder_spec(self, model: str | None = None) -> EmbedderSpec:
        """The provider configuration, for commands that embed outside a Dagster step."""
        key = self.embedding_api_key
        return EmbedderSpec(
            provider=self.embedding_provider,
            model=model or self.embedding_model,
            url=self.embedding_url,
            api_key=key.get_secret_value() if key else None,
            batch_size=self.embedding_batch_size,
            concurrency=self.embedding_concurrency,
            timeout_s=self.embedding_timeout_s,
            max_attempts=self.embedding_max_attempts,
            deadline_s=self.embedding_deadline_s,
            backoff_s=self.embedding_backoff_s,
        )

    @cached_property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def sources_path(self) -> Path:
        return (self.sources_file or self.resolved_home / "sources.yaml").expanduser().resolve()

    @property
    def dagster_home(self) -> Path:
        return self.resolved_home / "dagster"

    @property
    def embedded_pgdata(self) -> Path:
        return self.resolved_home / "pg"


def load_settings() -> IngestSettings:
    """The settings from the environment, or a SettingsError naming every bad variable."""
    try:
        return IngestSettings()
    except ValidationError as err:
        raise SettingsError(describe(err)) from None


def describe(err: ValidationError) -> str:
    problems = []
    for error in err.errors():
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:
            problems.append(message)
            continue
        variable = f"{ENV_PREFIX}{str(error['loc'][0]).upper()}"
        value = os.environ.get(variable, error.get("input"))
        problems.append(f"{variable}={value!r}: {message}")
    return "invalid setting: " + "; ".join(problems)
