"""Packing of texts into embedding requests by item count and token count."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence


def sized_batches(
    token_lengths: Sequence[int], limits: Callable[[], tuple[int, int]]
) -> Iterator[list[int]]:
    """Split positions 0..n-1, in order, into batches of at most `max_items` items and
    `max_tokens` tokens, the limits asked for again before each batch, so a size chosen while
    the batches are being sent applies to the very next one. An item longer than
    `max_tokens` travels alone rather than being lost."""
    start = 0
    while start < len(token_lengths):
        max_items, max_tokens = limits()
        if max_items < 1 or max_tokens < 1:
            raise ValueError("max_items and max_tokens must be positive")
        end, tokens = start + 1, token_lengths[start]
        while (
            end < len(token_lengths)
            and end - start < max_items
            and tokens + token_lengths[end] <= max_tokens
        ):
            tokens += token_lengths[end]
            end += 1
        yield list(range(start, end))
        start = end


class AdaptiveBatchSize:
    """The batch size (items, and tokens in proportion) chosen by measured throughput: it
    doubles while a window of requests embeds texts no slower (within `gain`) than the best
    window before it, steps back when a larger size was slower, and never goes above a size
    the server refused as too large (HTTP 413). Servers differ: one with a fixed cost per
    request wants large batches, one without does not care, and neither says so. Climbing
    only while the rate grew by `gain` stopped at 64 texts against the benchmark's server,
    where 128 is 6 % faster than 64 alone but less than that in a window shared with other
    runs (half a backfill's texts went 64 to a request, bench-20261202T002527).

    Completions are recorded as they come; the first `settle` after a change still carry the
    old size and are not measured. A size `learned` by an earlier step against the same server
    is started from and kept: every step climbing from the configured size again cost the
    runs of a large ingest a third of their texts at smaller sizes.

    A slower window is confirmed before it is believed: the size steps back and is measured
    again, and only if the smaller size is then faster is it kept. Runs share the server, so a
    window is also slower when another run starts sending: without the check, a run could
    stop at the configured size because another joined mid-climb (in one backfill of eight
    runs, 13 % of the texts went 32 to a request against a server that prefers 256)."""

    RECHECKS = 2  # slower windows re-measured per step; a third is believed

    def __init__(
        self,
        items: int,
        tokens: int,
        *,
        max_factor: int = 8,
        window: int = 16,
        settle: int = 4,
        gain: float = 1.05,
        learned: int | None = None,
    ):
        self._base = (items, tokens)
        self._factor = 1
        self._ceiling = max_factor
        if learned:
            self._factor = min(max(1, learned // items), max_factor)
        self._window = window
        self._settle = settle
        self._gain = gain
        self._best = 0.0
        self._climbing = max_factor > 1 and not learned
        self._slower: float | None = None  # the rate of a slower window being re-checked
        self._rechecks = self.RECHECKS
        self._skip = 0
        self._texts = 0
        self._requests = 0
        self._started: float | None = None

    @property
    def items(self) -> int:
        return self._base[0] * self._factor

    @property
    def settled(self) -> bool:
        """Whether the size was chosen by measurement (or learned), rather than still climbing."""
        return not self._climbing

    @property
    def tokens(self) -> int:
        return self._base[1] * self._factor

    def record(self, texts: int, now: float) -> None:
        """A request of `texts` texts completed at `now` (seconds, monotonic)."""
        if not self._climbing:
            return
        if self._skip:
            self._skip -= 1
            return
        if self._started is None:
            self._started = now  # the window's clock starts at its first completion
            return
        self._texts += texts
        self._requests += 1
        if self._requests < self._window:
            return
        rate = self._texts / max(now - self._started, 1e-9)
        if self._slower is not None:
            self._recheck(rate)
        elif rate < self._best / self._gain and self._factor > 1:
            self._change(self._factor // 2)  # measure the last size again
            if self._rechecks:
                self._rechecks -= 1
                self._slower = rate
            else:
                self._climbing = False
        elif self._factor * 2 <= self._ceiling:
            self._best = max(self._best, rate)
            self._change(self._factor * 2)
        else:
            self._climbing = False

    def _recheck(self, rate: float) -> None:
        """`rate` is the smaller size's again, after the larger one's window was slower."""
        slower, self._slower = self._slower or 0.0, None
        if rate > slower * self._gain:
            self._climbing = False  # the smaller size is faster: keep it
        else:
            self._best = rate  # everything slowed down, not the size: climb on from here
            self._change(self._factor * 2)

    def too_large(self, texts: int) -> None:
        """The server refused a request of `texts` texts: stay below that from now on."""
        fitting = max(1, texts // 2) // max(1, self._base[0])
        self._ceiling = max(1, min(self._ceiling, fitting))
        if self._factor > self._ceiling:
            self._change(self._ceiling)
        self._climbing = False

    def _change(self, factor: int) -> None:
        self._factor = factor
        self._skip = self._settle
        self._texts = self._requests = 0
        self._started = None
