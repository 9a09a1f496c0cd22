"""`ingest run` as a client of a Dagster deployment.

The fan-out plan's runs are submitted through the webserver, so the deployment's run queue
and launcher run them beside the sensors' and backfills' runs (`ingest dev` locally; on a
cluster, its launcher). This process follows them in the instance, shows how many are done
and, on Ctrl-C or SIGTERM, asks the deployment to stop them and waits until they have.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator

import dagster as dg

from ingest_assets import fanout
from ingest_assets.database import Database
from ingest_assets.definitions import INGEST_JOB
from ingest_assets.defs.partitions import range_tags
from ingest_assets.pipeline.progress import ProgressListener
from ingest_assets.runs.plan import plan_ranges
from ingest_assets.runs.report import (
    BATCH_TAG,
    RangeResult,
    RunSummary,
    failure_message,
    range_outcome,
    summarize,
)
from ingest_assets.settings import IngestSettings
from ingest_assets.webserver import WebserverError, job_location, launch_runs, terminate_runs

POLL_S = 0.5
STOP_WAIT_S = 60.0  # for the deployment to confirm that the runs it was asked to stop ended
QUEUED_HINT_S = 60.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_DONE = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def submit_source(
    settings: IngestSettings,
    db: Database,
    instance: dg.DagsterInstance,
    url: str,
    source: str,
    progress: ProgressListener,
    ranges: int | None = None,
    warn: Callable[[str], None] = print,
) -> RunSummary:
    """Submit every shard of `source` to the deployment at `url` as the plan's runs, and
    follow them to the end. How many run at once is the deployment's queue's business."""
    started = time.perf_counter()
    planned = plan_ranges(db, source, settings.shards, fanout.RUNS_AT_ONCE, ranges)
    batch = uuid.uuid4().hex[:12]
    tag_sets = [{**range_tags(source, *shards, "cli"), BATCH_TAG: batch} for shards in planned]
    follower = _Follower(instance, url, progress, warn)
    # Caught from before the submission: the deployment may start the first runs while it
    # is still creating the others, and a Ctrl-C then must stop those too.
    with follower.catching_stop_signals():
        run_ids = launch_runs(url, job_location(url, INGEST_JOB), INGEST_JOB, tag_sets)
        if instance.get_run_by_id(run_ids[0]) is None:
            raise WebserverError(
                f"the webserver at {url} keeps its runs in another Dagster instance than this "
                f"command's (DAGSTER_HOME={os.environ.get('DAGSTER_HOME')}); its runs "
                f"{', '.join(run_ids)} were submitted there"
            )
        results = follower.follow(dict(zip(run_ids, planned, strict=True)))
    return summarize(db, source, results, time.perf_counter() - started, follower.interrupted)


class _Follower:
    """Polls the runs' statuses until every one has ended. The first SIGINT or SIGTERM asks
    the deployment to terminate the runs not yet ended (queued ones are canceled at once) and
    waits for them to end; a second one exits at once."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        url: str,
        progress: ProgressListener,
        warn: Callable[[str], None],
    ):
        self._instance = instance
        self._url = url
        self._runs: dict[str, tuple[int, int]] = {}
        self._progress = progress
        self._warn = warn
        self._results: dict[str, RangeResult] = {}
        self.interrupted: int | None = None

    @contextlib.contextmanager
    def catching_stop_signals(self) -> Iterator[None]:
        handlers = {sig: signal.signal(sig, self._on_signal) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def follow(self, runs: dict[str, tuple[int, int]]) -> list[RangeResult]:
        """Follow the submitted runs (run id -> shard range) until each has ended."""
        self._runs = runs
        self._progress.start("runs", len(self._runs))
        submitted = time.monotonic()
        stop_asked: float | None = None
        hinted = False
        while len(self._results) < len(self._runs):
            pending = [r for r in self._runs if r not in self._results]
            if self.interrupted is not None and stop_asked is None:
                stop_asked = time.monotonic()
                terminate_runs(self._url, pending)
            if stop_asked is not None and time.monotonic() - stop_asked > STOP_WAIT_S:
                for run_id in pending:
                    error = "asked to stop; the deployment had not ended it yet"
                    self._results[run_id] = RangeResult(
                        *self._runs[run_id], run_id, False, error=error
                    )
                break
            statuses = self._collect(pending)
            if (
                not hinted
                and time.monotonic() - submitted > QUEUED_HINT_S
                and statuses
                and all(s == dg.DagsterRunStatus.QUEUED for s in statuses)
            ):
                hinted = True
                self._warn(
                    f"the runs are still queued after {QUEUED_HINT_S:.0f}s: is the "
                    f"deployment's daemon running (the webserver is {self._url})?"
                )
            time.sleep(POLL_S)
        if self.interrupted is None and all(r.success for r in self._results.values()):
            self._progress.finish("runs")
        return list(self._results.values())

    def _collect(self, pending: list[str]) -> list[dg.DagsterRunStatus]:
        """Take in the runs that ended; the statuses of those still going."""
        going = []
        for run in self._instance.get_runs(dg.RunsFilter(run_ids=pending)):
            if run.status not in _DONE:
                going.append(run.status)
                continue
            self._results[run.run_id] = self._outcome(run)
            self._progress.advance("runs", 1)
        return going

    def _outcome(self, run: dg.DagsterRun) -> RangeResult:
        events = [
            e.dagster_event
            for e in self._instance.all_logs(run.run_id)
            if e.dagster_event is not None
        ]
        materializations = [e for e in events if e.is_step_materialization]
        failure = None
        if run.status == dg.DagsterRunStatus.CANCELED:
            failure = "canceled"
        elif run.status == dg.DagsterRunStatus.FAILURE:
            failure = failure_message(events)
        return range_outcome(self._runs[run.run_id], run.run_id, materializations, failure)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.interrupted is None:
            self.interrupted = signum  # the loop asks the deployment within POLL_S
            return
        os._exit(128 + signum)
