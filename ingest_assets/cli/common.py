"""What the command modules share: the two consoles, the configuration error, settings and
the source registry as the commands read them."""

from __future__ import annotations

import click
from rich.console import Console

from ingest_assets.settings import IngestSettings, SettingsError, load_settings
from ingest_assets.sources.registry import RegistryError, SourceRecord, load_registry

console = Console(stderr=True)
out = Console()


class ConfigurationError(click.ClickException):
    """A setting or the index's recorded layout is wrong: fix it, do not retry."""

    exit_code = 2


def cli_settings() -> IngestSettings:
    try:
        return load_settings()
    except SettingsError as err:
        raise ConfigurationError(str(err)) from None


def first_line(err: BaseException) -> str:
    cause = getattr(err, "orig", None) or err  # SQLAlchemy wraps the driver's error
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"


def registry(settings: IngestSettings) -> list[SourceRecord]:
    try:
        return load_registry(settings.sources_path)
    except RegistryError as err:
        raise click.ClickException(str(err)) from err
