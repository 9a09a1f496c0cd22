-- The batch size a step settled on against a model's server, so the next steps start there
-- instead of climbing from the configured size again. Kept with what it was learned for.
ALTER TABLE embedding_models ADD COLUMN IF NOT EXISTS learned_batch jsonb;
