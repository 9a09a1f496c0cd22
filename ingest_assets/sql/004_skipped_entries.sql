-- What the last scan of each shard passed over (a folder's files of kinds it does not read,
-- URLs robots.txt disallows), by reason: {"reason": {"count": n, "examples": [...]}}.
CREATE TABLE IF NOT EXISTS skipped_entries (
    source   text NOT NULL REFERENCES sources (name) ON DELETE CASCADE,
    shard    integer NOT NULL,
    reasons  jsonb NOT NULL,
    PRIMARY KEY (source, shard)
);
