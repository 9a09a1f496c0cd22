"""Embedding providers behind one small interface; the Dagster resource picks one."""

from ingest_assets.resources.providers.base import (
    Embedder,
    EmbedderSpec,
    EmbeddingError,
    PermanentEmbeddingError,
    open_embedder,
)

__all__ = ["Embedder", "EmbedderSpec", "EmbeddingError", "PermanentEmbeddingError", "open_embedder"]
