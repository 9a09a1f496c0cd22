"""The Dagster layer: thin adapters over the pipeline. Assets and checks call `pipeline/` and
turn its reports into metadata, retries and failures; resources hold the database and the
embedder; sensors and partitions decide what runs. `ingest_assets/definitions.py` builds the
one Definitions from them."""
