"""Embedding providers behind one small interface: a plain library (no Dagster). The
Dagster resource (defs/resources/embeddings.py) opens one per step; commands open one directly."""

from ingest_assets.embedders.base import (
    Embedder,
    EmbeddingError,
    PermanentEmbeddingError,
)
from ingest_assets.embedders.factory import open_embedder
from ingest_assets.embedders.settings import EmbeddingSettings

__all__ = [
    "Embedder",
    "EmbeddingError",
    "EmbeddingSettings",
    "PermanentEmbeddingError",
    "open_embedder",
]
