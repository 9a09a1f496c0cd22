"""`ingest source`: the source registry (sources.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml

from ingest_assets.cli.common import cli_settings, console, out, registry
from ingest_assets.local_stack import open_database
from ingest_assets.sources.registry import (
    SOURCE_KINDS,
    SourceRecord,
    remove_from_registry,
    upsert_registry,
    validate_record,
)
from ingest_assets.store.sources import delete_source


@click.group()
def source() -> None:
    """Manage the source registry (sources.yaml); the sources sensor picks changes up."""


@source.command(name="add")
@click.argument("name")
@click.argument("location")
@click.option(
    "--kind",
    type=click.Choice(sorted(SOURCE_KINDS)),
    help="Default: folder for a directory, sitemap for a URL, urls for a file of URLs.",
)
@click.option(
    "-o",
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A kind's option, e.g. -o delay_s=0.5 or -o dsn_env=NOTES_DSN (repeatable).",
)
def source_add(name: str, location: str, kind: str | None, options: tuple[str, ...]) -> None:
    """Declare source NAME at LOCATION: a folder, a sitemap URL, a file of page URLs, or a
    PostgreSQL table (--kind postgres_table -o dsn_env=VAR). The sensors ingest it, or
    `ingest run NAME`."""
    settings = cli_settings()
    kind = kind or _guess_kind(location)
    if kind == "folder" or kind == "urls":
        location = str(Path(location).expanduser().resolve())
    try:
        record = validate_record(SourceRecord(name, kind, location, _parse_options(options)))
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    upsert_registry(settings.sources_path, record)
    console.print(f"source {name} ({kind}) -> {record.location} (in {settings.sources_path})")


def _guess_kind(location: str) -> str:
    if location.startswith(("http://", "https://")):
        return "sitemap"
    path = Path(location).expanduser()
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "urls"
    raise click.ClickException(
        f"{location}: not a folder, a file of URLs or a sitemap URL; pass --kind"
    )


def _parse_options(pairs: tuple[str, ...]) -> dict[str, object]:
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.ClickException(f"option {pair!r}: expected KEY=VALUE")
        options[key.strip()] = yaml.safe_load(value) if value else ""
    return options


@source.command(name="list")
@click.option("--json", "as_json", is_flag=True)
def source_list(as_json: bool) -> None:
    """List the declared sources."""
    records = registry(cli_settings())
    if as_json:
        out.print_json(json.dumps([r.__dict__ for r in records]))
        return
    for record in records:
        out.print(f"{record.name}\t{record.kind}\t{record.location}")


@source.command(name="remove")
@click.argument("name")
def source_remove(name: str) -> None:
    """Remove source NAME: its documents leave search; its partitions go at the next tick."""
    settings = cli_settings()
    if not remove_from_registry(settings.sources_path, name):
        raise click.ClickException(f"no source named {name!r} in {settings.sources_path}")
    with open_database(settings).connect() as conn:
        removed = delete_source(conn, name)
    console.print(f"removed source {name} ({removed} documents)")
