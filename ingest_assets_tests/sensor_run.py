"""A third writer for the concurrency test: register a folder as source `docs` (as `ingest run`
does), evaluate the change sensor once, and execute its run requests in this process with the
tags the daemon would launch them with. Prints how many documents its runs found new."""

import sys
from pathlib import Path

import dagster as dg

from ingest_assets.definitions import INGEST_JOB, build_definitions, build_resources
from ingest_assets.local_stack import database_url, open_database, open_instance
from ingest_assets.runs.plan import register
from ingest_assets.settings import load_settings
from ingest_assets.sources.registry import SourceRecord


def main(folder: str) -> int:
    settings = load_settings()
    instance = open_instance(settings, database_url(settings))
    register(settings, open_database(settings), instance, SourceRecord("docs", "folder", folder))
    defs = build_definitions(settings)
    sensor = next(s for s in defs.sensors if s.name == "changes_sensor")
    context = dg.build_sensor_context(
        instance=instance,
        definitions=defs,
        resources={"postgres": build_resources(settings)["postgres"]},
    )
    requests = sensor(context).run_requests or []
    print(f"requested: {len(requests)}", flush=True)  # noqa: T201  (the test starts the others)
    job = defs.resolve_job_def(INGEST_JOB)
    new = 0
    for request in requests:
        result = job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)
        if not result.success:
            return 1
        for event in result.get_asset_materialization_events():
            metadata = event.step_materialization_data.materialization.metadata
            if "documents_new" in metadata:
                new += int(metadata["documents_new"].value)  # type: ignore[arg-type]
    print(f"new: {new}")  # noqa: T201  (read by the test)
    return 0


if __name__ == "__main__":
    sys.exit(main(str(Path(sys.argv[1]).resolve())))
