"""`ingest run` with several runs over disjoint shard ranges at once (forked processes): the
same index as one run, every range a visible Dagster run, progress merged, failures per run."""

from __future__ import annotations

import socket
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from benchmarks.corpus import generate_corpus
from ingest_assets import fanout
from ingest_assets.defs.partitions import SOURCE_TAG, partition_key
from ingest_assets.fanout import first_ingestion, shard_ranges
from ingest_assets.runs.local import run_source
from ingest_assets.runs.plan import register
from ingest_assets.runs.report import BATCH_TAG
from ingest_assets.sources import open_source
from ingest_assets.sources.registry import SourceRecord
from ingest_assets.store.vectors import vector_table_name
from ingest_assets_tests.assets.test_pipeline import counts


class Recorder:
    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self.done: Counter[str] = Counter()
        self.finished: list[str] = []

    def start(self, stage: str, total: int) -> None:
        self.totals[stage] += total

    def advance(self, stage: str, amount: int) -> None:
        self.done[stage] += amount

    def finish(self, stage: str) -> None:
        self.finished.append(stage)


@pytest.mark.parametrize(
    ("shards", "parts", "ramp", "expected"),
    [
        (4, 4, 1, [(0, 0), (1, 1), (2, 2), (3, 3)]),
        (64, 6, 1, [(0, 9), (10, 20), (21, 31), (32, 41), (42, 52), (53, 63)]),
        (3, 8, 3, [(0, 0), (1, 1), (2, 2)]),
        (5, 1, 3, [(0, 4)]),
        (64, 2, 3, [(0, 31), (32, 63)]),
        # Smaller first and last ranges: sizes 3, 6, 9, ..., 9, 6, 4.
        (
            64,
            9,
            3,
            [(0, 2), (3, 8), (9, 17), (18, 26), (27, 35), (36, 44), (45, 53), (54, 59), (60, 63)],
        ),
        (10, 9, 3, [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 6), (7, 7), (8, 8), (9, 9)]),
    ],
)
def test_shard_ranges_are_contiguous_disjoint_and_cover_every_shard(shards, parts, ramp, expected):
    assert shard_ranges(shards, parts, ramp) == expected


def test_only_a_first_ingestion_of_a_large_source_is_split(tmp_path: Path):
    large, most = fanout.LARGE_SOURCE_DOCUMENTS, fanout.most_documents(runs_at_once=3)
    # A range per DOCUMENTS_PER_RANGE documents, at least one per run slot, at most 4 per slot.
    assert len(first_ingestion(64, large, runs_at_once=3)) == 3
    assert len(first_ingestion(64, 4 * fanout.DOCUMENTS_PER_RANGE, runs_at_once=3)) == 4
    assert len(first_ingestion(64, most, runs_at_once=3)) == 4 * 3
    assert len(first_ingestion(64, 100 * most, runs_at_once=3)) == 4 * 3
    sizes = [last - first + 1 for first, last in first_ingestion(64, most, runs_at_once=3)]
    assert sizes[0] < max(sizes) > sizes[-1]  # the ramp: short first and last extractions
    assert len(first_ingestion(4, most, runs_at_once=3)) == 4
    assert first_ingestion(64, large - 1, runs_at_once=3) == [(0, 63)]
    assert first_ingestion(64, large, runs_at_once=1) == [(0, 63)]


def test_the_plan_counts_a_source_from_its_own_listing(tmp_path: Path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    for i in range(fanout.LARGE_SOURCE_DOCUMENTS - 1):
        (folder / "sub" / f"{i}.md").touch()
    (folder / "ignored.docx").touch()
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "x.md").touch()
    source = open_source(SourceRecord("docs", "folder", str(folder)))
    limit = fanout.LARGE_SOURCE_DOCUMENTS
    assert fanout.count_documents(source, limit) == limit - 1
    (folder / "one-more.txt").touch()
    assert fanout.count_documents(source, limit) == limit
    (folder / "and-another.txt").touch()
    assert fanout.count_documents(source, limit) == limit  # stops there


@pytest.mark.parametrize(
    ("changed", "ranges"),
    [
        ([], []),
        ([3], [(3, 3)]),
        ([1, 2, 3, 7, 9, 10], [(1, 3), (7, 7), (9, 10)]),
        (list(range(20)), [(0, 7), (8, 15), (16, 19)]),
        ([5, *range(6, 30)], [(5, 12), (13, 20), (21, 28), (29, 29)]),
    ],
)
def test_changed_shards_become_contiguous_ranges_no_longer_than_a_run(changed, ranges):
    assert fanout.SHARDS_PER_RUN == 8
    assert fanout.changed(changed) == ranges


def index_counts(db) -> dict[str, int]:
    """The pipeline tests' counts, plus the duplicates and gaps a bad split would leave."""
    table = vector_table_name("hashing-384")
    with db.connect() as conn:
        doc_ids, positions, without_vector = conn.execute(
            "SELECT (SELECT count(DISTINCT doc_id) FROM documents),"
            " (SELECT count(DISTINCT (document_id, ordinal)) FROM chunks),"
            " (SELECT count(*) FROM chunks c WHERE NOT EXISTS"
            f"  (SELECT 1 FROM {table} v WHERE v.text_hash = c.text_hash))"
        ).fetchone()
    return {
        **counts(db),
        "doc_ids": doc_ids,
        "chunk_positions": positions,
        "chunks_without_vector": without_vector,
    }


def test_parallel_ranges_index_every_chunk_once(settings, db, instance, tmp_path: Path):
    corpus = tmp_path / "corpus"
    generate_corpus(corpus, documents=80, seed=3)
    register(settings, db, instance, SourceRecord("docs", "folder", str(corpus)))
    progress = Recorder()

    summary = run_source(settings, db, instance, "docs", progress, parallel=3, ranges=4)

    assert summary.success, summary.error
    c = index_counts(db)
    assert c["live"] == c["doc_ids"] == summary.totals["documents_new"] == 80
    assert c["chunks"] == c["chunk_positions"] == summary.totals["chunks_written"] > 80
    assert c["vectors"] == c["distinct_texts"] == summary.totals["texts_embedded"]
    assert c["chunks_without_vector"] == 0
    # One Dagster run per range, with the range and source tags, all of one batch.
    assert len(summary.run_ids) == 4
    runs = [instance.get_run_by_id(run_id) for run_id in summary.run_ids]
    assert all(run is not None and run.is_success for run in runs)
    ranges = sorted(
        (
            run.tags["dagster/asset_partition_range_start"],
            run.tags["dagster/asset_partition_range_end"],
        )
        for run in runs
        if run is not None
    )
    assert ranges == [(partition_key("docs", s), partition_key("docs", s)) for s in range(4)]
    assert {run.tags[SOURCE_TAG] for run in runs if run} == {"docs"}
    assert len({run.tags[BATCH_TAG] for run in runs if run}) == 1
    # Every shard's partition is materialised by exactly one of them.
    for asset in ("raw_documents", "chunks", "embeddings"):
        materialized = instance.get_materialized_partitions(dg.AssetKey(asset))
        assert materialized == {partition_key("docs", s) for s in range(4)}
    # The merged progress adds up the runs' stages, and finishes each stage once.
    assert progress.totals["documents"] == progress.done["documents"] == 80
    assert progress.done["embedding"] == progress.totals["embedding"] == c["vectors"]
    assert sorted(progress.finished) == ["chunking", "documents", "embedding"]

    again = run_source(settings, db, instance, "docs", parallel=2, ranges=4)
    assert again.success, again.error
    assert again.totals["documents_unchanged"] == 80
    assert again.totals["chunks_written"] == again.totals["texts_embedded"] == 0
    assert index_counts(db) == c


def test_a_failing_range_run_is_reported_per_run(settings, db, instance, tmp_path: Path):
    corpus = tmp_path / "corpus"
    generate_corpus(corpus, documents=12, seed=4)
    register(settings, db, instance, SourceRecord("docs", "folder", str(corpus)))
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    down = settings.with_embedding(
        provider="openai", url=url, model="down", max_attempts=1
    ).model_copy(update={"stage_retries": 0})

    summary = run_source(down, db, instance, "docs", parallel=2, ranges=2)

    assert not summary.success
    assert len(summary.run_ids) == 2
    for run_id in summary.run_ids:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.is_failure
    assert summary.error is not None
    assert "shards 0-1" in summary.error and "shards 2-3" in summary.error
    assert url in summary.error
    # The CPU stages' work is kept: documents and chunks are there for a re-run.
    assert summary.totals["documents_new"] == 12
