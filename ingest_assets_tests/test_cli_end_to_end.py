"""`ingest` end to end as a user runs it: embedded PostgreSQL, real MiniLM, real Dagster."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ingest_assets.testing.environment import isolated_environment
from ingest_assets_tests.conftest import REPO_ROOT

pytest.importorskip("sentence_transformers", reason="needs the 'local' extra")

EXPECTED_TOP_DOCUMENT = {
    "why does the sea rise and fall twice a day": "science/tides.html",
    "how do green plants turn light into food": "science/photosynthesis.pdf",
    "how can a browser avoid downloading a file again when it has not changed": (
        "technology/http-caching.md"
    ),
    "how often should I feed the culture I use to leaven bread": "home/sourdough-starter.txt",
    "when is a player allowed to move the king two squares at once": ("everyday/chess-castling.md"),
    "why do savings grow faster the longer you leave them alone": (
        "everyday/compound-interest.txt"
    ),
}


class Cli:
    def __init__(self, home: Path, cwd: Path):
        self.cwd = cwd
        self.env = isolated_environment(INGEST_HOME=str(home), HF_HUB_OFFLINE="1")

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "ingest_assets.cli", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"ingest {' '.join(args)}:\n{result.stderr[-3000:]}"
        return result

    def search(self, query: str, k: int = 3) -> list[dict[str, object]]:
        return json.loads(self("search", query, "-k", str(k), "--json").stdout)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e") / "corpus"
    shutil.copytree(REPO_ROOT / "samples" / "corpus", root)
    return root


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Cli:
    cli = Cli(tmp_path_factory.mktemp("home"), corpus.parent)
    first = cli("run", str(corpus), "--name", "samples")
    assert "12 new" in first.stderr
    return cli


@pytest.mark.slow
def test_paraphrased_queries_rank_the_right_document_first(cli: Cli):
    for line in (REPO_ROOT / "samples" / "queries.txt").read_text().splitlines():
        expected = EXPECTED_TOP_DOCUMENT[line]
        hits = cli.search(line)
        assert hits[0]["doc_id"] == expected, (line, [h["doc_id"] for h in hits])
        assert set(hits[0]) >= {"score", "source", "doc_id", "uri", "chunk", "text"}
        assert hits[0]["source"] == "samples"


@pytest.mark.slow
def test_status_reports_everything_embedded(cli: Cli):
    rows = json.loads(cli("status", "--json").stdout)
    assert len(rows) == 1
    row = rows[0]
    assert row["source"] == "samples" and row["documents"] == 12
    assert row["chunks"] > 12 and row["chunks_with_vector"] == row["chunks"]
    assert row["pending_chunking"] == row["pending_embedding"] == row["quarantined"] == 0


@pytest.mark.slow
def test_rerun_is_a_no_op_and_changes_are_picked_up(cli: Cli, corpus: Path):
    again = cli("run", str(corpus), "--name", "samples")
    assert "0 new, 0 changed, 12 unchanged, 0 deleted" in again.stderr
    assert "vectors 0 written" in again.stderr

    (corpus / "home" / "sourdough-starter.txt").unlink()
    (corpus / "home" / "volcanoes.md").write_text(
        "# Volcanoes\n\nMolten rock from the mantle rises through vents and erupts as lava, "
        "ash and gas; shield volcanoes build gentle slopes from runny basalt.\n"
    )
    tides = corpus / "science" / "tides.html"
    tides.write_text(tides.read_text().replace("</main>", "<p>Neap tides are weaker.</p></main>"))

    changed = cli("run", str(corpus), "--name", "samples")

    assert "1 new, 1 changed, 10 unchanged, 1 deleted" in changed.stderr
    bread = cli.search("how often should I feed the culture I use to leaven bread", k=10)
    assert "home/sourdough-starter.txt" not in {h["doc_id"] for h in bread}
    assert cli.search("where does lava come from")[0]["doc_id"] == "home/volcanoes.md"
