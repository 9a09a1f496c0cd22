-- Facts the index was built with, recorded at first use and checked by every process after:
-- the shard count decides which partition a document is in.
CREATE TABLE IF NOT EXISTS index_settings (
    name        text PRIMARY KEY,
    value       text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
