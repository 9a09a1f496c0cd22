"""Environments for `ingest` child processes in tests and benchmarks."""

from __future__ import annotations

import os


def isolated_environment(**settings: str) -> dict[str, str]:
    """This process's environment without any INGEST_* or DAGSTER_* variable, plus `settings`:
    a child `ingest` sees only the configuration its caller chose."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INGEST_", "DAGSTER_"))}
    env.update(settings)
    return env
