"""Registered sources: name, kind and location, kept in the pipeline's `sources` table."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ingest_assets.sources.base import Source

# Dagster partition keys may not contain "|", ",", "[" or "]"; keep names plain and short.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class InvalidSourceName(ValueError):
    pass


def validate_source_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidSourceName(
            f"invalid source name {name!r}: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def default_source_name(path: Path) -> str:
    """A valid source name derived from a folder's name."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.expanduser().resolve().name).strip("-._")
    return (cleaned or "source")[:63]


@dataclass(frozen=True)
class SourceRecord:
    name: str
    kind: str
    location: str


def open_source(record: SourceRecord) -> Source:
    if record.kind == "folder":
        from ingest_assets.sources.folder import FolderSource

        return FolderSource(record.name, Path(record.location))
    raise ValueError(f"source {record.name!r} has unknown kind {record.kind!r}")
