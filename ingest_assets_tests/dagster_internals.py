"""The tests' one use of Dagster's private modules, and why: Dagster has no public way to check
a dagster.yaml against its schema without starting the instance it describes (whose storage,
here a PostgreSQL host of the container deployment, does not exist in a test)."""

from __future__ import annotations

from typing import Any

from dagster._core.errors import DagsterInvalidConfigError as DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config


def checked_instance_config(folder: str) -> dict[str, Any]:
    """The dagster.yaml in `folder` as Dagster reads it; DagsterInvalidConfigError if bad."""
    config, _ = dagster_instance_config(folder)
    return config
