"""The embedding resource: the embedding settings as Dagster config, and one embedder opened
for the whole step."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import dagster as dg
from pydantic import PrivateAttr

from ingest_assets.embedders import Embedder, EmbeddingSettings, open_embedder

EMBEDDING_POOL = "embedding_api"  # Dagster concurrency pool: steps talking to the endpoint


class EmbeddingResource(dg.ConfigurableResource, EmbeddingSettings):
    """Embeds chunk texts with the configured provider (local model or embedding server). Its
    config fields are EmbeddingSettings' own."""

    _embedder: Embedder | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: EmbeddingSettings) -> EmbeddingResource:
        """The resource for these settings; the API key travels as an EnvVar, so the UI shows
        its name, never its value."""
        values = settings.model_dump(exclude={"api_key"})
        key = dg.EnvVar("INGEST_EMBEDDING_API_KEY") if settings.api_key else None
        return cls(**values, api_key=key)

    @contextlib.asynccontextmanager
    async def yield_for_execution(  # type: ignore[override]  # async form: Dagster 1.13 awaits it
        self, context: dg.InitResourceContext
    ) -> AsyncIterator[EmbeddingResource]:
        async with open_embedder(self, prepare=False) as embedder:
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
