"""Registered sources: declared in a YAML file (`sources.yaml`) and mirrored into the
pipeline's `sources` table, which the assets read."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ingest_assets.lib.gates import EVAL_OPTION, as_option, parse_gate
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


# Every kind takes `language`: the PostgreSQL text search configuration of its chunks' full-text
# index. 'simple' (no stemming, no stop words) keeps identifiers' parts as written, which is
# what exact-identifier queries need (see store/search.py). The names PostgreSQL ships (its
# pg_ts_config; a test keeps this list equal to it); a custom configuration is given
# schema-qualified and checked against pg_ts_config when the chunks are written.
LANGUAGE_OPTION = "language"
DEFAULT_LANGUAGE = "simple"
# Options of every kind, handled outside the kinds: a kind validates only its own.
COMMON_OPTIONS = frozenset({LANGUAGE_OPTION, EVAL_OPTION})  # every kind's, not the kind's own
BUILT_IN_LANGUAGES = (
    "simple", "arabic", "armenian", "basque", "catalan", "danish", "dutch", "english",
    "estonian", "finnish", "french", "german", "greek", "hindi", "hungarian", "indonesian",
    "irish", "italian", "lithuanian", "nepali", "norwegian", "portuguese", "romanian",
    "russian", "serbian", "spanish", "swedish", "tamil", "turkish", "yiddish",
)  # fmt: skip
_QUALIFIED = re.compile(r"^[a-z_][a-z0-9_$]*\.[a-z_][a-z0-9_$]*$")


def text_search_config(record: SourceRecord) -> str:
    """The text search configuration of the record's chunks (its `language` option)."""
    return str(record.options.get(LANGUAGE_OPTION, DEFAULT_LANGUAGE)).strip().lower()


def _check_language(record: SourceRecord) -> None:
    value = record.options.get(LANGUAGE_OPTION, DEFAULT_LANGUAGE)
    name = str(value).strip().lower()
    if isinstance(value, str) and (name in BUILT_IN_LANGUAGES or _QUALIFIED.match(name)):
        return
    raise ValueError(
        f"source {record.name!r}: unknown language {value!r} (PostgreSQL's text search "
        f"configurations: {', '.join(BUILT_IN_LANGUAGES)}; or a custom one as schema.name)"
    )


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
    options = {k: v for k, v in record.options.items() if k not in COMMON_OPTIONS}
    source: Source = source_class.from_record(replace(record, options=options))
    return source


def validate_record(record: SourceRecord) -> SourceRecord:
    """Check a record's name, kind and options without touching what it points at."""
    validate_source_name(record.name)
    _check_language(record)
    if EVAL_OPTION in record.options:
        parse_gate(record.name, record.options[EVAL_OPTION])
    open_source(record).close()
    return record


def load_registry(path: Path) -> list[SourceRecord]:
    """Sources declared in the YAML registry (missing file: none)."""
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or {}
        records = [_record(entry, path.parent) for entry in data.get("sources") or []]
    except (yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError) as err:
        raise RegistryError(f"{path}: not a valid sources file ({err})") from err
    names = [r.name for r in records]
    if len(set(names)) != len(names):
        raise RegistryError(f"{path}: a source name appears twice")
    return records


def _record(entry: dict[str, Any], base: Path) -> SourceRecord:
    name = str(entry["name"])
    location = entry.get("location", entry.get("path"))
    if location is None:
        raise ValueError(f"source {name!r}: no location (or path)")
    options = entry.get("options") or {}
    if not isinstance(options, dict):
        raise ValueError(f"source {name!r}: options must be a mapping")
    kind = str(entry.get("kind", "folder"))
    gate = entry.get(EVAL_OPTION, options.get(EVAL_OPTION))
    if gate is not None:  # the retrieval gate, its queries file relative to this file
        options = {**options, EVAL_OPTION: as_option(parse_gate(name, gate, base))}
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
    options = {k: v for k, v in record.options.items() if k != EVAL_OPTION}
    if options:
        entry["options"] = options
    if EVAL_OPTION in record.options:
        entry[EVAL_OPTION] = dict(record.options[EVAL_OPTION])
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
