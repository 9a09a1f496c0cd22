"""The retrieval gate: a source's evaluation file scored by the `retrieval_quality` check after
its runs, reported as check metadata, failing the run when a threshold is missed."""

from __future__ import annotations

import json

import dagster as dg
import pytest
import yaml

from ingest_assets.lib.gates import MODES
from ingest_assets.sources.registry import SourceRecord, load_registry
from ingest_assets.store import search as store_search


def notes(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "pump.md").write_text("# Pump\n\nThe pump_flow_rate setting caps the flow.\n")
    (folder / "filter.md").write_text("# Filter\n\nClean the filter_mesh_size every month.\n")
    (folder / "valve.md").write_text("# Valve\n\nThe valve_open_delay keeps pressure even.\n")
    return folder


def queries_file(tmp_path, expect_pump: str = "pump.md"):
    path = tmp_path / "queries.jsonl"
    rows = [
        {"query": "pump_flow_rate", "expect": [expect_pump]},
        {"query": "filter_mesh_size", "expect": ["filter.md"]},
        {"query": "valve_open_delay", "expect": ["valve.md"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def gated(folder, queries, **thresholds) -> SourceRecord:
    gate = {"queries": str(queries), "mode": "hybrid", **thresholds}
    return SourceRecord("notes", "folder", str(folder), {"eval": gate})


def check_result(instance, run_id: str) -> dg.AssetCheckEvaluation:
    (event,) = [
        e.dagster_event.event_specific_data
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        if e.dagster_event.event_specific_data.check_name == "retrieval_quality"
    ]
    return event


def test_a_met_gate_passes_with_its_figures_in_the_check(ingest, instance, tmp_path):
    summary = ingest(gated(notes(tmp_path), queries_file(tmp_path), min_recall_at_1=0.9))

    assert summary.success, summary.error
    result = check_result(instance, summary.run_ids[0])
    assert result.passed
    assert result.metadata["judged"].value == 1
    assert result.metadata["notes_recall_at_1"].value == 1.0
    assert result.metadata["notes_mrr_at_10"].value == 1.0


def test_a_missed_threshold_fails_the_run_and_says_which(ingest, instance, tmp_path):
    # A deliberately wrong answer key: the pump query "expects" a document that is not there.
    queries = queries_file(tmp_path, expect_pump="missing.md")
    summary = ingest(gated(notes(tmp_path), queries, min_recall_at_5=0.9))

    assert not summary.success
    assert "recall@5 0.67 < 0.90" in summary.error
    result = check_result(instance, summary.run_ids[0])
    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["notes_recall_at_5"].value == pytest.approx(2 / 3, abs=1e-3)


def test_a_warn_gate_warns_without_failing_the_run(ingest, instance, tmp_path):
    queries = queries_file(tmp_path, expect_pump="missing.md")
    summary = ingest(gated(notes(tmp_path), queries, min_recall_at_5=0.9, severity="warn"))

    assert summary.success, summary.error
    result = check_result(instance, summary.run_ids[0])
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN


def test_sources_yaml_takes_eval_with_a_path_relative_to_the_file(tmp_path):
    folder = notes(tmp_path)
    (tmp_path / "evals").mkdir()
    queries_file(tmp_path / "evals")
    registry = tmp_path / "sources.yaml"
    entry = {"name": "notes", "path": str(folder), "eval": {"queries": "evals/queries.jsonl"}}
    registry.write_text(yaml.safe_dump({"sources": [entry]}))

    (record,) = load_registry(registry)

    assert record.options["eval"]["queries"] == str(tmp_path / "evals" / "queries.jsonl")
    entry["eval"] = {"queries": "q.jsonl", "min_recall_at_3": 0.5}
    registry.write_text(yaml.safe_dump({"sources": [entry]}))
    with pytest.raises(ValueError, match="source 'notes': eval: unknown keys"):
        load_registry(registry)


def test_the_gates_modes_are_the_searchs():
    assert MODES == store_search.MODES
