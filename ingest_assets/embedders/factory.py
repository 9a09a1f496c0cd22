"""Opens the embedder a configuration names. The one module that knows every provider."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ingest_assets.embedders.base import Embedder, EmbeddingError
from ingest_assets.embedders.settings import EmbeddingSettings


@contextlib.asynccontextmanager
async def open_embedder(
    settings: EmbeddingSettings, *, prepare: bool = True
) -> AsyncIterator[Embedder]:
    """Open the provider named in `settings` for the duration of the block. With prepare=False
    nothing is loaded or sent until the caller's `prepare()`: an unreachable server fails
    only the step that needs it, and a step with nothing to embed loads no model."""
    embedder: Embedder
    if settings.provider == "local":
        from ingest_assets.embedders.local import LocalEmbedder

        embedder = LocalEmbedder(settings)
        if prepare:
            await embedder.prepare()
        yield embedder
    elif settings.provider == "hashing":
        from ingest_assets.embedders.hashing import HashingEmbedder

        yield HashingEmbedder(settings)
    elif settings.provider in ("openai", "tei", "ollama"):
        from ingest_assets.embedders.http import open_http_embedder

        async with open_http_embedder(settings) as embedder:
            if prepare:
                await embedder.prepare()
            yield embedder
    else:
        raise EmbeddingError(
            f"unknown embedding provider {settings.provider!r}; "
            "use local, hashing, openai, tei or ollama"
        )
