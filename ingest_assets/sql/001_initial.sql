-- The pipeline's tables. Runs inside the configured schema (search_path is set by the caller).

CREATE TABLE IF NOT EXISTS sources (
    name        text PRIMARY KEY,
    kind        text NOT NULL,
    location    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per document ever seen; deleted documents stay as tombstones (deleted_at set).
-- A document is done when chunked_hash = content_hash (under the current chunker) and every
-- chunk's text has a vector for the active model: "done" is derived, never stored ahead of the work.
CREATE TABLE IF NOT EXISTS documents (
    id              text PRIMARY KEY,
    source          text NOT NULL,
    doc_id          text NOT NULL,
    shard           integer NOT NULL,
    uri             text NOT NULL,
    title           text,
    markup          text NOT NULL DEFAULT 'text',
    body            text,
    fingerprint     text,
    content_hash    text,
    chunked_hash    text,
    chunker         text,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    quarantined_at  timestamptz,
    deleted_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, doc_id)
);
CREATE INDEX IF NOT EXISTS documents_source_shard ON documents (source, shard);

CREATE TABLE IF NOT EXISTS chunks (
    id           text PRIMARY KEY,
    document_id  text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal      integer NOT NULL,
    context      text NOT NULL,
    text         text NOT NULL,
    text_hash    bytea NOT NULL,
    token_count  integer NOT NULL,
    UNIQUE (document_id, ordinal)
);
CREATE INDEX IF NOT EXISTS chunks_text_hash ON chunks (text_hash);

-- One vector table per model, keyed by the embedding input's hash.
CREATE TABLE IF NOT EXISTS embedding_models (
    name        text PRIMARY KEY,
    dimension   integer NOT NULL,
    table_name  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
