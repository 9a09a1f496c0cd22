"""Registered sources: declared in a YAML file (`sources.yaml`) and mirrored into the
pipeline's `sources` table, which the assets read."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ingest_assets.sources.base import Source

# Dagster partition keys may not contain "|", ",", "[" or "]"; keep names plain and short.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class InvalidSourceName(ValueError):
    pass


class RegistryError(ValueError):
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
    location: str  # a folder, a URL list file, a sitemap URL, a table
    options: Mapping[str, Any] = field(default_factory=dict)  # per kind; never secrets


# kind -> "module:class"; imported when used, so a folder run never loads the web stack.
SOURCE_KINDS = {
    "folder": "ingest_assets.sources.folder:FolderSource",
    "urls": "ingest_assets.sources.web:UrlListSource",
    "sitemap": "ingest_assets.sources.web:SitemapSource",
    "postgres_table": "ingest_assets.sources.table:TableSource",
}


def open_source(record: SourceRecord) -> Source:
    """The source a record describes; ValueError naming the source if it is misconfigured."""
    if record.kind not in SOURCE_KINDS:
        kinds = ", ".join(SOURCE_KINDS)
        raise ValueError(f"source {record.name!r}: unknown kind {record.kind!r} (kinds: {kinds})")
    module, _, name = SOURCE_KINDS[record.kind].partition(":")
    source_class = getattr(importlib.import_module(module), name)
    source: Source = source_class.from_record(record)
    return source


def validate_record(record: SourceRecord) -> SourceRecord:
    """Check a record's name, kind and options without touching what it points at."""
    validate_source_name(record.name)
    open_source(record).close()
    return record


def load_registry(path: Path) -> list[SourceRecord]:
    """Sources declared in the YAML registry (missing file: none)."""
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or {}
        records = [_record(entry) for entry in data.get("sources") or []]
    except (yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError) as err:
        raise RegistryError(f"{path}: not a valid sources file ({err})") from err
    names = [r.name for r in records]
    if len(set(names)) != len(names):
        raise RegistryError(f"{path}: a source name appears twice")
    return records


def _record(entry: dict[str, Any]) -> SourceRecord:
    name = str(entry["name"])
    location = entry.get("location", entry.get("path"))
    if location is None:
        raise ValueError(f"source {name!r}: no location (or path)")
    options = entry.get("options") or {}
    if not isinstance(options, dict):
        raise ValueError(f"source {name!r}: options must be a mapping")
    kind = str(entry.get("kind", "folder"))
    return validate_record(SourceRecord(name, kind, str(location), options))


def save_registry(path: Path, records: list[SourceRecord]) -> None:
    """Write the registry atomically, so a sensor never reads half a file."""
    entries = [_entry(r) for r in sorted(records, key=lambda r: r.name)]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(yaml.safe_dump({"sources": entries}, sort_keys=False))
    os.replace(temporary, path)


def _entry(record: SourceRecord) -> dict[str, Any]:
    where = "path" if record.kind == "folder" else "location"
    entry: dict[str, Any] = {"name": record.name, "kind": record.kind, where: record.location}
    if record.options:
        entry["options"] = dict(record.options)
    return entry


def upsert_registry(path: Path, record: SourceRecord) -> None:
    records = [r for r in load_registry(path) if r.name != record.name]
    save_registry(path, [*records, record])


def remove_from_registry(path: Path, name: str) -> bool:
    records = load_registry(path)
    kept = [r for r in records if r.name != name]
    if len(kept) == len(records):
        return False
    save_registry(path, kept)
    return True
