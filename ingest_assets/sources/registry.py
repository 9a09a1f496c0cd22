"""Registered sources: declared in a YAML file (`sources.yaml`) and mirrored into the
pipeline's `sources` table, which the assets read."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

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
    location: str


def open_source(record: SourceRecord) -> Source:
    if record.kind == "folder":
        from ingest_assets.sources.folder import FolderSource

        return FolderSource(record.name, Path(record.location))
    raise ValueError(f"source {record.name!r} has unknown kind {record.kind!r}")


def load_registry(path: Path) -> list[SourceRecord]:
    """Sources declared in the YAML registry (missing file: none)."""
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or {}
        entries = data.get("sources") or []
        records = [
            SourceRecord(
                validate_source_name(str(entry["name"])),
                str(entry.get("kind", "folder")),
                str(entry["path"]),
            )
            for entry in entries
        ]
    except (yaml.YAMLError, AttributeError, KeyError, TypeError) as err:
        raise RegistryError(f"{path}: not a valid sources file ({err})") from err
    names = [r.name for r in records]
    if len(set(names)) != len(names):
        raise RegistryError(f"{path}: a source name appears twice")
    return records


def save_registry(path: Path, records: list[SourceRecord]) -> None:
    """Write the registry atomically, so a sensor never reads half a file."""
    entries = [
        {"name": r.name, "kind": r.kind, "path": r.location}
        for r in sorted(records, key=lambda r: r.name)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(yaml.safe_dump({"sources": entries}, sort_keys=False))
    os.replace(temporary, path)


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
