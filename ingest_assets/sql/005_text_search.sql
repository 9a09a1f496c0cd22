-- Full-text search over the chunks, kept by the pipeline beside the vectors (hybrid search).
--
-- ts_config is the source's text search configuration (its `language` option, default
-- 'simple'), written with the chunks; documents.ts_config is the one its chunks were written
-- with, so that a changed language re-chunks the source's documents (cheap: same texts, so no
-- new vectors). Both are text, not regconfig: pg_upgrade (and managed upgrades built on it)
-- refuses user tables with a regconfig column, whose OIDs do not survive a major version.
-- A generated column must be immutable and text::regconfig is only stable, hence the function:
-- the name resolves on write, built-in names from pg_catalog (custom ones are schema-qualified
-- by the source option), exactly as to_tsvector(regconfig, text), itself immutable, would.
CREATE OR REPLACE FUNCTION chunk_tsvector(config text, context text, body text)
    RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN to_tsvector(config::regconfig, coalesce(context, '') || ' ' || body);

ALTER TABLE chunks ADD COLUMN IF NOT EXISTS ts_config text NOT NULL DEFAULT 'simple';
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS tsv tsvector
    GENERATED ALWAYS AS (chunk_tsvector(ts_config, context, text)) STORED;
CREATE INDEX IF NOT EXISTS chunks_tsv ON chunks USING gin (tsv);

ALTER TABLE documents ADD COLUMN IF NOT EXISTS ts_config text NOT NULL DEFAULT 'simple';
