"""Search from Python, as `ingest search` does: `from ingest_assets import search`.

Opens the project's database (the settings' INGEST_DATABASE_URL, or the embedded server under
the home) and embeds the query for the serving model, recorded in the index, with the settings
its vectors were built with; text mode needs no model at all. Imports no Dagster.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

import numpy as np
import psycopg

from ingest_assets.database import open_database
from ingest_assets.embedders import EmbeddingSettings, open_embedder
from ingest_assets.settings import IngestSettings, load_settings
from ingest_assets.store import search as store
from ingest_assets.store.search import DEFAULT_MODE, MODES, Hit
from ingest_assets.store.serving import serving_or, settings_for
from ingest_assets.store.sources import get_source, list_sources
from ingest_assets.store.vectors import list_models, model_table

__all__ = ["DEFAULT_MODE", "MODES", "Hit", "SearchError", "search"]


class SearchError(LookupError):
    """A search that cannot run as asked, said in one line (an unknown source, no vectors)."""


def search(
    query: str,
    k: int = 5,
    *,
    mode: str = DEFAULT_MODE,
    source: str | None = None,
    model: str | None = None,
    settings: IngestSettings | None = None,
) -> list[Hit]:
    """The k best chunks for `query`: "hybrid" (vector and full text fused), "vector" or
    "text". The serving model's vectors answer (`ingest model activate`), unless `model` names
    another model's; `settings` defaults to the environment's."""
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r} (modes: {', '.join(MODES)})")
    if not query.strip():
        raise ValueError("the query is empty")
    settings = settings or load_settings()
    with open_database(settings).connect() as conn:
        check_source(conn, source)
        table, vector = None, None
        if mode != "text":
            model = model or serving_or(conn, settings.embedding.model)
            embedding = settings_for(conn, model, settings.embedding)
            table = vector_table(conn, model)
            vector = embed_query(embedding, query)
        return store.search(conn, table, vector, k, source, mode=mode, text=query)


def check_source(conn: psycopg.Connection, source: str | None) -> None:
    """A SearchError naming the registered sources when `source` is not one of them."""
    if source is not None and get_source(conn, source) is None:
        known = ", ".join(r.name for r in list_sources(conn)) or "none yet"
        raise SearchError(f"no source named {source!r} (sources: {known})")


def vector_table(conn: psycopg.Connection, model: str) -> str:
    """The model's vector table, or a SearchError naming the models that have vectors."""
    found = model_table(conn, model)
    if found is not None:
        return found[0]
    models = [name for name, *_ in list_models(conn)]
    if not models:
        raise SearchError("nothing is indexed yet; run `ingest run PATH` first")
    raise SearchError(
        f"no vectors for model {model!r} (models with vectors: {', '.join(models)}; "
        "`ingest model list`)"
    )


def embed_query(embedding: EmbeddingSettings, query: str) -> np.ndarray:
    """The query's vector; from inside a running event loop (a notebook) on a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_embed(embedding, query))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(asyncio.run, _embed(embedding, query)).result()


async def _embed(embedding: EmbeddingSettings, query: str) -> np.ndarray:
    async with open_embedder(embedding) as embedder:
        vector: np.ndarray = (await embedder.embed([query]))[0]
        return vector
