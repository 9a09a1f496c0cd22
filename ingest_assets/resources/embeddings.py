"""The embedding resource: one provider client opened for the whole step."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import dagster as dg
from pydantic import Field, PrivateAttr

from ingest_assets.resources.providers import Embedder, EmbedderSpec, open_embedder


class EmbeddingResource(dg.ConfigurableResource):
    """Embeds chunk texts with the configured provider (local model or embedding server)."""

    provider: str = Field(default="local", description="local, hashing, openai, tei or ollama.")
    model: str = Field(default="all-MiniLM-L6-v2", description="Model name sent to the provider.")
    url: str | None = Field(default=None, description="Base URL of the embedding server.")
    api_key: str | None = Field(
        default=None, description="API key; pass it with EnvVar so it never shows in the UI."
    )
    batch_size: int = Field(default=32, ge=1, description="Most texts per request.")
    max_batch_tokens: int = Field(default=8192, ge=1, description="Most tokens per request.")
    dimension: int | None = Field(
        default=None, description="Vector size, only for providers that cannot report it."
    )
    concurrency: int = Field(default=4, ge=1, description="Requests in flight at once.")
    timeout_s: float = Field(default=60.0, gt=0, description="Timeout of one request.")
    max_attempts: int = Field(default=6, ge=1, description="Tries per request.")
    deadline_s: float = Field(default=600.0, gt=0, description="Retry budget per request.")
    backoff_s: float = Field(default=0.5, ge=0, description="First retry's backoff ceiling.")

    _embedder: Embedder | None = PrivateAttr(default=None)

    def spec(self) -> EmbedderSpec:
        return EmbedderSpec(
            provider=self.provider,
            model=self.model,
            url=self.url,
            api_key=self.api_key,
            batch_size=self.batch_size,
            dimension=self.dimension,
            concurrency=self.concurrency,
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            deadline_s=self.deadline_s,
            backoff_s=self.backoff_s,
        )

    @contextlib.asynccontextmanager
    async def yield_for_execution(  # type: ignore[override]  # async form: Dagster 1.13 awaits it
        self, context: dg.InitResourceContext
    ) -> AsyncIterator[EmbeddingResource]:
        async with open_embedder(self.spec(), prepare=False) as embedder:
            self._embedder = embedder
            try:
                yield self
            finally:
                self._embedder = None

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            raise RuntimeError("EmbeddingResource is only usable inside a Dagster step")
        return self._embedder
