-- Per-kind source options (a sitemap's crawl limits, a table's columns); never secrets.
ALTER TABLE sources ADD COLUMN IF NOT EXISTS options jsonb NOT NULL DEFAULT '{}'::jsonb;
