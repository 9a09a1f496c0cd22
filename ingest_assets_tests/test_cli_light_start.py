"""`ingest search` starts light: commands load lazily, and search imports no Dagster,
SQLAlchemy or torch (issue 16: a cold search in well under two seconds)."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from ingest_assets.cli.main import COMMANDS, main
from ingest_assets_tests.conftest import REPO_ROOT

HEAVY = {"dagster", "sqlalchemy", "torch", "sentence_transformers", "transformers"}


def imported_modules(*args: str) -> set[str]:
    """The modules loaded once `ingest ARGS` has run, in a new process."""
    script = (
        "import sys\n"
        "from ingest_assets.cli.main import main\n"
        f"try:\n    main({list(args)!r})\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return set(result.stderr.split())


def test_search_imports_no_dagster_sqlalchemy_or_torch():
    modules = imported_modules("search", "--help")
    assert "ingest_assets.cli.search" in modules
    assert sorted(m for m in modules if m.split(".")[0] in HEAVY) == []
    others = {module for module, _ in COMMANDS.values()} - {"ingest_assets.cli.search"}
    assert sorted(modules & others) == []


def test_help_lists_every_command_with_its_short_help():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:")[1].strip().splitlines()
    shown = {line.split()[0]: " ".join(line.split()[1:]) for line in listed}
    assert sorted(shown) == sorted(COMMANDS)
    for name, short_help in shown.items():
        command = main.get_command(click.Context(main), name)
        assert command is not None and short_help
        assert command.get_short_help_str(limit=1000).startswith(short_help.removesuffix("..."))


def test_an_unknown_command_is_refused():
    result = CliRunner().invoke(main, ["serch", "tides"])
    assert result.exit_code == 2
    assert "No such command 'serch'" in result.output
