"""Progress of long stages: logged at intervals (to Dagster, in a run), and shown live by
the CLI through a listener."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol


class Log(Protocol):
    """Where a stage says how far it got: Dagster's step log, or a `logging.Logger`."""

    def info(self, msg: str) -> None: ...


class ProgressListener(Protocol):
    """A display of stage progress. `start` may come again for a stage already started (the
    next shard range's run reached it): its `total` then adds to the stage's total."""

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

    def __init__(self, listener: ProgressListener, log: Log, stage: str):
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


class ForwardingProgress:
    """A child process's listener: sends ("start" | "advance" | "finish", stage, amount)
    tuples to the parent, advances at most every `interval_s` per stage."""

    def __init__(self, send: Callable[[tuple[str, str, Any]], None], interval_s: float = 0.2):
        self._send = send
        self._interval_s = interval_s
        self._pending: Counter[str] = Counter()
        self._last: dict[str, float] = {}

    def start(self, stage: str, total: int) -> None:
        self._send(("start", stage, total))
        self._last[stage] = time.monotonic()

    def advance(self, stage: str, amount: int) -> None:
        self._pending[stage] += amount
        now = time.monotonic()
        if now - self._last.get(stage, 0.0) >= self._interval_s:
            self._last[stage] = now
            self._send(("advance", stage, self._pending.pop(stage)))

    def finish(self, stage: str) -> None:
        self.flush()
        self._send(("finish", stage, 0))

    def flush(self) -> None:
        for stage, amount in list(self._pending.items()):
            self._send(("advance", stage, amount))
        self._pending.clear()


class MergedProgress:
    """Several runs' progress shown as one bar per stage: each run's `start` adds its total,
    and a stage is finished once, by `close`, when every run has succeeded (a bar of a failed
    or interrupted run stays where it stopped: "done" means done)."""

    def __init__(self, listener: ProgressListener):
        self._listener = listener
        self._started: list[str] = []

    def start(self, stage: str, total: int) -> None:
        if stage not in self._started:
            self._started.append(stage)
        self._listener.start(stage, total)

    def advance(self, stage: str, amount: int) -> None:
        self._listener.advance(stage, amount)

    def finish(self, stage: str) -> None:
        pass  # other runs may still reach this stage

    def close(self, done: bool = True) -> None:
        if done:
            for stage in self._started:
                self._listener.finish(stage)
        self._started.clear()
