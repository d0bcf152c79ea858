"""Cross-entropy method: batched top-k on every backend."""
import numpy as np
import pytest

from pygenmod import cem


def reference_top_k(x, k):
    # stable sort on -x: larger first, lower index first among ties
    return np.argsort(-x, axis=-1, kind="stable")[..., :k]


@pytest.mark.parametrize("shape,k", [((1, 1), 1), ((3, 17), 5), ((2, 4, 31), 31), ((5, 8), 0), ((0, 6), 2)])
def test_top_k_matches_stable_argsort(backend, dtype, rng, shape, k):
    x = rng.standard_normal(shape).astype(dtype)
    got = backend.numpy(cem.top_k(backend.asarray(x), k))
    np.testing.assert_array_equal(got, reference_top_k(x, k))


def test_top_k_ties_go_to_lower_index(backend):
    x = np.array([[1.0, 3.0, 3.0, 2.0, 3.0]])
    np.testing.assert_array_equal(backend.numpy(cem.top_k(backend.asarray(x), 4)), [[1, 2, 4, 3]])


def test_top_k_bad_input():
    with pytest.raises(ValueError, match="k: must be <= N"):
        cem.top_k(np.zeros((2, 3)), 4)
    with pytest.raises(ValueError, match="NaN"):
        cem.top_k(np.array([[1.0, np.nan]]), 1)
    with pytest.raises(TypeError, match="k"):
        cem.top_k(np.zeros((2, 3)), 1.5)
