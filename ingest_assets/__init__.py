"""ingest-assets: documents from folders, websites and tables into PostgreSQL/pgvector through
Dagster assets, and searched back. ARCHITECTURE.md is the code map.

The public surface is below; every other module is internal and may change. Loaded on first
use, so that `import ingest_assets.<module>` stays as light as that module.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "IngestSettings": "ingest_assets.settings",
    "SettingsError": "ingest_assets.settings",
    "load_settings": "ingest_assets.settings",
    "EmbeddingSettings": "ingest_assets.embedders",
    "open_embedder": "ingest_assets.embedders",
    "build_definitions": "ingest_assets.definitions",
    "search": "ingest_assets.search_api",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
