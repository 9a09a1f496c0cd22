"""Rendering for the commands: progress as bars or log lines, and the status tables."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ingest_assets.cli.common import console
from ingest_assets.last_runs import LastRun
from ingest_assets.pipeline.progress import ProgressListener
from ingest_assets.store.status import SourceStatus


class RichProgress:
    """Live bars per stage, fed by the assets through the `progress` resource."""

    def __init__(self, progress: Progress):
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def start(self, stage: str, total: int) -> None:
        if stage in self._tasks:  # another shard range's run: more of the same stage
            task = self._tasks[stage]
            more = (self._progress.tasks[task].total or 0) + total
            self._progress.update(task, total=more)
            return
        self._tasks[stage] = self._progress.add_task(stage, total=total)

    def advance(self, stage: str, amount: int) -> None:
        self._progress.advance(self._tasks[stage], amount)

    def finish(self, stage: str) -> None:
        task = self._tasks[stage]
        self._progress.update(task, completed=self._progress.tasks[task].total)


class LineProgress:
    """Progress for logs and CI (no terminal): one line per stage every few seconds."""

    INTERVAL_S = 10.0

    def __init__(self) -> None:
        self._state: dict[str, list[float]] = {}  # stage -> [done, total, started, last print]

    def start(self, stage: str, total: int) -> None:
        if stage in self._state:  # another shard range's run: more of the same stage
            self._state[stage][1] += total
            return
        now = time.monotonic()
        self._state[stage] = [0, total, now, now]
        console.print(f"{stage}: {total} to process")

    def advance(self, stage: str, amount: int) -> None:
        state = self._state[stage]
        state[0] += amount
        now = time.monotonic()
        if now - state[3] >= self.INTERVAL_S:
            state[3] = now
            rate = state[0] / max(now - state[2], 1e-9)
            console.print(f"{stage}: {state[0]:.0f}/{state[1]:.0f} ({rate:.1f}/s)")

    def finish(self, stage: str) -> None:
        done, total, started, _ = self._state[stage]
        console.print(f"{stage}: {done:.0f}/{total:.0f} done in {time.monotonic() - started:.1f}s")


@contextlib.contextmanager
def progress_display() -> Iterator[ProgressListener]:
    """Live bars on a terminal, a line per stage otherwise."""
    if not console.is_terminal:
        yield LineProgress()
        return
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bars:
        yield RichProgress(bars)


def sources_table(rows: list[SourceStatus]) -> Table:
    return _count_table(
        "Index per source (vectors: of the serving model)",
        ("documents", "chunks", "vectors", "quarantined", "deleted", "skipped"),
        [
            (
                r.source,
                (r.documents, r.chunks, r.chunks_with_vector, r.quarantined, r.deleted, r.skipped),
            )
            for r in rows
        ],
    )


def pending_table(rows: list[SourceStatus]) -> Table:
    return _count_table(
        "Pending work (failed reads are read again on the next runs)",
        ("documents to chunk", "chunks to embed", "failed reads"),
        [(r.source, (r.pending_chunking, r.pending_embedding, r.failed_reads)) for r in rows],
    )


def _count_table(
    title: str, headers: tuple[str, ...], rows: list[tuple[str, tuple[int, ...]]]
) -> Table:
    """One row per source and, for several sources, a total row."""
    table = Table(title=title)
    table.add_column("source", overflow="fold")
    for header in headers:
        table.add_column(header, justify="right")
    for i, (name, counts) in enumerate(rows):
        table.add_row(name, *map(str, counts), end_section=i == len(rows) - 1)
    if len(rows) > 1:
        table.add_row(
            "total", *(str(sum(column)) for column in zip(*(c for _, c in rows), strict=True))
        )
    return table


def models_table(
    rows: list[SourceStatus], models: dict[str, tuple[str, int]], active: str, building: str
) -> Table:
    """Sources down, models across: live chunks with a vector in each model's table."""
    names = sorted(models.keys() | {active, building})
    table = _count_table(
        "Chunks with a vector, per model (* serving)",
        ("chunks", *(f"{name} *" if name == active else name for name in names)),
        [(r.source, (r.chunks, *(vectors(r, active, building)[n] for n in names))) for r in rows],
    )
    stored = [str(models[n][1]) if n in models else "no table" for n in names]
    table.add_row("[dim]vectors stored (distinct texts)[/dim]", "", *stored)
    return table


def vectors(row: SourceStatus, active: str, building: str) -> dict[str, int]:
    """Live chunks with a vector per model, the serving one and the one being built included
    even without a table."""
    counts = {building: 0, **row.vectors_by_model, active: row.chunks_with_vector}
    return dict(sorted(counts.items()))


_RUN_STATUS_STYLE = {"SUCCESS": "green", "FAILURE": "red", "CANCELED": "yellow"}


def runs_table(rows: list[SourceStatus], runs: dict[str, LastRun | None]) -> Table:
    table = Table("source", "status", "trigger", "when", "run", title="Last run per source")
    now = time.time()
    for r in rows:
        run = runs.get(r.source)
        if run is None:
            table.add_row(r.source, "[dim]no runs yet[/dim]", "", "", "")
            continue
        style = _RUN_STATUS_STYLE.get(run.status, "cyan")
        table.add_row(
            r.source, f"[{style}]{run.status}[/{style}]", run.trigger, run.when(now), run.run_id[:8]
        )
    return table
