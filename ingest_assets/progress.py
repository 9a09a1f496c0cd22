"""Progress of long stages: logged to Dagster at intervals, and shown live by the CLI."""

from __future__ import annotations

import time
from typing import Protocol

import dagster as dg


class ProgressListener(Protocol):
    def start(self, stage: str, total: int) -> None: ...

    def advance(self, stage: str, amount: int) -> None: ...

    def finish(self, stage: str) -> None: ...


class NoProgress:
    """The default listener: the Dagster log lines are progress enough in the UI."""

    def start(self, stage: str, total: int) -> None:
        pass

    def advance(self, stage: str, amount: int) -> None:
        pass

    def finish(self, stage: str) -> None:
        pass


class StageProgress:
    """Counts one stage's work, forwarding to the listener and logging every few seconds."""

    LOG_INTERVAL_S = 5.0

    def __init__(self, listener: ProgressListener, log: dg.DagsterLogManager, stage: str):
        self._listener = listener
        self._log = log
        self.stage = stage
        self.total = 0
        self.done = 0
        self._started = time.perf_counter()
        self._last_log = self._started

    def start(self, total: int) -> None:
        self.total = total
        self._listener.start(self.stage, total)
        self._log.info(f"{self.stage}: {total} to process")

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        self._listener.advance(self.stage, amount)
        now = time.perf_counter()
        if now - self._last_log >= self.LOG_INTERVAL_S:
            self._last_log = now
            rate = self.done / max(now - self._started, 1e-9)
            self._log.info(f"{self.stage}: {self.done}/{self.total} ({rate:.1f}/s)")

    def finish(self) -> float:
        seconds = time.perf_counter() - self._started
        self._listener.finish(self.stage)
        self._log.info(f"{self.stage}: {self.done} done in {seconds:.1f}s")
        return seconds
