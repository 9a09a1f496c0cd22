-- The model that answers searches is a fact of the index, not of a shell's environment:
-- one row, switched in one transaction, with every switch kept as an event.
ALTER TABLE embedding_models ADD COLUMN IF NOT EXISTS settings jsonb;

CREATE TABLE IF NOT EXISTS serving_model (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    model        text NOT NULL,
    previous     text,
    activated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS model_activations (
    id           bigserial PRIMARY KEY,
    model        text NOT NULL,
    previous     text,
    forced       boolean NOT NULL DEFAULT false,
    figures      jsonb NOT NULL DEFAULT '{}'::jsonb,
    activated_at timestamptz NOT NULL DEFAULT now()
);
