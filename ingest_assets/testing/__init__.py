"""Test and benchmark doubles for external services."""

from __future__ import annotations

from typing import Any

__all__ = ["FakeEmbeddingServer", "FakeServerConfig"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m ingest_assets.testing.fake_embedding_server` does not import the
    # module twice (runpy warns when the package already imported it).
    if name in __all__:
        from ingest_assets.testing import fake_embedding_server

        return getattr(fake_embedding_server, name)
    raise AttributeError(name)
