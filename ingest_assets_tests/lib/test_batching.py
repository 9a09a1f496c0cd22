from collections.abc import Callable

import pytest

from ingest_assets.lib.batching import AdaptiveBatchSize, sized_batches


@pytest.mark.parametrize(
    ("lengths", "max_items", "max_tokens", "expected"),
    [
        ([], 4, 100, []),
        ([10, 10, 10], 4, 100, [[0, 1, 2]]),
        ([10, 10, 10, 10, 10], 2, 100, [[0, 1], [2, 3], [4]]),
        ([60, 50, 40], 10, 100, [[0], [1, 2]]),
        ([100, 100], 10, 100, [[0], [1]]),
        ([500, 1, 1], 10, 100, [[0], [1, 2]]),  # too long for any batch: travels alone
        ([1, 500, 1], 10, 100, [[0], [1], [2]]),
        ([30, 30, 30, 30], 3, 90, [[0, 1, 2], [3]]),
    ],
)
def test_batches_respect_item_and_token_limits(lengths, max_items, max_tokens, expected):
    assert list(sized_batches(lengths, lambda: (max_items, max_tokens))) == expected


def test_every_index_appears_once_in_order():
    lengths = [(i * 37) % 113 + 1 for i in range(1000)]
    batches = list(sized_batches(lengths, lambda: (16, 400)))
    assert [i for b in batches for i in b] == list(range(1000))
    for batch in batches:
        assert len(batch) <= 16
        assert len(batch) == 1 or sum(lengths[i] for i in batch) <= 400


def test_a_size_changed_while_batching_applies_to_the_next_batch():
    limits = [(2, 100)]
    batches = []
    for batch in sized_batches([1] * 12, lambda: limits[-1]):
        batches.append(batch)
        if len(batches) == 2:
            limits.append((4, 100))  # the sizer doubled after the second request
    assert [len(b) for b in batches] == [2, 2, 4, 4]


@pytest.mark.parametrize(("items", "tokens"), [(0, 10), (10, 0)])
def test_rejects_non_positive_limits(items, tokens):
    with pytest.raises(ValueError):
        list(sized_batches([1], lambda: (items, tokens)))


def serve(
    sizer: AdaptiveBatchSize, seconds: Callable[[int, int], float], requests: int = 400
) -> list[int]:
    """A server that handles one batch at a time, `seconds(size, sent)` for a request of
    `size` texts after `sent` requests: feed the sizer each completion; return the sizes it
    asked for, in order."""
    now, sizes = 0.0, []
    for sent in range(requests):
        size = sizer.items
        sizes.append(size)
        now += seconds(size, sent)
        sizer.record(size, now)
    return sizes


def linear(base_ms: float, per_item_ms: float) -> Callable[[int, int], float]:
    """base_ms per request + per_item_ms per text."""
    return lambda size, _: (base_ms + per_item_ms * size) / 1000


@pytest.mark.parametrize(
    ("base_ms", "per_item_ms", "chosen"),
    [
        (4.0, 0.484375, 256),  # the benchmark's GPU-like server: large batches win
        (20.0, 0.5, 256),  # a large fixed cost per request: as large as allowed
        (0.0, 0.5, 256),  # no cost per request: no size is slower, so up to the largest
        (0.5, 0.5, 256),  # a small one: each doubling a little faster
    ],
)
def test_the_batch_size_climbs_while_throughput_holds(base_ms, per_item_ms, chosen):
    sizer = AdaptiveBatchSize(32, 8192)
    sizes = serve(sizer, linear(base_ms, per_item_ms))
    assert sizes[0] == 32
    assert sizes[-1] == chosen
    assert sizer.tokens == 8192 * chosen // 32  # the token budget grows in proportion
    assert sizes == sorted(sizes) or sizes[-1] < max(sizes)  # up, then at most one step back


@pytest.mark.parametrize(
    ("rates", "chosen"),  # texts/s a server gives at each size
    [
        ({32: 1000, 64: 1200, 128: 900}, 64),
        ({32: 1000, 64: 800}, 32),  # a server that prefers small batches
    ],
)
def test_a_size_that_was_slower_is_given_up(rates, chosen):
    sizer = AdaptiveBatchSize(32, 8192, window=4, settle=0)
    sizes = serve(sizer, lambda size, _: size / rates[size], requests=60)
    assert sizes[-1] == chosen and sizer.settled
    assert sizes.count(2 * chosen) <= 5 * (AdaptiveBatchSize.RECHECKS + 1)  # then given up


def test_a_run_that_starts_sending_mid_climb_does_not_stop_the_climb():
    """Another run joining the server halves this run's share: the window at 64 texts is
    slower than the one at 32 was, though 64 is the faster size. The step back measures 32
    slower too, so the climb goes on to the size the server prefers."""
    alone = linear(4.0, 0.484375)

    def shared(size: int, sent: int) -> float:
        joined = size > 32 or sent >= 8  # the other run joins at 64
        return alone(size, sent) * (2 if joined else 1)

    sizer = AdaptiveBatchSize(32, 8192, window=4, settle=0)
    assert serve(sizer, shared, requests=200)[-1] == 256


def test_a_refused_size_is_never_tried_again():
    sizer = AdaptiveBatchSize(32, 8192)
    serve(sizer, linear(4.0, 0.484375), requests=60)  # climbing past 64
    assert sizer.items > 64
    sizer.too_large(sizer.items)
    refused = sizer.items * 2
    sizes = serve(sizer, linear(4.0, 0.484375))
    assert max(sizes) < refused
    assert sizer.items >= 32


def test_a_learned_size_is_started_from_and_kept():
    sizer = AdaptiveBatchSize(32, 8192, learned=128)
    sizes = serve(sizer, linear(0.0, 0.5))  # a server where no size is better: nothing to re-learn
    assert set(sizes) == {128}
    assert sizer.tokens == 8192 * 4 and sizer.settled


def test_a_learned_size_beyond_the_ceiling_is_clamped_and_a_refusal_still_lowers_it():
    sizer = AdaptiveBatchSize(32, 8192, learned=10_000)
    assert sizer.items == 256  # 8 times the configured size at most
    sizer.too_large(256)
    assert sizer.items == 128
