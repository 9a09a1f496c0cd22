import numpy as np

from ingest_assets.lib.hashed_vectors import hashed_vectors


def test_vectors_are_unit_length_and_deterministic():
    a = hashed_vectors(["the moon pulls the tides", ""], 64)
    b = hashed_vectors(["the moon pulls the tides", ""], 64)
    assert a.dtype == np.float32 and a.shape == (2, 64)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-6)


def test_similar_texts_score_higher_than_unrelated_ones():
    query, near, far = hashed_vectors(
        ["moon tides ocean", "the ocean tides follow the moon", "bake sourdough bread"], 384
    )
    assert float(query @ near) > 0.5 > float(query @ far)
