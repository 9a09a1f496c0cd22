import pytest

from ingest_assets.lib.batching import batch_indices


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
    assert batch_indices(lengths, max_items, max_tokens) == expected


def test_every_index_appears_once_in_order():
    lengths = [(i * 37) % 113 + 1 for i in range(1000)]
    batches = batch_indices(lengths, 16, 400)
    assert [i for b in batches for i in b] == list(range(1000))
    for batch in batches:
        assert len(batch) <= 16
        assert len(batch) == 1 or sum(lengths[i] for i in batch) <= 400


@pytest.mark.parametrize(("items", "tokens"), [(0, 10), (10, 0)])
def test_rejects_non_positive_limits(items, tokens):
    with pytest.raises(ValueError):
        batch_indices([1], items, tokens)
