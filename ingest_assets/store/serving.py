"""Which model answers searches: one row, switched in one transaction, every switch recorded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ingest_assets.embedders.settings import EmbeddingSettings
from ingest_assets.store.vectors import drop_model, list_models, model_table, stored_settings

_SECRETS = {"api_key"}


def recordable(settings: EmbeddingSettings) -> dict[str, Any]:
    """The settings stored with a model's vectors: everything but secrets."""
    values = settings.model_dump(exclude=_SECRETS)
    return EmbeddingSettings.model_validate(values).model_dump(exclude=_SECRETS)


def settings_for(
    conn: psycopg.Connection, model: str, build: EmbeddingSettings
) -> EmbeddingSettings:
    """How to embed for `model`: the configured settings when it is the model being built,
    else the settings recorded with its vectors (secrets from the configured ones). A model
    recorded before settings were stored is taken to use the configured provider."""
    if model == build.model:
        return build
    stored = stored_settings(conn, model)
    values = {**build.model_dump(), "model": model} if stored is None else stored
    return EmbeddingSettings.model_validate({**values, "api_key": build.api_key})


def serving_or(conn: psycopg.Connection, fallback: str) -> str:
    """The serving model; before any run completed, the configured one."""
    current = serving_model(conn)
    return current.model if current else fallback


class ActivationRefused(Exception):
    """The model may not serve yet; the message says why and what to do."""


@dataclass(frozen=True)
class Serving:
    model: str
    previous: str | None  # kept current until dropped: activating it again is a rollback
    activated_at: datetime


@dataclass(frozen=True)
class Activation:
    model: str
    previous: str | None
    forced: bool
    chunks: int
    chunks_without_vector: int
    figures: dict[str, Any]
    activated_at: datetime


def serving_model(conn: psycopg.Connection) -> Serving | None:
    row = conn.execute("SELECT model, previous, activated_at FROM serving_model").fetchone()
    return Serving(*row) if row else None


def serve_if_none(conn: psycopg.Connection, model: str) -> bool:
    """The first model ever built serves once its first run completes; True if it now does."""
    with conn.transaction():
        added = conn.execute(
            "INSERT INTO serving_model (model) VALUES (%s) ON CONFLICT DO NOTHING RETURNING model",
            (model,),
        ).fetchone()
        if added:
            conn.execute(
                "INSERT INTO model_activations (model, figures) VALUES (%s, %s)",
                (model, Jsonb({"reason": "the first model built"})),
            )
    return added is not None


def kept_current(conn: psycopg.Connection, build: str) -> list[str]:
    """The models a run embeds for: the serving one first (searches see new documents
    soonest), the previous one (an instant rollback stays possible), then the one being built."""
    current = serving_model(conn)
    models = [current.model, current.previous] if current else []
    found = [m for m in models if m and m != build and model_table(conn, m) is not None]
    return list(dict.fromkeys([*found, build]))


def coverage(conn: psycopg.Connection, table: str) -> tuple[int, int]:
    """(live chunks, live chunks without a vector in `table`) over the whole index."""
    row = conn.execute(
        sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS "
            "(SELECT 1 FROM {} v WHERE v.text_hash = c.text_hash)) "
            "FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.deleted_at IS NULL"
        ).format(sql.Identifier(table))
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def activate(
    conn: psycopg.Connection, model: str, *, force: bool, figures: dict[str, Any]
) -> Activation:
    """Make `model` serve, in one transaction: refused while a live chunk has no vector for
    it, unless forced (recorded with the event). The model serving before becomes `previous`."""
    with conn.transaction():
        conn.execute("LOCK TABLE serving_model IN EXCLUSIVE MODE")
        found = model_table(conn, model)
        if found is None:
            raise unknown(model)
        chunks, missing = coverage(conn, found[0])
        if missing and not force:
            raise incomplete(model, chunks, missing)
        before = serving_model(conn)
        previous = before.model if before else None
        if previous == model:
            previous = before.previous if before else None
        row = conn.execute(
            "INSERT INTO serving_model (model, previous, activated_at) VALUES (%s, %s, now()) "
            "ON CONFLICT (singleton) DO UPDATE SET model = excluded.model, "
            "previous = excluded.previous, activated_at = excluded.activated_at "
            "RETURNING activated_at",
            (model, previous),
        ).fetchone()
        assert row is not None
        recorded = {**figures, "chunks": chunks, "chunks_without_vector": missing}
        conn.execute(
            "INSERT INTO model_activations (model, previous, forced, figures, activated_at) "
            "VALUES (%s, %s, %s, %s, %s)",
            (model, previous, force, Jsonb(recorded), row[0]),
        )
    return Activation(model, previous, force, chunks, missing, recorded, row[0])


def unknown(model: str) -> ActivationRefused:
    return ActivationRefused(
        f"model {model!r} has no vectors; build it first (INGEST_EMBEDDING_MODEL={model}, "
        "then `ingest backfill SOURCE --all` or `ingest run`)"
    )


def incomplete(model: str, chunks: int, missing: int) -> ActivationRefused:
    return ActivationRefused(
        f"model {model!r} is incomplete: {missing} of {chunks} live chunks have no vector "
        "for it yet; finish its backfill (`ingest model plan` shows what is left), or --force"
    )


def drop(conn: psycopg.Connection, model: str) -> bool:
    """Drop a model's vectors; refused for the serving model. A dropped previous model is no
    longer kept current (nor a rollback). False when the model has no vectors."""
    with conn.transaction():
        conn.execute("LOCK TABLE serving_model IN EXCLUSIVE MODE")
        current = serving_model(conn)
        if current and current.model == model:
            raise ActivationRefused(
                f"{model!r} is the serving model; activate another one before dropping it "
                "(`ingest model activate NAME`)"
            )
        conn.execute("UPDATE serving_model SET previous = NULL WHERE previous = %s", (model,))
        return drop_model(conn, model)


def models_with_coverage(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every model with a vector table: its dimension, vectors, live chunks and those missing."""
    rows = []
    for name, dimension, table, vectors in list_models(conn):
        chunks, missing = coverage(conn, table)
        rows.append({"model": name, "dimension": dimension, "table": table, "vectors": vectors,
                     "chunks": chunks, "missing": missing})  # fmt: skip
    return rows


def activations(conn: psycopg.Connection, limit: int = 20) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT model, previous, forced, figures, activated_at FROM model_activations "
        "ORDER BY id DESC LIMIT %s",
        (limit,),
    )
    keys = ("model", "previous", "forced", "figures", "activated_at")
    return [dict(zip(keys, row, strict=True)) for row in rows]
