"""`python -m ingest_assets.cli`, as the tests, the benchmarks and `ingest dev` start it."""

from ingest_assets.cli.main import entry

if __name__ == "__main__":
    entry()
