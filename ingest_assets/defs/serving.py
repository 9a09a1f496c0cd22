"""The model switch as Dagster sees it: the `index_serving` asset (each materialisation is an
activation, with its figures), the `activate_model` and `model_plan` jobs, and the sensor that
activates a finished model on its own when INGEST_MODEL_AUTO_ACTIVATE is set."""

from typing import Any

import dagster as dg
from pydantic import Field

from ingest_assets.defs.resources.embeddings import EmbeddingResource
from ingest_assets.defs.resources.postgres import PostgresResource
from ingest_assets.pipeline.models import (
    ActivationRefused,
    activate_model,
    plan_model,
    waiting_for,
)
from ingest_assets.settings import IngestSettings
from ingest_assets.store.serving import Activation

ACTIVATE_JOB = "activate_model"
PLAN_JOB = "model_plan"
INDEX_SERVING = "index_serving"


class ActivationConfig(dg.Config):
    model: str = Field(default="", description="The model to serve; empty: the one being built.")
    force: bool = Field(
        default=False,
        description="Serve it although chunks lack its vectors or a retrieval gate fails "
        "(recorded with the activation).",
    )


def build_serving(
    settings: IngestSettings,
) -> tuple[dg.AssetsDefinition, list[Any], dg.SensorDefinition]:
    """The index_serving asset, the activate_model and model_plan jobs, and the switch sensor."""
    building, shards = settings.embedding.model, settings.shards

    @dg.asset(
        name=INDEX_SERVING,
        group_name="serving",
        deps=["embeddings"],
        kinds={"postgres"},
        description="Which model answers searches. Materialising it activates a model: only "
        "when every live chunk has its vector and the retrieval gates pass (or forced).",
    )
    def index_serving(
        context: dg.AssetExecutionContext,
        config: ActivationConfig,
        postgres: PostgresResource,
        embedding: EmbeddingResource,
    ) -> dg.MaterializeResult:
        model = config.model or building
        try:
            done = activate_model(postgres.database(), model, embedding, shards, force=config.force)
        except ActivationRefused as err:
            raise dg.Failure(str(err), allow_retries=False) from err
        context.log.info(f"serving {done.model} (was {done.previous}); forced: {done.forced}")
        return dg.MaterializeResult(metadata=activation_metadata(done))

    @dg.op(name="plan_model_change", description="What the model being built still needs.")
    def plan_model_change(
        context: dg.OpExecutionContext, postgres: PostgresResource, embedding: EmbeddingResource
    ) -> None:
        with postgres.database().connect() as conn:
            plan = plan_model(conn, embedding)
        context.log.info(
            f"{plan.model}: {plan.texts} texts, {plan.tokens} tokens to embed"
            + (f", cost {plan.cost}" if plan.cost is not None else "")
        )
        context.log_event(
            dg.AssetObservation(asset_key=INDEX_SERVING, metadata=plan_metadata(plan.as_dict()))
        )

    @dg.job(name=PLAN_JOB, description="Estimates the model change: texts, tokens and cost.")
    def model_plan() -> None:
        plan_model_change()

    activate = dg.define_asset_job(
        ACTIVATE_JOB,
        selection=dg.AssetSelection.assets(index_serving),
        executor_def=dg.in_process_executor,
        description="Switches serving to a model (config: model, force); refused while it is "
        "incomplete or misses a retrieval gate.",
    )

    @dg.sensor(
        name="model_switch_sensor",
        job_name=ACTIVATE_JOB,
        minimum_interval_seconds=settings.sensor_interval_s,
        default_status=(
            dg.DefaultSensorStatus.RUNNING
            if settings.model_auto_activate
            else dg.DefaultSensorStatus.STOPPED
        ),
        description="Activates the model being built once every live chunk has its vector "
        "(the activation run checks the retrieval gates); only with INGEST_MODEL_AUTO_ACTIVATE.",
    )
    def model_switch_sensor(
        context: dg.SensorEvaluationContext, postgres: PostgresResource
    ) -> dg.RunRequest | dg.SkipReason:
        if not settings.model_auto_activate:
            return dg.SkipReason("INGEST_MODEL_AUTO_ACTIVATE is off")
        with postgres.database().connect() as conn:
            waiting, chunks = waiting_for(conn, building)
        if waiting:
            return dg.SkipReason(waiting)
        # Once per model and index size: a refused activation is asked again only after change.
        return dg.RunRequest(
            run_key=f"{building}:{chunks}",
            run_config={"ops": {INDEX_SERVING: {"config": {"model": building}}}},
            tags={"ingest/activation": "automatic"},
        )

    return index_serving, [activate, model_plan], model_switch_sensor


def activation_metadata(done: Activation) -> dict[str, Any]:
    """An activation as the index_serving asset's metadata: who serves now and before, and the
    figures the gates judged, for both models."""
    figures = done.figures
    return {
        "serving_model": done.model,
        "previous_model": done.previous or "none",
        "forced": done.forced,
        "chunks": done.chunks,
        "chunks_without_vector": done.chunks_without_vector,
        "gates": dg.MetadataValue.json(figures.get("gates", {})),
        "gates_of_previous": dg.MetadataValue.json(figures.get("gates_before", {})),
        "refusals_overridden": dg.MetadataValue.json(figures.get("refusals_overridden", [])),
        "activated_at": done.activated_at.isoformat(),
    }


def record_activation(instance: dg.DagsterInstance, done: Activation, by: str) -> None:
    """An activation made outside a run (`ingest model activate`) as a materialisation of
    index_serving, so the UI's history of the asset holds every switch."""
    metadata = {**activation_metadata(done), "activated_by": by}
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=INDEX_SERVING, metadata=metadata)
    )


def plan_metadata(plan: dict[str, Any]) -> dict[str, Any]:
    """A plan as metadata: totals as figures, the per-source rows as a table."""
    rows = [
        "| source | chunks | texts to embed | tokens | reused |",
        "| --- | --- | --- | --- | --- |",
    ]
    rows += [
        f"| {s['source']} | {s['chunks']} | {s['texts']} | {s['tokens']} | {s['reused']} |"
        for s in plan["sources"]
    ]
    metadata: dict[str, Any] = {
        "model_being_built": plan["model"],
        "serving_model": plan["serving"] or "none",
        "texts_to_embed": plan["texts"],
        "tokens_to_embed": plan["tokens"],
        "per_source": dg.MetadataValue.md("\n".join(rows)),
    }
    if plan["cost"] is not None:
        metadata["cost"] = plan["cost"]
        metadata["price_per_million_tokens"] = plan["price_per_million_tokens"]
    return metadata
