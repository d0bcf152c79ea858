"""GAE, lambda-returns and discounted returns against a plain Python loop (with terminations,
truncations, masks, per-env gamma/lambda), on every backend; layouts and bad input."""

import numpy as np
import pytest
import reference as oracle
from conftest import tol

from pygenmod import returns


def data(rng, Tn, B, dtype):
    r = rng.standard_normal((Tn, B)).astype(dtype)
    v = rng.standard_normal((Tn, B)).astype(dtype)
    term = rng.random((Tn, B)) < 0.1
    trunc = rng.random((Tn, B)) < 0.1
    nv = rng.standard_normal((Tn, B)).astype(dtype)
    nv[:-1][~trunc[:-1]] = v[1:][~trunc[:-1]]  # next value = next step's value unless truncated
    boot = rng.standard_normal(B).astype(dtype)
    return r, v, term, trunc, nv, boot


@pytest.mark.parametrize("Tn,B", [(1, 1), (7, 3), (64, 130), (0, 4)])
def test_gae_matches_loop(backend, dtype, rng, Tn, B):
    r, v, term, trunc, nv, boot = data(rng, Tn, B, dtype)
    gamma, lam = rng.uniform(0.8, 1.0, B), rng.uniform(0.5, 1.0, B)
    mask = rng.random((Tn, B)) > 0.05
    a = backend.asarray
    out = returns.gae(
        a(r), a(v), gamma=gamma, lam=lam, terminated=a(term), truncated=a(trunc), next_values=a(nv), mask=a(mask)
    )
    adv, ret = oracle.gae(r, v, term, trunc, nv, None, mask, gamma, lam)
    assert backend.numpy(out.advantages).dtype == dtype
    np.testing.assert_allclose(backend.numpy(out.advantages), adv, **tol(dtype))
    np.testing.assert_allclose(backend.numpy(out.returns), ret, **tol(dtype))
    # without next_values: values[t+1] and the bootstrap value; float flags
    out = returns.gae(a(r), a(v), gamma=0.97, lam=0.9, terminated=a(term.astype(dtype)), bootstrap_value=a(boot))
    adv, ret = oracle.gae(r, v, term, np.zeros_like(term), None, boot, None, np.full(B, 0.97), np.full(B, 0.9))
    np.testing.assert_allclose(backend.numpy(out.advantages), adv, **tol(dtype))
    lr = returns.lambda_returns(a(r), a(v), gamma=0.97, lam=0.9, terminated=a(term), bootstrap_value=a(boot))
    np.testing.assert_allclose(backend.numpy(lr), ret, **tol(dtype))


def test_truncation_bootstraps_termination_does_not(backend):
    r = np.zeros((3, 2))
    v = np.zeros((3, 2))
    nv = np.full((3, 2), 10.0)
    term = np.array([[False, False], [True, False], [False, False]])
    trunc = np.array([[False, False], [False, True], [False, False]])
    out = returns.gae(
        backend.asarray(r),
        backend.asarray(v),
        gamma=0.5,
        lam=1.0,
        terminated=backend.asarray(term),
        truncated=backend.asarray(trunc),
        next_values=backend.asarray(nv),
    )
    adv = backend.numpy(out.advantages)
    assert adv[1, 0] == 0.0  # terminated: no bootstrap
    assert adv[1, 1] == 5.0  # truncated: bootstrap from next_values
    assert adv[0, 0] == 0.5 * 10.0  # step 0 bootstraps from nv[0]; the terminal step adds 0


def test_discounted_returns(backend, rng):
    Tn, B = 20, 5
    r, _, term, trunc, nv, boot = data(rng, Tn, B, np.float64)
    g = rng.uniform(0.9, 0.99, B)
    out = returns.discounted_returns(
        backend.asarray(r),
        gamma=g,
        terminated=backend.asarray(term),
        truncated=backend.asarray(trunc),
        next_values=backend.asarray(nv),
        bootstrap_value=backend.asarray(boot),
    )
    G = np.zeros((Tn, B))
    for b in range(B):
        nxt = boot[b]
        for t in reversed(range(Tn)):
            if term[t, b]:
                nxt = 0.0
            elif trunc[t, b]:
                nxt = nv[t, b]
            G[t, b] = r[t, b] + g[b] * nxt
            nxt = G[t, b]
    np.testing.assert_allclose(backend.numpy(out), G, rtol=1e-10)


def test_batch_major_layout(rng):
    r, v, term, trunc, nv, boot = data(rng, 11, 4, np.float64)
    tm = returns.gae(r, v, terminated=term, truncated=trunc, next_values=nv)
    bm = returns.gae(r.T, v.T, terminated=term.T, truncated=trunc.T, next_values=nv.T, time_axis=1)
    np.testing.assert_array_equal(bm.advantages, tm.advantages.T)
    np.testing.assert_array_equal(bm.returns, tm.returns.T)


def test_torch_in_torch_out(rng):
    torch = pytest.importorskip("torch")
    r, v, term, *_ = data(rng, 5, 3, np.float32)
    out = returns.gae(torch.from_numpy(r), torch.from_numpy(v), terminated=torch.from_numpy(term))
    assert isinstance(out.advantages, torch.Tensor) and out.advantages.dtype == torch.float32


def test_bad_input():
    r = np.zeros((4, 3))
    with pytest.raises(ValueError, match="values"):
        returns.gae(r, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="next_values"):
        returns.gae(r, r, truncated=np.zeros((4, 3), bool))
    with pytest.raises(ValueError, match="gamma"):
        returns.gae(r, r, gamma=1.5)
    with pytest.raises(ValueError, match="lam"):
        returns.gae(r, r, lam=[0.5, 0.5])
    with pytest.raises(ValueError, match="NaN"):
        returns.gae(np.full((4, 3), np.nan), r)
    with pytest.raises(TypeError, match="rewards"):
        returns.gae(np.zeros((4, 3), np.int32), r)
    with pytest.raises(ValueError, match="terminated"):
        returns.gae(r, r, terminated=np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="empty batch"):
        returns.gae(np.zeros((4, 0)), np.zeros((4, 0)))
    with pytest.raises(ValueError, match="time_axis"):
        returns.gae(r, r, time_axis=2)


def test_out_buffers(rng):
    r, v, term, *_ = data(rng, 9, 5, np.float32)
    out = (np.empty_like(r), np.empty_like(r))
    res = returns.gae(r, v, terminated=term, out=out)
    assert res.advantages is out[0] and res.returns is out[1]
    np.testing.assert_array_equal(res.advantages, returns.gae(r, v, terminated=term).advantages)
    with pytest.raises(TypeError, match="out"):
        returns.gae(r, v, out=(np.empty((9, 5)), np.empty((9, 5))))
    with pytest.raises(ValueError, match="out"):
        returns.gae(r, v, out=(np.empty_like(r),))


def test_advantages_only(backend, rng):
    r, v, term, *_ = data(rng, 11, 7, np.float32)
    a = backend.asarray
    both = returns.gae(a(r), a(v), terminated=a(term))
    only = returns.gae(a(r), a(v), terminated=a(term), compute_returns=False)
    assert only.returns is None
    np.testing.assert_array_equal(backend.numpy(only.advantages), backend.numpy(both.advantages))
    if backend.name == "cpu":
        buf = np.empty_like(r)
        assert returns.gae(r, v, terminated=term, compute_returns=False, out=(buf,)).advantages is buf
        with pytest.raises(ValueError, match="out"):
            returns.gae(r, v, compute_returns=False, out=(buf, np.empty_like(r)))


@pytest.mark.parametrize("where", ["rewards", "values", "next_values", "bootstrap_value", "masked"])
def test_nonfinite_inputs_named(backend, where):
    """NaN/inf are detected by the scan itself (no separate pass) and reported by name."""
    r, v = np.zeros((6, 3)), np.zeros((6, 3))
    nv, boot = np.zeros((6, 3)), np.zeros(3)
    mask = np.ones((6, 3), bool)
    if where == "bootstrap_value":
        boot[1] = np.inf
    else:
        {"rewards": r, "values": v, "next_values": nv, "masked": r}[where][2, 1] = np.nan
    if where == "masked":
        mask[2, 1] = False  # a NaN under the mask is still an error
    a = backend.asarray
    kw = dict(next_values=a(nv)) if where == "next_values" else dict(bootstrap_value=a(boot))
    with pytest.raises(ValueError, match="rewards" if where == "masked" else where):
        returns.gae(a(r), a(v), terminated=a(np.zeros((6, 3), bool)), mask=a(mask), **kw)
