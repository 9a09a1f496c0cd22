"""Evaluate the change sensor once and execute its run requests in this process, with the
tags the daemon would launch them with (used by the concurrency test as a third writer)."""

import sys

import dagster as dg

from ingest_assets.definitions import INGEST_JOB, build_definitions, build_resources
from ingest_assets.local_stack import database_url, open_instance
from ingest_assets.settings import IngestSettings


def main() -> int:
    settings = IngestSettings()
    instance = open_instance(settings, database_url(settings))
    defs = build_definitions(settings)
    sensor = next(s for s in defs.sensors if s.name == "changes_sensor")
    context = dg.build_sensor_context(
        instance=instance,
        definitions=defs,
        resources={"postgres": build_resources(settings)["postgres"]},
    )
    requests = sensor(context).run_requests
    job = defs.resolve_job_def(INGEST_JOB)
    for request in requests:
        result = job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)
        if not result.success:
            return 1
    print(f"sensor runs: {len(requests)}")  # noqa: T201  (read by the test)
    return 0


if __name__ == "__main__":
    sys.exit(main())
