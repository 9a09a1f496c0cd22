"""SQL migrations shipped with the package, applied in file-name order."""

from __future__ import annotations

from importlib import resources


def migrations() -> list[tuple[str, str]]:
    """(version, sql) for every `NNN_name.sql` file, ordered by version."""
    files = [f for f in resources.files(__package__).iterdir() if f.name.endswith(".sql")]
    return [
        (f.name.removesuffix(".sql"), f.read_text()) for f in sorted(files, key=lambda f: f.name)
    ]
