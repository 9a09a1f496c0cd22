"""`ingest run`'s local fast path: the plan's runs forked by this process.

A source's shards are one contiguous key range. With `parallel` > 1 that range is cut into
disjoint sub-ranges, each materialised by its own run of the ingest job in its own process
(forked, so no second import of Dagster), a few at a time: while one run extracts and chunks,
another embeds, so the embedding server does not wait for the CPU-bound stages. Every run is a
normal Dagster run of `ingest_job` with the range tags, visible in the UI; stage progress
comes back to this process over a pipe and feeds one display.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from ingest_assets.database import Database
from ingest_assets.definitions import INGEST_JOB, build_definitions
from ingest_assets.defs.partitions import range_tags
from ingest_assets.local_stack import end_orphaned_run
from ingest_assets.pipeline.progress import (
    ForwardingProgress,
    MergedProgress,
    NoProgress,
    ProgressListener,
)
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

_CPU_STAGES = ("documents", "chunking")  # a run in one of these keeps a core busy
_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_source(
    settings: IngestSettings,
    db: Database,
    instance: dg.DagsterInstance,
    source: str,
    progress: ProgressListener | None = None,
    log_level: str = "WARNING",
    parallel: int = 1,
    ranges: int | None = None,
) -> RunSummary:
    """Materialise every shard of `source`: in one ranged run of the ingest job, or with
    `parallel` > 1 in `ranges` runs over disjoint shard ranges, at most `parallel` at once
    (forked processes; Linux and macOS)."""
    started = time.perf_counter()
    progress = progress or NoProgress()
    batch = uuid.uuid4().hex[:12]
    planned = (
        [(0, settings.shards - 1)]
        if parallel <= 1
        else plan_ranges(db, source, settings.shards, parallel, ranges)
    )
    interrupted = None
    if "fork" not in multiprocessing.get_all_start_methods():
        # Windows: one run in this process (the runs are forked children elsewhere).
        whole = (0, settings.shards - 1)
        results = [execute_range(settings, instance, source, whole, progress, log_level, batch)]
    else:
        # Always in children, one run too: an interrupt stops them at once (see _stop).
        scheduler = _RangeScheduler(
            settings, instance, source, planned, progress, log_level, batch, max(1, parallel)
        )
        results = scheduler.run()
        interrupted = scheduler.interrupted
    return summarize(db, source, results, time.perf_counter() - started, interrupted)


def execute_range(
    settings: IngestSettings,
    instance: dg.DagsterInstance,
    source: str,
    shards: tuple[int, int],
    progress: ProgressListener,
    log_level: str,
    batch: str,
    run_id: str | None = None,
) -> RangeResult:
    """One run of the ingest job over the source's shards first..last, in this process."""
    defs = build_definitions(settings, progress=progress)
    first, last = shards
    result = defs.resolve_job_def(INGEST_JOB).execute_in_process(
        instance=instance,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        tags={**range_tags(source, first, last, "cli"), BATCH_TAG: batch},
        raise_on_error=False,
        run_id=run_id,
    )
    failure = None if result.success else failure_message(result.all_events)
    return range_outcome(
        (first, last), result.run_id, result.get_asset_materialization_events(), failure
    )


@dataclass
class _Child:
    shards: tuple[int, int]
    run_id: str
    process: Any
    reader: multiprocessing.connection.Connection
    stage: str = ""
    result: RangeResult | None = None
    open: bool = True
    done: Counter[str] = field(default_factory=Counter)  # per stage, in this run's attempt


class _RangeScheduler:
    """Runs the ranges in forked children, at most `parallel` at once and at most
    `parallel - 1` in a CPU-bound stage (listing, extraction, chunking), so that a new run
    starts its extraction when an earlier one moves on to embedding.

    Interrupts: the children ignore SIGINT (a Ctrl-C reaches the whole process group), and
    this process decides. The first SIGINT or SIGTERM kills every child (a run may be deep
    in a C call that would not see a gentler signal for minutes; everything committed is
    kept and nothing half-done is marked done, as after a kill -9, and PostgreSQL releases a
    dead connection's locks), marks their runs canceled and returns; a second one exits at
    once."""

    def __init__(
        self,
        settings: IngestSettings,
        instance: dg.DagsterInstance,
        source: str,
        ranges: list[tuple[int, int]],
        progress: ProgressListener,
        log_level: str,
        batch: str,
        parallel: int,
    ):
        self._settings = settings
        self._ref = instance.get_ref()
        self._instance = instance
        self._source = source
        self._waiting = list(ranges)
        self._progress = MergedProgress(progress)
        self._log_level = log_level
        self._batch = batch
        self._parallel = parallel
        self._cpu_slots = max(1, parallel - 1)
        self._running: list[_Child] = []
        self._results: list[RangeResult] = []
        self.interrupted: int | None = None

    def run(self) -> list[RangeResult]:
        context = multiprocessing.get_context("fork")
        handlers = {sig: signal.signal(sig, self._on_signal) for sig in _STOP_SIGNALS}
        try:
            while (self._waiting or self._running) and self.interrupted is None:
                while self._waiting and self._may_start():
                    self._start(context, self._waiting.pop(0))
                self._wait()
        finally:
            self._stop()
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            succeeded = self.interrupted is None and all(r.success for r in self._results)
            self._progress.close(done=succeeded)
        return self._results

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.interrupted is None:
            self.interrupted = signum  # the loop sees it within a second
            return
        self._kill_children()  # a second interrupt: no waiting at all
        os._exit(128 + signum)

    def _kill_children(self) -> None:
        for child in self._running:
            with contextlib.suppress(OSError):
                child.process.kill()

    def _stop(self) -> None:
        """Kill the runs still going (interrupted, or this process failed) and mark them
        canceled in Dagster, so the UI does not show them running forever."""
        self._kill_children()
        for child in self._running:
            child.process.join()
            self._end_run(child.run_id, canceled=True)
            error = "stopped by an interrupt" if self.interrupted else "stopped"
            stopped = RangeResult(*child.shards, child.run_id, False, error=error)
            self._results.append(child.result or stopped)
        self._running.clear()

    def _end_run(self, run_id: str, *, canceled: bool) -> None:
        run = self._instance.get_run_by_id(run_id)
        if run is not None:
            with contextlib.suppress(Exception):
                end_orphaned_run(self._instance, run, "`ingest run` was stopped", canceled)

    def _may_start(self) -> bool:
        in_cpu = sum(1 for c in self._running if c.stage in ("", *_CPU_STAGES))
        return len(self._running) < self._parallel and in_cpu < self._cpu_slots

    def _start(self, context: Any, shards: tuple[int, int]) -> None:
        reader, writer = context.Pipe(duplex=False)
        run_id = str(uuid.uuid4())  # known before the run starts: see _lost
        process = context.Process(
            target=_child_main,
            args=(
                writer,
                os.getpid(),
                self._settings,
                self._ref,
                self._source,
                shards,
                self._log_level,
                self._batch,
                run_id,
            ),
            daemon=True,
        )
        process.start()
        writer.close()
        self._running.append(_Child(shards, run_id, process, reader))

    def _wait(self) -> None:
        readers = [c.reader for c in self._running if c.open]
        sentinels = [c.process.sentinel for c in self._running if not c.open]
        multiprocessing.connection.wait(readers + sentinels, timeout=1.0)
        for child in list(self._running):
            while child.open and child.reader.poll():
                try:
                    self._handle(child, child.reader.recv())
                except EOFError:
                    child.open = False
            if not child.open and not child.process.is_alive():
                child.process.join()
                self._running.remove(child)
                self._results.append(child.result or self._lost(child))

    def _handle(self, child: _Child, message: tuple[str, Any, Any]) -> None:
        kind, stage, value = message
        if kind == "start":
            child.stage = stage
            if stage in child.done:  # a stage retry: the same work again, not more of it
                self._progress.advance(stage, -child.done.pop(stage))
            else:
                self._progress.start(stage, value)
            child.done[stage] = 0
        elif kind == "advance":
            child.done[stage] += value
            self._progress.advance(stage, value)
        elif kind == "finish":
            self._progress.finish(stage)
        elif kind == "result":
            child.result = value

    def _lost(self, child: _Child) -> RangeResult:
        """A child that died without reporting (killed, out of memory): say so, and mark its
        run failed in Dagster so the UI does not show it running forever."""
        code = child.process.exitcode
        error = f"the run's process ended without a result (exit code {code})"
        self._end_run(child.run_id, canceled=False)
        return RangeResult(*child.shards, child.run_id, False, error=error)


def _child_main(
    writer: multiprocessing.connection.Connection,
    parent: int,
    settings: IngestSettings,
    ref: Any,
    source: str,
    shards: tuple[int, int],
    log_level: str,
    batch: str,
    run_id: str,
) -> None:
    """A forked child: one run over `shards` against its own instance and connections (the
    parent's are never touched here); dies with the parent."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides (see _RangeScheduler)
    _fresh_stdio()
    progress = ForwardingProgress(writer.send)
    try:
        instance = dg.DagsterInstance.from_ref(ref)
        instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=4)
        result = execute_range(
            settings, instance, source, shards, progress, log_level, batch, run_id
        )
    except BaseException as err:  # report, never a traceback on the shared terminal
        result = RangeResult(*shards, run_id, False, error=f"{type(err).__name__}: {err}")
    progress.flush()
    writer.send(("result", "", result))
    writer.close()


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this process when the parent dies (a SIGKILLed `ingest run`)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _fresh_stdio() -> None:
    """New stdout/stderr objects over the same descriptors: a thread of the parent (the live
    progress display) may have held the old ones' locks at the moment of the fork."""
    sys.stdout = open(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    sys.stderr = open(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
