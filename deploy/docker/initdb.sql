-- Runs once, when the PostgreSQL volume is created: Dagster's own database beside the
-- pipeline's (POSTGRES_DB, with pgvector; the pipeline's migrations create the extension).
CREATE DATABASE dagster;
