"""Model changes as a gated switch: the serving model is a fact of the index, runs keep it (and
the previous one) current beside the model being built, and activation waits for coverage and
the retrieval gates. On the real PostgreSQL with the hashing embedder: real runs where a run
is the subject, the pipeline's stages alone to set the index up elsewhere. Model A is the
fixture's (384 dimensions); B is hashing with far fewer."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from psycopg import sql

from ingest_assets.definitions import CHECKS_JOB, build_definitions, build_resources
from ingest_assets.defs.partitions import partition_key
from ingest_assets.defs.serving import ACTIVATE_JOB, INDEX_SERVING, PLAN_JOB
from ingest_assets.embedders import open_embedder
from ingest_assets.lib.chunking import Chunker
from ingest_assets.lib.hashed_vectors import hashed_vectors
from ingest_assets.pipeline.chunk import chunk_shards
from ingest_assets.pipeline.embed import EmbedReport, embed_kept_models
from ingest_assets.pipeline.models import ActivationRefused, activate_model, plan_model
from ingest_assets.pipeline.progress import NoProgress, StageProgress
from ingest_assets.pipeline.scan import scan_shards
from ingest_assets.search_api import search
from ingest_assets.settings import IngestSettings
from ingest_assets.sources.registry import SourceRecord
from ingest_assets.store import search as store_search
from ingest_assets.store.serving import activate as store_activate
from ingest_assets.store.serving import activations, drop, kept_current, serving_model
from ingest_assets.store.sources import register_source
from ingest_assets.store.vectors import model_table
from ingest_assets.testing.environment import isolated_environment
from ingest_assets_tests.sensing import evaluate

B = "hashing-b"
B_DIMENSION = 8  # so few that its rankings differ from A's: a search shows which one answered
WORDS = ("glacier", "volcano", "meadow", "canyon", "lagoon", "tundra", "delta", "fjord")


def corpus(tmp_path: Path, name: str = "docs", words: tuple[str, ...] = WORDS) -> Path:
    """One short document per word, each the only one that mentions its word."""
    folder = tmp_path / name
    folder.mkdir()
    for word in words:
        (folder / f"{word}.md").write_text(f"# {word.title()}\n\nField notes on the {word}.\n")
    return folder


def building_b(settings: IngestSettings, dimension: int = B_DIMENSION) -> IngestSettings:
    """INGEST_EMBEDDING_MODEL switched to B (another dimension: its vectors are not A's)."""
    return settings.with_embedding(model=B, dimension=dimension)


def build(settings: IngestSettings, db, source: Path | SourceRecord, name: str = "docs") -> None:
    """A run's three stages for every shard, through the pipeline without Dagster (a run's
    fixed cost is a second or more): for setups whose subject is not the run itself."""
    record = (
        source if isinstance(source, SourceRecord) else SourceRecord(name, "folder", str(source))
    )
    with db.connect() as conn:
        register_source(conn, record)
        conn.commit()
    shards = list(range(settings.shards))

    def stage(label: str) -> StageProgress:
        return StageProgress(NoProgress(), logging.getLogger(__name__), label)

    scan_shards(db, record.name, shards, settings.shards, stage("documents"))
    chunk_shards(db, Chunker(settings.chunk_tokens), record.name, shards, stage("chunking"))

    async def embed() -> list[EmbedReport]:
        async with open_embedder(settings.embedding) as embedder:
            groups = {record.name: shards}
            return await embed_kept_models(db, embedder, settings.embedding, groups, stage)

    assert not [f for report in asyncio.run(embed()) for f in report.failures]


def a_and_b(settings, db, tmp_path, source: Path | SourceRecord | None = None) -> IngestSettings:
    """A built and serving, then B built over every chunk (not activated): B's settings."""
    source = source or corpus(tmp_path)
    build(settings, db, source)
    b = building_b(settings)
    build(b, db, source)
    return b


def table_of(db, model: str) -> str:
    with db.connect() as conn:
        found = model_table(conn, model)
    assert found is not None, f"no vector table for {model}"
    return found[0]


def drop_vectors_of(db, model: str, doc_id: str) -> int:
    """Delete `model`'s vectors of one document's chunks, as a backfill not yet done would
    leave them; the number of live chunks left without a vector."""
    with db.connect() as conn:
        deleted = conn.execute(
            sql.SQL(
                "DELETE FROM {} v USING chunks c, documents d WHERE v.text_hash = c.text_hash "
                "AND c.document_id = d.id AND d.doc_id = %s RETURNING v.text_hash"
            ).format(sql.Identifier(table_of(db, model))),
            (doc_id,),
        ).fetchall()
        conn.commit()
    assert len(deleted) == 1, deleted  # one short document, one chunk
    return len(deleted)


def live_chunks(db) -> int:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE d.deleted_at IS NULL"
        ).fetchone()
    return row[0]


def has_vector(db, model: str, doc_id: str) -> bool:
    with db.connect() as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id "
                "JOIN {} v ON v.text_hash = c.text_hash WHERE d.doc_id = %s"
            ).format(sql.Identifier(table_of(db, model))),
            (doc_id,),
        ).fetchone()
    return row[0] > 0


def serving(db) -> tuple[str | None, str | None]:
    with db.connect() as conn:
        current = serving_model(conn)
    return (current.model, current.previous) if current else (None, None)


def activate(db, settings: IngestSettings, model: str, force: bool = False):
    return activate_model(db, model, settings.embedding, settings.shards, force=force)


def ranked_in(db, model: str, dimension: int, query: str) -> list[tuple[str, float]]:
    """The vector ranking of `query` straight from `model`'s table."""
    vector = hashed_vectors([query], dimension)[0]
    with db.connect() as conn:
        hits = store_search.search(conn, table_of(db, model), vector, 3, mode="vector")
    return [(h.doc_id, round(h.score, 5)) for h in hits]


def ranking(hits) -> list[tuple[str, float]]:
    return [(h.doc_id, round(h.score, 5)) for h in hits]


# --- the serving model and search -----------------------------------------------------------


def test_the_first_model_built_serves_once_its_first_run_succeeds(ingest, settings, db, tmp_path):
    assert serving(db) == (None, None)

    assert ingest(corpus(tmp_path)).success

    assert serving(db) == (settings.embedding.model, None)
    with db.connect() as conn:
        (event,) = activations(conn)
    assert event["model"] == settings.embedding.model and event["forced"] is False


def test_search_answers_from_the_serving_model_not_the_configured_one(
    settings, db, tmp_path, monkeypatch
):
    build(settings, db, corpus(tmp_path))
    # The environment now names B, which has no vectors yet (and another dimension).
    for name, value in {
        "INGEST_HOME": str(settings.home),
        "INGEST_DB_SCHEMA": settings.db_schema,
        "INGEST_EMBEDDING_PROVIDER": "hashing",
        "INGEST_EMBEDDING_MODEL": B,
        "INGEST_EMBEDDING_DIMENSION": str(B_DIMENSION),
        "INGEST_SHARDS": str(settings.shards),
    }.items():
        monkeypatch.setenv(name, value)

    hits = search("canyon", 3, mode="vector")

    assert hits[0].doc_id == "canyon.md"
    assert ranking(hits) == ranked_in(db, settings.embedding.model, 384, "canyon")


def test_search_follows_an_activation_and_model_names_another(settings, db, tmp_path):
    b = a_and_b(settings, db, tmp_path)
    a = settings.embedding.model
    by_a, by_b = ranked_in(db, a, 384, "canyon"), ranked_in(db, B, B_DIMENSION, "canyon")
    assert by_a != by_b  # the two tables answer differently: the answer says which one did
    assert ranking(search("canyon", 3, mode="vector", settings=b)) == by_a  # built, not serving

    activate(db, b, B)

    # A shell whose environment still names A searches B now, unless it asks for A.
    assert ranking(search("canyon", 3, mode="vector", settings=settings)) == by_b
    assert ranking(search("canyon", 3, mode="vector", model=a, settings=settings)) == by_a


# --- runs while B is built -------------------------------------------------------------------


def test_while_b_is_built_a_new_document_is_embedded_for_a_and_b(
    ingest, settings, db, instance, tmp_path
):
    folder = corpus(tmp_path)
    b = a_and_b(settings, db, tmp_path, folder)
    (folder / "moraine.md").write_text("# Moraine\n\nField notes on the moraine.\n")

    summary = ingest(folder, settings=b)

    assert summary.success, summary.error
    a = settings.embedding.model
    assert has_vector(db, a, "moraine.md") and has_vector(db, B, "moraine.md")
    assert serving(db) == (a, None)
    with db.connect() as conn:
        (shard,) = conn.execute(
            "SELECT shard FROM documents WHERE doc_id = 'moraine.md'"
        ).fetchone()
    latest = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("embeddings"), asset_partitions=[partition_key("docs", shard)]
        ),
        limit=1,
    ).records[0]
    metadata = latest.asset_materialization.metadata
    assert metadata["model"].value == B and metadata["texts_embedded"].value == 1
    kept = metadata["models_kept_current"].value
    assert set(kept) == {a}
    assert kept[a]["texts_embedded"] == 1
    assert kept[a]["chunks_with_vector"] == kept[a]["chunks"]


# --- activation, rollback, drop --------------------------------------------------------------


def test_activation_is_refused_while_b_is_incomplete_and_accepted_once_complete(
    settings, db, tmp_path
):
    folder = corpus(tmp_path)
    b = a_and_b(settings, db, tmp_path, folder)
    missing = drop_vectors_of(db, B, "delta.md")

    with pytest.raises(ActivationRefused) as refused:
        activate(db, b, B)

    assert f"{missing} of {live_chunks(db)} live chunks have no vector" in str(refused.value)
    assert serving(db) == (settings.embedding.model, None)
    build(b, db, folder)  # B's backfill finishes

    done = activate(db, b, B)

    assert (done.model, done.forced, done.chunks_without_vector) == (B, False, 0)
    assert serving(db) == (B, settings.embedding.model)


def test_the_switch_itself_checks_coverage_in_its_transaction(settings, db, tmp_path):
    # What the transaction sees decides, not an earlier look (a chunk may arrive in between).
    a_and_b(settings, db, tmp_path)
    missing = drop_vectors_of(db, B, "lagoon.md")

    with db.connect() as conn, pytest.raises(ActivationRefused, match=f"{missing} of"):
        store_activate(conn, B, force=False, figures={})

    assert serving(db) == (settings.embedding.model, None)
    with db.connect() as conn:
        assert len(activations(conn)) == 1  # only the first model's start


def test_force_activates_an_incomplete_model_and_the_event_says_forced(settings, db, tmp_path):
    b = a_and_b(settings, db, tmp_path)
    missing = drop_vectors_of(db, B, "delta.md")

    done = activate(db, b, B, force=True)

    assert done.forced and done.chunks_without_vector == missing
    assert serving(db) == (B, settings.embedding.model)
    with db.connect() as conn:
        event = activations(conn)[0]
    assert event["model"] == B and event["previous"] == settings.embedding.model
    assert event["forced"] is True and event["figures"]["chunks_without_vector"] == missing


def test_activating_the_previous_model_again_is_a_rollback(settings, db, tmp_path):
    b = a_and_b(settings, db, tmp_path)
    a = settings.embedding.model
    activate(db, b, B)
    with db.connect() as conn:
        assert kept_current(conn, B) == [a, B]  # the previous model stays current

    back = activate(db, b, a)

    assert (back.model, back.previous) == (a, B)
    assert serving(db) == (a, B)
    with db.connect() as conn:
        assert [e["model"] for e in activations(conn)] == [a, B, a]


def test_the_serving_model_cannot_be_dropped_and_a_dropped_previous_is_no_longer_kept_current(
    settings, db, tmp_path
):
    b = a_and_b(settings, db, tmp_path)
    a = settings.embedding.model
    activate(db, b, B)

    with db.connect() as conn, pytest.raises(ActivationRefused, match="is the serving model"):
        drop(conn, B)
    with db.connect() as conn:
        assert drop(conn, a) is True
        assert kept_current(conn, B) == [B]
        assert model_table(conn, B) is not None and model_table(conn, a) is None
    assert serving(db) == (B, None)


# --- the retrieval gates ---------------------------------------------------------------------


def gated_source(tmp_path: Path, severity: str) -> SourceRecord:
    """Each word's query expects its own document, in vector mode, recall@1 >= 0.9. A (384
    dimensions) meets it. With one dimension a hashed vector is +1 or -1, so one ranking
    answers every query of a sign and at most two documents are ever first: B's recall@1 is
    at most 2/8."""
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        "".join(json.dumps({"query": w, "expect": [f"{w}.md"]}) + "\n" for w in WORDS)
    )
    gate = {"queries": str(queries), "mode": "vector", "min_recall_at_1": 0.9, "severity": severity}
    return SourceRecord("notes", "folder", str(corpus(tmp_path)), {"eval": gate})


def one_dimensional_b(settings, db, source: SourceRecord) -> IngestSettings:
    build(settings, db, source)
    b = building_b(settings, dimension=1)
    build(b, db, source)
    return b


def test_while_b_is_built_its_gate_misses_warn_and_do_not_fail_the_run(
    ingest, settings, db, instance, tmp_path
):
    source = gated_source(tmp_path, "error")
    assert ingest(source).success  # A meets the gate: an error gate missed fails the run

    summary = ingest(source, settings=building_b(settings, dimension=1))

    assert summary.success, summary.error
    (check,) = [
        e.dagster_event.event_specific_data
        for e in instance.all_logs(
            summary.run_ids[0], of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
        if e.dagster_event.event_specific_data.check_name == "retrieval_quality"
    ]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["serving_model"].value == settings.embedding.model
    assert check.metadata["notes_recall_at_1"].value == 1.0  # the serving model's figures
    missed = check.metadata["model_being_built_missed"].value
    assert list(missed) == ["notes"] and missed["notes"][0].startswith("recall@1 0.")
    assert "| notes | recall_at_1 | 1.000 |" in check.metadata["side_by_side"].value


def test_a_model_missing_an_error_gate_is_refused_naming_the_source_and_threshold(
    settings, db, tmp_path
):
    b = one_dimensional_b(settings, db, gated_source(tmp_path, "error"))

    with pytest.raises(ActivationRefused) as refused:
        activate(db, b, B)

    assert re.search(r"retrieval gate of notes: recall@1 0\.[0-2]\d < 0\.90", str(refused.value))
    assert serving(db) == (settings.embedding.model, None)


def test_a_model_missing_a_warn_gate_is_activated_with_the_miss_recorded(settings, db, tmp_path):
    b = one_dimensional_b(settings, db, gated_source(tmp_path, "warn"))

    done = activate(db, b, B)

    assert serving(db) == (B, settings.embedding.model)
    gate = done.figures["gates"]["notes"]
    assert gate["severity"] == "warn" and gate["missed"] and gate["recall_at_1"] <= 0.25
    assert done.figures["gates_before"]["notes"]["recall_at_1"] == 1.0
    assert done.figures["refusals_overridden"] == []


# --- the plan --------------------------------------------------------------------------------


def test_plan_counts_the_texts_and_tokens_b_still_needs_per_source_and_reuse(
    settings, db, tmp_path
):
    one = corpus(tmp_path, "one", WORDS[:3])
    two = corpus(tmp_path, "two", WORDS[2:4])  # meadow.md is in both: one text, embedded once
    build(settings, db, one, "one")
    build(settings, db, two, "two")
    b = building_b(settings)
    with db.connect() as conn:
        tokens = dict(
            conn.execute(
                "SELECT d.doc_id, c.token_count FROM chunks c JOIN documents d "
                "ON d.id = c.document_id WHERE d.source = 'two'"
            ).fetchall()
        )
        (distinct_tokens,) = conn.execute(
            "SELECT sum(token_count) FROM (SELECT DISTINCT text_hash, token_count FROM chunks) t"
        ).fetchone()

    def plan() -> tuple[dict[str, tuple[int, int, int, int]], int, int]:
        with db.connect() as conn:
            found = plan_model(conn, b.embedding)
        rows = {s.source: (s.chunks, s.texts, s.tokens, s.reused) for s in found.sources}
        return rows, found.texts, found.tokens

    rows, texts, total_tokens = plan()
    assert rows["one"][:2] == (3, 3) and rows["one"][3] == 0
    assert rows["two"] == (2, 2, sum(tokens.values()), 0)
    assert (texts, total_tokens) == (4, distinct_tokens)  # the shared text is counted once

    build(b, db, one, "one")
    rows, texts, total_tokens = plan()
    assert rows["one"] == (3, 0, 0, 3)
    assert rows["two"] == (2, 1, tokens["canyon.md"], 1)  # meadow's vector is reused
    assert (texts, total_tokens) == (1, tokens["canyon.md"])

    build(b, db, two, "two")
    rows, texts, total_tokens = plan()
    assert rows == {"one": (3, 0, 0, 3), "two": (2, 0, 0, 2)}
    assert (texts, total_tokens) == (0, 0)


# --- the Dagster side ------------------------------------------------------------------------


def materializations(
    result: dg.ExecuteInProcessResult, asset: str
) -> list[dg.AssetMaterialization]:
    return list(result.asset_materializations_for_node(asset))


def test_materializing_index_serving_activates_the_model_being_built(
    settings, db, instance, tmp_path
):
    b = a_and_b(settings, db, tmp_path)
    job = build_definitions(b).resolve_job_def(ACTIVATE_JOB)

    result = job.execute_in_process(instance=instance)  # config model empty: the one built

    assert result.success
    (materialization,) = materializations(result, INDEX_SERVING)
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["serving_model"] == B
    assert metadata["previous_model"] == settings.embedding.model
    assert metadata["forced"] is False and metadata["chunks_without_vector"] == 0
    assert serving(db) == (B, settings.embedding.model)


def test_a_refused_activation_fails_the_run_with_the_reason_and_is_not_retried(
    settings, db, instance, tmp_path
):
    b = a_and_b(settings, db, tmp_path)
    missing = drop_vectors_of(db, B, "fjord.md")
    defs = build_definitions(b)
    config = {"ops": {INDEX_SERVING: {"config": {"model": B}}}}
    retried = dg.Definitions(
        assets=[defs.get_assets_def(INDEX_SERVING)],
        jobs=[
            dg.define_asset_job(
                "retried", [INDEX_SERVING], op_retry_policy=dg.RetryPolicy(max_retries=2)
            )
        ],
        executor=dg.in_process_executor,
        resources=build_resources(b),
    ).resolve_job_def("retried")

    result = retried.execute_in_process(instance=instance, run_config=config, raise_on_error=False)

    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert f"{missing} of {live_chunks(db)} live chunks have no vector" in (
        failure.step_failure_data.error.message
    )
    steps = [e.event_type_value for e in result.all_events if e.step_key == INDEX_SERVING]
    assert "STEP_UP_FOR_RETRY" not in steps and steps.count("STEP_START") == 1
    assert serving(db) == (settings.embedding.model, None)

    config["ops"][INDEX_SERVING]["config"]["force"] = True
    forced = defs.resolve_job_def(ACTIVATE_JOB).execute_in_process(
        instance=instance, run_config=config
    )
    (materialization,) = materializations(forced, INDEX_SERVING)
    assert materialization.metadata["forced"].value is True
    assert materialization.metadata["chunks_without_vector"].value == missing


def test_the_model_plan_job_observes_index_serving_with_the_texts_to_embed(
    settings, db, instance, tmp_path
):
    build(settings, db, corpus(tmp_path))
    job = build_definitions(building_b(settings)).resolve_job_def(PLAN_JOB)

    result = job.execute_in_process(instance=instance)

    (observation,) = [
        e.event_specific_data.asset_observation
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    assert observation.asset_key == dg.AssetKey(INDEX_SERVING)
    assert observation.metadata["texts_to_embed"].value == len(WORDS)
    assert observation.metadata["model_being_built"].value == B
    assert observation.metadata["serving_model"].value == settings.embedding.model


def test_the_switch_sensor_requests_b_only_when_auto_activate_is_on_and_b_is_complete(
    settings, db, instance, tmp_path
):
    folder = corpus(tmp_path)
    b = a_and_b(settings, db, tmp_path, folder)
    auto = b.model_copy(update={"model_auto_activate": True})
    drop_vectors_of(db, B, "tundra.md")

    incomplete = evaluate(auto, instance, "model_switch_sensor")
    assert isinstance(incomplete, dg.SkipReason)
    assert f"1 of {live_chunks(db)} chunks without a vector" in incomplete.skip_message
    build(b, db, folder)
    off = evaluate(b, instance, "model_switch_sensor")
    assert isinstance(off, dg.SkipReason) and "INGEST_MODEL_AUTO_ACTIVATE" in off.skip_message

    request = evaluate(auto, instance, "model_switch_sensor")

    assert isinstance(request, dg.RunRequest)
    assert request.run_config == {"ops": {INDEX_SERVING: {"config": {"model": B}}}}
    assert serving(db) == (settings.embedding.model, None)  # the sensor only asks
    job = build_definitions(auto).resolve_job_def(ACTIVATE_JOB)
    assert job.execute_in_process(instance=instance, run_config=request.run_config).success
    assert serving(db) == (B, settings.embedding.model)
    served = evaluate(auto, instance, "model_switch_sensor")
    assert isinstance(served, dg.SkipReason)


# --- the index checks during a build ---------------------------------------------------------


def test_every_chunk_has_a_vector_fails_when_the_serving_model_lacks_one_though_b_is_complete(
    settings, db, instance, tmp_path
):
    b = a_and_b(settings, db, tmp_path)
    a = settings.embedding.model
    drop_vectors_of(db, a, "volcano.md")

    result = build_definitions(b).resolve_job_def(CHECKS_JOB).execute_in_process(instance=instance)

    (check,) = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.check_name == "every_chunk_has_a_vector"
    ]
    assert check.passed is False
    by_model = check.metadata["by_model"].value
    assert set(by_model) == {a, B}
    assert by_model[a]["chunks_without_vector"] == 1 and by_model[a]["documents"]
    assert by_model[B]["chunks_without_vector"] == 0


# --- the CLI ---------------------------------------------------------------------------------


def cli(settings: IngestSettings, instance: dg.DagsterInstance, *args: str):
    """`ingest ARGS` in a child process configured like `building_b(settings)`."""
    environment = isolated_environment(
        INGEST_HOME=str(settings.home),
        INGEST_DATABASE_URL=settings.database_url.get_secret_value(),
        INGEST_DB_SCHEMA=settings.db_schema,
        INGEST_SHARDS=str(settings.shards),
        INGEST_EMBEDDING_PROVIDER="hashing",
        INGEST_EMBEDDING_MODEL=B,
        INGEST_EMBEDDING_DIMENSION=str(B_DIMENSION),
        # `ingest status` reads runs from the test instance (SQLite, no dagster.yaml): the
        # PostgreSQL URL is then unused, and set so no Dagster database is created for it.
        DAGSTER_HOME=instance.root_directory,
        DAGSTER_PG_URL="postgresql+psycopg2://unused",
        COLUMNS="200",
    )
    return subprocess.run(
        [sys.executable, "-m", "ingest_assets.cli", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_activate_of_an_incomplete_model_says_why_in_one_line(settings, db, instance, tmp_path):
    a_and_b(settings, db, tmp_path)
    missing = drop_vectors_of(db, B, "meadow.md")

    result = cli(settings, instance, "model", "activate", B)

    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert f"{missing} of {live_chunks(db)} live chunks have no vector" in line
    assert "Traceback" not in result.stderr
    assert serving(db) == (settings.embedding.model, None)


def test_cli_model_list_json_shows_each_models_role(settings, db, instance, tmp_path):
    b = a_and_b(settings, db, tmp_path)
    activate(db, b, B)

    result = cli(settings, instance, "model", "list", "--json")

    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    roles = {
        m["model"]: {r for r in ("serving", "building", "previous") if m[r]}
        for m in listed["models"]
    }
    assert roles == {settings.embedding.model: {"previous"}, B: {"serving", "building"}}
    assert {(m["model"], m["dimension"], m["missing"]) for m in listed["models"]} == {
        (settings.embedding.model, 384, 0),
        (B, B_DIMENSION, 0),
    }
    assert [e["model"] for e in listed["activations"]] == [B, settings.embedding.model]


def test_cli_status_json_shows_the_serving_and_the_building_model(settings, db, instance, tmp_path):
    a_and_b(settings, db, tmp_path)

    result = cli(settings, instance, "status", "--json")

    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["serving_model"] == settings.embedding.model
    assert row["building_model"] == B
    assert row["vectors_by_model"] == {settings.embedding.model: len(WORDS), B: len(WORDS)}


def test_cli_activation_is_recorded_as_an_index_serving_materialisation(
    settings, db, instance, tmp_path
):
    a_and_b(settings, db, tmp_path)

    result = cli(settings, instance, "model", "activate", B)

    assert result.returncode == 0, result.stderr
    (event,) = instance.fetch_materializations(dg.AssetKey("index_serving"), limit=5).records
    metadata = event.asset_materialization.metadata
    assert metadata["serving_model"].value == B
    assert metadata["previous_model"].value == settings.embedding.model
    assert metadata["activated_by"].value == "ingest model activate"
