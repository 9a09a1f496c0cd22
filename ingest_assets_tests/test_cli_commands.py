"""Registry and model commands, and clear errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ingest_assets.testing.environment import isolated_environment


def ingest(home: Path, *args: str, env: dict[str, str] | None = None):
    environment = isolated_environment(INGEST_HOME=str(home), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "ingest_assets.cli", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_source_add_list_remove(tmp_path):
    home = tmp_path / "home"
    folder = tmp_path / "docs"
    folder.mkdir()

    added = ingest(home, "source", "add", "docs", str(folder))
    assert added.returncode == 0, added.stderr
    listed = json.loads(ingest(home, "source", "list", "--json").stdout)
    assert listed == [
        {"name": "docs", "kind": "folder", "location": str(folder.resolve()), "options": {}}
    ]
    assert (home / "sources.yaml").exists()

    removed = ingest(home, "source", "remove", "docs")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(ingest(home, "source", "list", "--json").stdout) == []


@pytest.mark.parametrize("name", ["a|b", "x,y", "[z]", "", "-lead", "a" * 64, "sp ace"])
def test_names_dagster_cannot_use_as_partition_keys_are_refused(tmp_path, name):
    result = ingest(tmp_path / "home", "source", "add", "--", name, str(tmp_path))
    assert result.returncode != 0
    assert "invalid source name" in result.stderr and "Traceback" not in result.stderr


def test_unknown_source_and_model_give_clear_errors(tmp_path):
    home = tmp_path / "home"
    gone = ingest(home, "source", "remove", "nothing")
    assert gone.returncode != 0 and "no source named 'nothing'" in gone.stderr
    model = ingest(home, "model", "drop", "no-such-model", "--yes")
    assert model.returncode != 0 and "no vectors stored for model" in model.stderr
    assert "Traceback" not in gone.stderr + model.stderr


def test_run_on_a_bad_registry_file_says_which_file(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "sources.yaml").write_text("sources: [unclosed")
    result = ingest(home, "source", "list")
    assert result.returncode != 0
    assert "sources.yaml: not a valid sources file" in result.stderr


def test_source_add_for_every_kind_infers_or_takes_the_kind_and_its_options(tmp_path):
    home = tmp_path / "home"
    urls = tmp_path / "pages.txt"
    urls.write_text("https://example.com/a\n")
    commands = [
        ("site", "https://example.com/sitemap.xml", "-o", "delay_s=0.5", "-o", "recheck_s=60"),
        ("links", str(urls)),
        ("notes", "public.notes", "--kind", "postgres_table", "-o", "dsn_env=NOTES_DSN",
         "-o", "notify_channel=notes_changed"),
    ]  # fmt: skip
    for args in commands:
        added = ingest(home, "source", "add", *args)
        assert added.returncode == 0, added.stderr
    listed = {r["name"]: r for r in json.loads(ingest(home, "source", "list", "--json").stdout)}

    assert listed["site"]["kind"] == "sitemap"
    assert listed["site"]["options"] == {"delay_s": 0.5, "recheck_s": 60}
    assert (listed["links"]["kind"], listed["links"]["location"]) == ("urls", str(urls))
    assert listed["notes"]["options"] == {
        "dsn_env": "NOTES_DSN",
        "notify_channel": "notes_changed",
    }


def test_bad_source_options_and_unknown_run_targets_are_named(tmp_path):
    home = tmp_path / "home"
    typo = ingest(home, "source", "add", "site", "https://example.com/s.xml", "-o", "dealy_s=1")
    assert typo.returncode != 0
    assert "source 'site': invalid options" in typo.stderr and "dealy_s" in typo.stderr
    secret = ingest(home, "source", "add", "t", "x", "--kind", "postgres_table")
    assert secret.returncode != 0 and "dsn_env" in secret.stderr
    unknown = ingest(home, "run", "no-such-source")
    assert unknown.returncode != 0
    assert "neither a folder nor a source" in unknown.stderr
    assert "Traceback" not in typo.stderr + secret.stderr + unknown.stderr
