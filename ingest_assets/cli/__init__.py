"""The `ingest` command: one-shot runs, search and status over the project's instance.

One module per command or group; `main` (in main.py) gathers them, display.py renders."""

from ingest_assets.cli.main import entry, main

__all__ = ["entry", "main"]
