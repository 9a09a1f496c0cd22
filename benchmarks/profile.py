"""Where an `ingest run`'s CPU goes: py-spy samples of the whole process tree, by part.

A sampling profiler, not cProfile: cProfile multiplies the cost of pure-Python code several
times over (it put PDF extraction at half the run when it was a fifth) and does not see
worker threads or the forked runs. py-spy samples every process of the tree (the forked
shard-range runs, the PDF reader) 50 times a second from outside; idle threads are not
counted, so the parts add up to CPU seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

RATE_HZ = 50

# A sample belongs to the first part whose pattern matches any of its frames: a stage's own
# frames (listing, reading, extraction, chunking) claim everything below them.
_STAGES = (
    ("imports", r"_find_and_load \("),
    ("extract: PDF (PDFium helper process)", r"\(ingest_assets/lib/pdf\.py"),
    ("scan: list files", r"list_documents \("),
    ("scan: read files", r"FolderSource\.read \("),
    ("extract: HTML, Markdown, text", r"\(ingest_assets/lib/(extract|webpage)\.py"),
    ("chunk", r"\(ingest_assets/lib/chunking\.py"),
    ("Dagster: event and run storage", r"\((sqlalchemy|psycopg2|dagster_postgres)/"),
    ("database: the pipeline's reads and writes", r"\((psycopg|psycopg_pool|pgvector)/"),
    ("embed: HTTP (httpx)", r"\((httpx|httpcore|h11|anyio)/"),
    ("embed: JSON, base64, vector checks", r"\(ingest_assets/defs/resources/"),
)
# Otherwise the innermost frame of a known package decides.
_OWNERS = (
    ("pipeline code, other", r"\(ingest_assets/"),
    ("Dagster: execution, events, checks", r"\(dagster[a-z_]*/"),
    ("numpy", r"\(numpy/"),
)
OTHER = "interpreter, threads, event loop, other"


def available() -> bool:
    return _py_spy() is not None


def command(out: Path, argv: list[str]) -> list[str]:
    """`argv` under py-spy, writing raw stacks to `out`."""
    spy = _py_spy()
    if spy is None:
        raise RuntimeError("py-spy is not installed (it comes with the dev extra)")
    return [spy, "record", "-r", str(RATE_HZ), "--subprocesses", "--nonblocking",
            "-f", "raw", "-o", str(out), "--", *argv]  # fmt: skip


def _py_spy() -> str | None:
    return shutil.which("py-spy") or shutil.which("py-spy", path=os.path.dirname(sys.executable))


def breakdown(raw: Path) -> dict[str, float]:
    """CPU seconds per part, from py-spy's raw output (one `frame;frame;... count` per line)."""
    stages = [(label, re.compile(pattern)) for label, pattern in _STAGES]
    owners = [(label, re.compile(pattern)) for label, pattern in _OWNERS]
    samples: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples[_part(stack.split(";"), stages, owners)] += int(count)
    seconds = {label: round(n / RATE_HZ, 2) for label, n in samples.most_common()}
    seconds["total CPU"] = round(sum(samples.values()) / RATE_HZ, 2)
    return seconds


def _part(
    frames: list[str],
    stages: list[tuple[str, re.Pattern[str]]],
    owners: list[tuple[str, re.Pattern[str]]],
) -> str:
    for label, pattern in stages:
        if any(pattern.search(frame) for frame in frames):
            return label
    for frame in reversed(frames):
        for label, pattern in owners:
            if pattern.search(frame):
                return label
    return OTHER
