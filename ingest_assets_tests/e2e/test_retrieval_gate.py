"""The retrieval gate through a real `ingest dev`: sources declared in sources.yaml with an
evaluation file are picked up by the sources sensor, and the `retrieval_quality` check shows
its figures in the UI's GraphQL, passing for a good answer key and failing the run for a bad
one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingest_assets_tests.e2e.conftest import Stack, running_stack, stack_env, tag

pytestmark = pytest.mark.slow

CHECK_QUERY = """
query Checks($path: [String!]!, $check: String!) {
  assetCheckExecutions(assetKey: {path: $path}, checkName: $check, limit: 50) {
    runId status
    evaluation { success severity metadataEntries { label
      ... on FloatMetadataEntry { floatValue } ... on IntMetadataEntry { intValue } } } } }
"""
NOTES = {
    "pump.md": "# Pump\n\nThe pump_flow_rate setting caps the flow.\n",
    "filter.md": "# Filter\n\nClean the filter_mesh_size every month.\n",
    "valve.md": "# Valve\n\nThe valve_open_delay keeps the pressure even.\n",
}


def answer_key(path: Path, pump_expects: str) -> Path:
    rows = [
        {"query": "pump_flow_rate", "expect": [pump_expects]},
        {"query": "filter_mesh_size", "expect": ["filter.md"]},
        {"query": "valve_open_delay", "expect": ["valve.md"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("gate")
    corpus = root / "notes"
    corpus.mkdir()
    for name, text in NOTES.items():
        (corpus / name).write_text(text)
    env = stack_env(
        root / "home",
        INGEST_EMBEDDING_PROVIDER="hashing",
        INGEST_EMBEDDING_MODEL="hashing-384",
        INGEST_SHARDS="4",
    )
    with running_stack(env, root / "dev.log", corpus) as stack:
        yield stack


def executions(stack: Stack) -> list[dict[str, Any]]:
    found = stack.graphql(CHECK_QUERY, path=["embeddings"], check="retrieval_quality")
    return found["assetCheckExecutions"]


def figures(execution: dict[str, Any]) -> dict[str, float]:
    entries = execution["evaluation"]["metadataEntries"]
    return {e["label"]: e.get("floatValue", e.get("intValue")) for e in entries}


def test_declared_gates_are_judged_by_the_check_and_a_missed_one_fails_the_run(stack: Stack):
    root = Path(stack.env["INGEST_HOME"]).parent
    good = answer_key(root / "good.jsonl", "pump.md")
    bad = answer_key(root / "bad.jsonl", "missing.md")  # a deliberately wrong answer key
    sources = [
        {"name": "good", "path": str(stack.corpus), "eval": {"queries": str(good),
         "min_recall_at_1": 0.9}},
        {"name": "bad", "path": str(stack.corpus), "eval": {"queries": "bad.jsonl",
         "min_recall_at_5": 0.9}},
    ]  # fmt: skip
    (root / "home" / "sources.yaml").write_text(yaml.safe_dump({"sources": sources}))
    # `bad.jsonl` is relative: to the folder of sources.yaml, the home.
    (root / "home" / "bad.jsonl").write_text(bad.read_text())

    stack.wait_for("both sources' runs", lambda: len(stack.runs()) >= 2 or None, timeout=120)
    runs = stack.wait_idle(timeout=300)

    by_source = {tag(r, "ingest/source"): r for r in runs}
    assert by_source["good"]["status"] == "SUCCESS"
    assert by_source["bad"]["status"] == "FAILURE"
    judged = {e["runId"]: e for e in executions(stack)}
    passed = judged[by_source["good"]["runId"]]
    assert passed["evaluation"]["success"] is True
    assert figures(passed)["good_recall_at_1"] == 1.0
    failed = judged[by_source["bad"]["runId"]]
    assert failed["evaluation"]["success"] is False
    assert failed["evaluation"]["severity"] == "ERROR"
    assert figures(failed)["bad_recall_at_5"] == pytest.approx(2 / 3, abs=1e-3)
