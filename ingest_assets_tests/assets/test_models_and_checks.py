"""Model switches (stale partitions, a table per model) and the index asset checks."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from ingest_assets.definitions import CHECKS_JOB, build_definitions
from ingest_assets.defs.partitions import partition_key
from ingest_assets.lib.hashed_vectors import hashed_vectors
from ingest_assets.store.checks import chunks_without_vector, vector_dimensions
from ingest_assets.store.search import search
from ingest_assets.store.vectors import list_models, vector_table_name


def make_folder(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    for i in range(8):
        (root / f"note-{i}.md").write_text(f"# Note {i}\n\nGlaciers carve valley number {i}.\n")
    return root


def code_changed(instance, settings, asset: str, key: str) -> bool:
    """Whether the partition's latest materialisation ran another code version of the asset
    than `settings` define: what makes Dagster show it stale ("code version changed")."""
    graph = build_definitions(settings).resolve_asset_graph()
    latest = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=1
    ).records[0]
    ran = latest.asset_materialization.tags["dagster/code_version"]
    return ran != graph.get(dg.AssetKey(asset)).code_version


def check_evaluations(instance, settings, tags: dict[str, str] | None = None) -> dict:
    """Run the index_checks job: {check name: its evaluation}."""
    job = build_definitions(settings).resolve_job_def(CHECKS_JOB)
    result = job.execute_in_process(instance=instance, tags=tags)
    return {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def check_results(instance, settings) -> dict[str, bool]:
    return {name: e.passed for name, e in check_evaluations(instance, settings).items()}


def test_model_change_marks_embeddings_stale_and_fills_a_new_table(
    ingest, settings, db, instance, tmp_path
):
    folder = make_folder(tmp_path)
    ingest(folder)
    key = partition_key("docs", 0)
    assert not code_changed(instance, settings, "embeddings", key)

    new_model = settings.with_embedding(model="hashing-384-v2")
    assert code_changed(instance, new_model, "embeddings", key)
    assert not code_changed(instance, new_model, "chunks", key)
    with db.connect() as conn:
        old_rows = conn.execute(
            f"SELECT count(*) FROM {vector_table_name('hashing-384')}"
        ).fetchone()

    summary = ingest(folder, settings=new_model)

    assert summary.totals["texts_embedded"] == old_rows[0]
    assert not code_changed(instance, new_model, "embeddings", key)
    with db.connect() as conn:
        models = {name: count for name, _, _, count in list_models(conn)}
        hits = search(
            conn,
            vector_table_name("hashing-384-v2"),
            hashed_vectors(["valley number 3"], 384)[0],
            1,
        )
    assert models == {"hashing-384": old_rows[0], "hashing-384-v2": old_rows[0]}
    assert hits[0].doc_id == "note-3.md"


def test_checks_pass_fail_after_a_hand_deleted_vector_and_pass_after_a_rerun(
    ingest, settings, db, instance, tmp_path
):
    folder = make_folder(tmp_path)
    ingest(folder)
    assert check_results(instance, settings) == {
        "every_chunk_has_a_vector": True,
        "vector_dimension_matches_model": True,
        "no_chunks_of_deleted_documents": True,
        "quarantined_documents": True,
        "retrieval_quality": True,  # no source declares an evaluation: nothing to judge
    }
    with db.connect() as conn:
        conn.execute(
            f"DELETE FROM {vector_table_name('hashing-384')} WHERE text_hash = "
            "(SELECT text_hash FROM chunks LIMIT 1)"
        )
        conn.commit()

    assert check_results(instance, settings)["every_chunk_has_a_vector"] is False

    summary = ingest(folder)
    assert summary.totals["texts_embedded"] == 1
    assert check_results(instance, settings)["every_chunk_has_a_vector"] is True


def test_quarantine_check_warns_and_lists_the_reason(ingest, settings, instance, tmp_path):
    folder = make_folder(tmp_path)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 nonsense")
    ingest(folder)

    evaluation = check_evaluations(instance, settings)["quarantined_documents"]
    assert evaluation.passed is False
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "broken.pdf" in evaluation.metadata["documents"].value


def test_vector_check_in_a_partitioned_run_judges_only_that_runs_shards(
    ingest, settings, db, instance, tmp_path
):
    from ingest_assets.defs.assets.checks import run_scope

    assert run_scope({}) is None
    assert run_scope({"dagster/partition": "docs|0003"}) == {"docs": [3]}
    assert run_scope(
        {
            "dagster/asset_partition_range_start": "docs|0001",
            "dagster/asset_partition_range_end": "docs|0003",
        }
    ) == {"docs": [1, 2, 3]}

    folder = make_folder(tmp_path)
    ingest(folder)
    with db.connect() as conn:
        (shard,) = conn.execute(
            f"DELETE FROM {vector_table_name('hashing-384')} v USING chunks c, documents d "
            "WHERE v.text_hash = c.text_hash AND c.document_id = d.id "
            "AND d.doc_id = 'note-0.md' RETURNING d.shard"
        ).fetchone()
        conn.commit()
    assert check_results(instance, settings)["every_chunk_has_a_vector"] is False
    other = next(s for s in range(settings.shards) if s != shard)
    tags = {"dagster/partition": partition_key("docs", other)}
    evaluation = check_evaluations(instance, settings, tags)["every_chunk_has_a_vector"]
    assert evaluation.passed is True
    tags = {"dagster/partition": partition_key("docs", shard)}
    evaluation = check_evaluations(instance, settings, tags)["every_chunk_has_a_vector"]
    assert evaluation.passed is False
    assert evaluation.metadata["documents"].value == ["docs:note-0.md"]


def test_scoped_vector_query_matches_source_and_shard_pairs_not_each_alone(
    ingest, settings, db, tmp_path
):
    folder = make_folder(tmp_path)
    ingest(folder)
    table = vector_table_name("hashing-384")
    with db.connect() as conn:
        (shard,) = conn.execute(
            f"DELETE FROM {table} v USING chunks c, documents d WHERE v.text_hash = c.text_hash "
            "AND c.document_id = d.id AND d.doc_id = 'note-0.md' RETURNING d.shard"
        ).fetchone()
        assert chunks_without_vector(conn, table, {"docs": [shard]}) == (1, ["docs:note-0.md"])
        assert (
            chunks_without_vector(conn, table, {"docs": [shard + 1], "elsewhere": [shard]})[0] == 0
        )
        assert chunks_without_vector(conn, table, None)[0] == 1
        conn.rollback()


def test_vector_dimension_comes_from_the_column_declaration_or_a_scan_when_untyped(db):
    with db.connect() as conn:
        conn.execute("CREATE TABLE typed (text_hash bytea, embedding vector(3))")
        assert vector_dimensions(conn, "typed") == []
        conn.execute("INSERT INTO typed VALUES ('a', '[1,2,3]')")
        assert vector_dimensions(conn, "typed") == [3]
        conn.execute("CREATE TABLE untyped (text_hash bytea, embedding vector)")
        conn.execute("INSERT INTO untyped VALUES ('a', '[1,2]'), ('b', '[1,2,3]')")
        assert vector_dimensions(conn, "untyped") == [2, 3]
        with pytest.raises(psycopg.errors.DataException, match="expected 3 dimensions"):
            conn.execute("INSERT INTO typed VALUES ('b', '[1,2]')")
        conn.rollback()
