"""What the runs of one `ingest run` report: each run's outcome (its stages' metadata summed,
why it failed), and one summary of the source."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import psycopg

from ingest_assets.database import Database
from ingest_assets.store.documents import quarantined_documents

_DATABASE_GRACE_S = 30.0

# Keys of the stages' per-partition metadata that the closing summary adds up.
SUMMED_METADATA = (
    "documents_new",
    "documents_changed",
    "documents_unchanged",
    "documents_deleted",
    "documents_failed",
    "documents_skipped",
    "chunks_written",
    "texts_embedded",
    "texts_reused",
)
BATCH_TAG = "ingest/cli_batch"  # shared by the runs of one `ingest run`


@dataclass
class RunSummary:
    source: str
    run_id: str  # the runs' ids, comma-separated when the source took several runs
    success: bool
    seconds: float
    totals: Counter[str] = field(default_factory=Counter)
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    run_ids: list[str] = field(default_factory=list)
    interrupted: int | None = None  # the signal that stopped the runs
    skipped: dict[str, dict] = field(default_factory=dict)  # entries not read, by reason


@dataclass
class RangeResult:
    """What one run over a shard range reports back."""

    first: int
    last: int
    run_id: str
    success: bool
    totals: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    skipped: dict[str, dict] = field(default_factory=dict)  # as raw_documents' `skipped`


def merge_skipped(into: dict[str, dict], more: dict[str, dict], examples: int = 3) -> None:
    """Add one partition's skipped entries (by reason: count and a few names) to `into`."""
    for kind, entry in more.items():
        merged = into.setdefault(kind, {"count": 0, "examples": []})
        merged["count"] += entry["count"]
        merged["examples"] = (merged["examples"] + entry["examples"])[:examples]


def range_outcome(
    shards: tuple[int, int],
    run_id: str,
    materializations: Iterable[dg.DagsterEvent],
    failure: str | None,
) -> RangeResult:
    """A finished run's report: its stages' metadata summed, and why it failed if it did."""
    outcome = RangeResult(*shards, run_id, failure is None, error=failure)
    for event in materializations:
        metadata = event.step_materialization_data.materialization.metadata
        for key in SUMMED_METADATA:
            if key in metadata:
                outcome.totals[key] += int(metadata[key].value)  # type: ignore[arg-type]
        if "skipped" in metadata:
            merge_skipped(outcome.skipped, metadata["skipped"].value)  # type: ignore[arg-type]
    return outcome


def summarize(
    db: Database,
    source: str,
    results: list[RangeResult],
    seconds: float,
    interrupted: int | None = None,
) -> RunSummary:
    """One summary of a source's runs, with what the database says is quarantined."""
    results.sort(key=lambda r: r.first)
    summary = RunSummary(
        source=source,
        run_id=", ".join(r.run_id for r in results),
        success=interrupted is None and all(r.success for r in results),
        seconds=seconds,
        run_ids=[r.run_id for r in results],
        interrupted=interrupted,
    )
    for result in results:
        summary.totals.update(result.totals)
        merge_skipped(summary.skipped, result.skipped)
    errors = [r for r in results if r.error]
    if len(errors) == 1 and len(results) == 1:
        summary.error = errors[0].error
    elif errors:
        summary.error = "\n".join(
            f"shards {r.first}-{r.last} (run {r.run_id}): {r.error}" for r in errors
        )
    summary.quarantined = _quarantined(db, source, summary)
    return summary


def _quarantined(db: Database, source: str, summary: RunSummary) -> list[tuple[str, str]]:
    """The source's quarantined documents. A database that is restarting (a run may have
    failed because of it) is given a few seconds; then the runs' own outcome is still told."""
    deadline = time.monotonic() + _DATABASE_GRACE_S
    while True:
        try:
            with db.connect() as conn:
                return [(d, r) for d, _, r in quarantined_documents(conn, source)]
        except psycopg.OperationalError as err:
            if time.monotonic() > deadline:
                unknown = f"quarantined documents unknown: database unreachable ({err})"
                summary.error = f"{summary.error}; {unknown}" if summary.error else unknown
                summary.success = False
                return []
            time.sleep(0.5)


def failure_message(events: Iterable[dg.DagsterEvent]) -> str:
    for event in events:
        error = getattr(event.event_specific_data, "error", None)
        if error is not None:
            where = f"step {event.step_key}" if event.step_key else "the run"
            return f"{where} failed: {_root_cause(error)}"
    return "the run failed; see its logs in the Dagster UI"


def _root_cause(error: Any) -> str:
    """The innermost error's message: ours, not Dagster's wrapper around it."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()
