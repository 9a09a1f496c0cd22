"""A user's first-hour mistakes get one line naming the thing, the value and what to do, and
a non-zero exit; never a traceback."""

from __future__ import annotations

import json
import re

import pytest

from ingest_assets.database import Database
from ingest_assets_tests.test_cli_commands import ingest


def one_line_error(result) -> str:
    """The error's single line (click prefixes it with "Error: ")."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("INGEST_EMBEDDING_PROVIDER", "openia", "'local', 'hashing', 'openai', 'tei' or 'ollama'"),
        ("INGEST_SHARDS", "abc", "valid integer"),
        ("INGEST_SHARDS", "0", "greater than or equal to 1"),
        ("INGEST_SHARDS", "-1", "greater than or equal to 1"),
        ("INGEST_EMBEDDING_BATCH_SIZE", "many", "valid integer"),
    ],
)
@pytest.mark.parametrize("command", [("status",), ("search", "tides")])
def test_a_bad_setting_is_one_line_naming_the_variable_and_value(
    tmp_path, variable, value, expected, command
):
    result = ingest(tmp_path / "home", *command, env={variable: value})
    assert result.returncode == 2
    line = one_line_error(result)
    assert f"{variable}={value!r}" in line and expected in line


@pytest.mark.parametrize("provider", ["tei", "openai", "ollama"])
def test_a_server_provider_without_url_is_refused_before_any_run(tmp_path, provider):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nalpha")
    result = ingest(
        tmp_path / "home", "run", str(folder), env={"INGEST_EMBEDDING_PROVIDER": provider}
    )
    assert result.returncode == 2
    assert "INGEST_EMBEDDING_URL" in one_line_error(result)
    assert not (tmp_path / "home").exists()  # refused before a database or a run was made


def test_an_unwritable_home_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = ingest(blocker / "home", "status")
    assert result.returncode != 0
    line = one_line_error(result)
    assert str(blocker) in line and "INGEST_HOME" in line


def test_another_shard_count_than_the_index_was_built_with_is_refused(tmp_path, db):
    env = {"INGEST_DATABASE_URL": db.url, "INGEST_DB_SCHEMA": db.schema, "INGEST_SHARDS": "4"}
    first = ingest(tmp_path / "home", "status", env=env)
    assert first.returncode == 0, first.stderr

    changed = ingest(tmp_path / "home", "status", env={**env, "INGEST_SHARDS": "8"})

    assert changed.returncode == 2
    line = one_line_error(changed)
    assert "INGEST_SHARDS=8" in line and "built with 4 shards" in line
    Database(db.url, db.schema, shards=4).migrate()  # the recorded count is unchanged


def test_search_input_is_validated(tmp_path, db):
    env = {"INGEST_DATABASE_URL": db.url, "INGEST_DB_SCHEMA": db.schema}
    home = tmp_path / "home"
    for k in ("-3", "0"):
        result = ingest(home, "search", "tides", "-k", k, env=env)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "'-k'" in result.stderr and "x>=1" in result.stderr
    empty = ingest(home, "search", "  ", env=env)
    assert empty.returncode == 2 and "the query is empty" in empty.stderr
    nothing = ingest(home, "search", "tides", env={**env, "INGEST_EMBEDDING_PROVIDER": "hashing"})
    assert "nothing is indexed yet" in one_line_error(nothing)
    unknown = ingest(home, "search", "tides", "--source", "nope", env=env)
    assert "no source named 'nope'" in one_line_error(unknown)


def test_search_names_the_models_that_have_vectors(tmp_path, db, ingest_folder):
    env = ingest_folder
    result = ingest(tmp_path / "home", "search", "tides", "--model", "other-model", env=env)
    line = one_line_error(result)
    assert "no vectors for model 'other-model'" in line and "hashing-384" in line
    assert "ingest run" not in line


@pytest.fixture
def ingest_folder(tmp_path, db) -> dict[str, str]:
    """A small folder ingested with the hashing embedder; the environment that reaches it."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "tides.md").write_text("# Tides\n\nThe moon pulls the sea.")
    env = {
        "INGEST_DATABASE_URL": db.url,
        "INGEST_DB_SCHEMA": db.schema,
        "INGEST_EMBEDDING_PROVIDER": "hashing",
        "INGEST_EMBEDDING_MODEL": "hashing-384",
        "INGEST_SHARDS": "2",
    }
    result = ingest(tmp_path / "home", "run", str(folder), env=env)
    assert result.returncode == 0, result.stderr
    return env


def test_files_of_unsupported_kinds_are_counted_and_named(tmp_path, db, ingest_folder):
    folder = tmp_path / "docs"
    (folder / "img").mkdir()
    (folder / "img" / "logo.svg").write_text("<svg/>")
    (folder / "img" / "chart.svg").write_text("<svg/>")
    (folder / "report.docx").write_bytes(b"PK\x03\x04")
    (folder / ".hidden.svg").write_text("<svg/>")  # hidden files are not the user's documents

    result = ingest(tmp_path / "home", "run", str(folder), env=ingest_folder)

    assert result.returncode == 0, result.stderr
    text = " ".join(result.stderr.split())
    assert "3 skipped" in text
    svg = re.search(r"skipped 2 \(not a kind it reads: \.svg\), e\.g\. (\S+), (\S+)", text)
    assert svg and {svg[1], svg[2]} == {"img/chart.svg", "img/logo.svg"}
    assert "skipped 1 (not a kind it reads: .docx), e.g. report.docx" in text

    # `ingest status` tells it too, as of each shard's last scan.
    status = ingest(tmp_path / "home", "status", "--json", env=ingest_folder)
    (row,) = json.loads(status.stdout)
    assert row["skipped"] == 3
    (folder / "report.docx").unlink()
    assert ingest(tmp_path / "home", "run", str(folder), env=ingest_folder).returncode == 0
    (row,) = json.loads(ingest(tmp_path / "home", "status", "--json", env=ingest_folder).stdout)
    assert row["skipped"] == 2
    assert "skipped" in ingest(tmp_path / "home", "status", env=ingest_folder).stdout
