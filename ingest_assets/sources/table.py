"""A PostgreSQL table (or query) of documents: notes, blocks, tickets.

Configured with the name of an environment variable holding the DSN (the secret never enters
sources.yaml, the pipeline's database or the Dagster UI), a table or a read-only query, and the
id, text, title and `updated_at` columns. A row's fingerprint is its `updated_at`, so a run
reads only rows whose timestamp moved; a row gone from the listing is a deleted document.
The change sensor first asks one aggregate, a digest of every (id, updated_at), and lists the
rows only when it moved; an optional NOTIFY channel wakes it at once (see sensors.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ingest_assets.sources import registry
from ingest_assets.sources.base import (
    DocumentGone,
    DocumentRef,
    Fetched,
    SourceReadError,
    UnreadableDocument,
)

_SUFFIX_BY_MARKUP = {"markdown": ".md", "text": ".txt", "html": ".html"}
_FETCH_BATCH = 500
_LIST_BATCH = 5000


class TableOptions(BaseModel):
    """Options of the `postgres_table` kind; `location` is the table (`schema.table`)."""

    model_config = ConfigDict(extra="forbid")

    dsn_env: str = Field(description="Environment variable that holds the DSN (a secret).")
    query: str | None = Field(default=None, description="A SELECT to read instead of the table.")
    id_column: str = "id"
    text_column: str = "body"
    title_column: str | None = "title"
    updated_at_column: str = "updated_at"
    markup: Literal["markdown", "text", "html"] = "markdown"
    notify_channel: str | None = Field(default=None, max_length=63)
    connect_timeout_s: int = Field(default=10, ge=1)


class TableSource:
    kind = "postgres_table"

    def __init__(self, name: str, table: str, options: TableOptions):
        self.name = name
        self.table = table
        self.options = options
        self.unlisted_prefixes: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self._conn: psycopg.Connection | None = None
        self._suffix = _SUFFIX_BY_MARKUP[options.markup]

    @classmethod
    def from_record(cls, record: registry.SourceRecord) -> TableSource:
        try:
            options = TableOptions(**record.options)
        except ValidationError as err:
            raise ValueError(f"source {record.name!r}: invalid options: {err}") from None
        if options.query is None and not record.location:
            raise ValueError(f"source {record.name!r}: name a table (location) or a query")
        return cls(record.name, record.location, options)

    # --- connection ---------------------------------------------------------------------

    def dsn(self) -> str:
        dsn = os.environ.get(self.options.dsn_env)
        if not dsn:
            raise UnreadableDocument(
                f"source {self.name!r}: environment variable {self.options.dsn_env} "
                "(the table's DSN) is not set"
            )
        return dsn

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self.dsn(),
                    connect_timeout=self.options.connect_timeout_s,
                    options="-c default_transaction_read_only=on",
                )
            except psycopg.OperationalError as err:
                raise SourceReadError(f"source {self.name!r}: cannot connect: {err}") from None
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- the Source interface -----------------------------------------------------------

    def list_documents(self) -> Iterator[DocumentRef]:
        query = sql.SQL("SELECT {id}::text, {updated}::text FROM {rel} AS q").format(
            **self._names()
        )
        self._check_columns()
        prefix = self.uri_prefix()
        for doc_id, updated_at in self._stream(query, "ingest_list"):
            if doc_id is None:
                continue
            yield DocumentRef(
                doc_id=doc_id,
                uri=f"{prefix}#{doc_id}",
                fingerprint=updated_at or "",
                suffix=self._suffix,
            )

    def fetch_all(
        self, wanted: Iterable[tuple[DocumentRef, str | None]]
    ) -> Iterator[tuple[DocumentRef, Fetched | SourceReadError]]:
        batch: list[DocumentRef] = []
        for ref, _ in wanted:
            batch.append(ref)
            if len(batch) >= _FETCH_BATCH:
                yield from self._fetch_batch(batch)
                batch = []
        if batch:
            yield from self._fetch_batch(batch)

    def revalidate(
        self, refs: list[DocumentRef], stored: Mapping[str, str | None]
    ) -> Iterator[DocumentRef]:
        return iter(refs)

    @property
    def recheck_s(self) -> float:
        return 0.0  # every listing carries updated_at: nothing to revalidate

    def change_token(self) -> str:
        """One row that moves whenever a row is added, deleted or gets a new `updated_at`."""
        query = sql.SQL(
            "SELECT count(*), coalesce(bit_xor(hashtextextended("
            "{id}::text || '@' || coalesce({updated}::text, ''), 0)), 0) FROM {rel} AS q"
        ).format(**self._names())
        row = self._execute(query).fetchone()
        return f"{row[0]}:{row[1]}" if row else ""

    def uri_prefix(self) -> str:
        info = self.conn.info
        relation = self.table or "query"
        return f"postgresql://{info.host}:{info.port}/{info.dbname}/{relation}"

    # --- helpers ------------------------------------------------------------------------

    def _fetch_batch(
        self, refs: list[DocumentRef]
    ) -> Iterator[tuple[DocumentRef, Fetched | SourceReadError]]:
        query = sql.SQL("SELECT {columns} FROM {rel} AS q WHERE {id}::text = ANY(%s)").format(
            columns=self._columns(), **self._names()
        )
        try:
            rows = self._execute(query, ([r.doc_id for r in refs],)).fetchall()
        except SourceReadError as err:
            for ref in refs:
                yield ref, err
            return
        found = {row[0]: row for row in rows}
        for ref in refs:
            row = found.get(ref.doc_id)
            if row is None:
                yield ref, DocumentGone(f"{ref.doc_id}: row deleted before it could be read")
                continue
            _, text, title_value, updated_at = row
            data = (text or "").encode("utf-8")
            yield ref, Fetched(data, updated_at or "", self._suffix, title=title_value)

    def _check_columns(self) -> None:
        """A misnamed column fails the listing (the run), not every row one by one."""
        query = sql.SQL("SELECT {columns} FROM {rel} AS q LIMIT 0")
        self._execute(query.format(columns=self._columns(), **self._names()))

    def _columns(self) -> sql.Composed:
        """id, text, title and updated_at as text, in that order."""
        names = self._names()
        title = names["title"] if self.options.title_column else sql.SQL("NULL")
        return sql.SQL("{id}::text, {text}::text, {title}::text, {updated}::text").format(
            id=names["id"], text=names["text"], title=title, updated=names["updated"]
        )

    def _names(self) -> dict[str, sql.Composable]:
        o = self.options
        if o.query is not None:
            relation: sql.Composable = sql.SQL("({})").format(sql.SQL(o.query))  # type: ignore[arg-type]
        else:
            relation = sql.Identifier(*self.table.split(".", 1))
        return {
            "rel": relation,
            "id": sql.Identifier("q", o.id_column),
            "text": sql.Identifier("q", o.text_column),
            "title": sql.Identifier("q", o.title_column or o.text_column),
            "updated": sql.Identifier("q", o.updated_at_column),
        }

    def _execute(self, query: sql.Composed, params: Any = None) -> psycopg.Cursor:
        with self._errors():
            cursor = self.conn.execute(query, params)
            self.conn.commit()
            return cursor

    def _stream(self, query: sql.Composed, name: str) -> Iterator[tuple[Any, ...]]:
        """Rows through a server-side cursor: a million-row table never sits in memory."""
        conn = self.conn
        with self._errors(), conn.transaction(), conn.cursor(name=name) as cursor:
            cursor.itersize = _LIST_BATCH
            cursor.execute(query)
            yield from cursor

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Database errors as read errors naming the source; a missing table or column will
        not fix itself, anything else (a restart, a lock timeout) may."""
        try:
            yield
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as err:
            self._reset()
            raise UnreadableDocument(f"source {self.name!r}: {_first_line(err)}") from None
        except psycopg.Error as err:
            self._reset()
            raise SourceReadError(f"source {self.name!r}: {_first_line(err)}") from None

    def _reset(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rollback()
        except psycopg.Error:
            self.close()


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
