from collections import Counter

import pytest

from ingest_assets.lib.hashing import chunk_id, document_id, shard_key, shard_of, text_hash


def test_ids_are_deterministic_and_distinct():
    assert document_id("docs", "a.md") == document_id("docs", "a.md")
    assert document_id("docs", "a.md") != document_id("docs2", "a.md")
    # The separator keeps ("ab", "c") and ("a", "bc") apart.
    assert document_id("ab", "c") != document_id("a", "bc")
    digest = text_hash("hello")
    assert chunk_id("d", 0, digest) != chunk_id("d", 1, digest)
    assert text_hash("hello") != text_hash("hello ")


@pytest.mark.parametrize(
    ("doc_id", "shards", "expected"),
    # Pinned: a change here would move every stored document to another partition.
    [("a.md", 64, 54), ("a.md", 7, 4), ("guides/intro.md", 16, 0), ("x", 1, 0)],
)
def test_shard_is_stable(doc_id, shards, expected):
    assert shard_of(doc_id, shards) == expected


def test_shards_are_roughly_balanced():
    counts = Counter(shard_of(f"doc-{i}.md", 16) for i in range(16_000))
    assert set(counts) == set(range(16))
    assert all(abs(n - 1000) < 125 for n in counts.values())  # about 4 standard deviations


def test_odd_file_names_hash_without_error():
    assert 0 <= shard_of("bad\udcffname\n.md", 8) < 8


@pytest.mark.parametrize(("shard", "key"), [(0, "0000"), (7, "0007"), (4095, "4095")])
def test_shard_keys_sort_in_shard_order(shard, key):
    assert shard_key(shard) == key
