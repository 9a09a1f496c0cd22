"""Deployment settings, read from `INGEST_*` environment variables (and a `.env` file)."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest_assets.embedders.settings import EmbeddingSettings

ENV_PREFIX = "INGEST_"


class SettingsError(ValueError):
    """A bad INGEST_* value, said in one line: the variable, the value, what is allowed."""


class IngestSettings(BaseSettings):
    """Everything a deployment may change; local and production differ only in these values."""

    # INGEST_EMBEDDING_MODEL fills embedding.model: nested at the first underscore only.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        extra="ignore",
        env_nested_delimiter="_",
        env_nested_max_split=1,
    )

    home: Path = Field(
        default=Path(".ingest"),
        description="Folder for the embedded PostgreSQL data and the Dagster home.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL with pgvector; unset starts the embedded server under home.",
    )
    db_schema: str = Field(default="ingest", description="Schema of the pipeline's tables.")
    embedding: EmbeddingSettings = Field(
        default_factory=EmbeddingSettings,
        description="INGEST_EMBEDDING_<FIELD>: the fields of embedders.EmbeddingSettings.",
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
    model_auto_activate: bool = Field(
        default=False,
        description="Let a sensor activate the model being built once it is complete and its "
        "retrieval gates pass.",
    )
    chunk_tokens: int = Field(
        default=200, ge=16, description="Largest chunk, in tokens of the chunking tokenizer."
    )

    def with_embedding(self, **changes: object) -> IngestSettings:
        """These settings with some embedding fields changed (and validated)."""
        embedding = EmbeddingSettings.model_validate({**self.embedding.model_dump(), **changes})
        return self.model_copy(update={"embedding": embedding})

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


def variable_names() -> list[str]:
    """Every INGEST_* variable the settings read, nested models' fields included."""
    names = []
    for name, field in IngestSettings.model_fields.items():
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            names += [f"{ENV_PREFIX}{name}_{sub}".upper() for sub in nested.model_fields]
        else:
            names.append(f"{ENV_PREFIX}{name}".upper())
    return names


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
        if not error["loc"] or message.startswith(ENV_PREFIX):  # a rule across variables
            problems.append(message)
            continue
        variable = ENV_PREFIX + "_".join(str(part) for part in error["loc"]).upper()
        value = os.environ.get(variable, error.get("input"))
        problems.append(f"{variable}={value!r}: {message}")
    return "invalid setting: " + "; ".join(problems)
