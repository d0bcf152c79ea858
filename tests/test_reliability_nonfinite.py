"""Non-finite input is rejected where a result would be meaningless (issue 18, item 10;
the MCTS part is in test_reliability_mcts.py), on every backend."""

import numpy as np
import pytest

from pygenmod import sampling

pytestmark = pytest.mark.reliability


def test_gumbel_softmax_row_all_masked(backend, dtype):
    logits = np.zeros((3, 4), dtype)
    logits[1] = -np.inf
    with pytest.raises(ValueError, match=r"logits: a row has every category masked \(all -inf\)"):
        sampling.gumbel_softmax(backend.asarray(logits), seed=1)
    logits[1, 2] = 0  # one category left: fine, and it is the sample
    out = sampling.gumbel_softmax(backend.asarray(logits), seed=1, hard=True)
    assert backend.numpy(out.index)[1] == 2
    assert np.isfinite(backend.numpy(out.y_soft)).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("fn", ["mahalanobis", "mahalanobis_backward"])
def test_mahalanobis_nonfinite_x(backend, dtype, bad, fn, rng):
    B, D = 3, 2
    x = rng.standard_normal((B, D)).astype(dtype)
    mu = rng.standard_normal((B, D)).astype(dtype)
    L = np.tile(np.eye(D, dtype=dtype), (B, 1, 1))
    x[1, 0] = bad
    args = (backend.asarray(x), backend.asarray(mu))
    call = (
        (lambda: sampling.mahalanobis(*args, backend.asarray(L)))
        if fn == "mahalanobis"
        else (
            lambda: sampling.mahalanobis_backward(
                *args, backend.asarray(L), grad_mahalanobis=backend.asarray(np.ones(B, dtype))
            )
        )
    )
    with pytest.raises(ValueError, match="x: contains NaN or infinity"):
        call()
    with pytest.raises(ValueError, match="x: contains NaN or infinity"):  # samples (S, B, D) too
        sampling.mahalanobis(backend.asarray(np.stack([x, x])), backend.asarray(mu), precision_tril=backend.asarray(L))
