"""lower_bounds_ (scikit-learn >= 1.6) and verbose progress messages of the GMM estimators, and
the per-iteration driving of pygenmod.gmm.fit behind them (lower_bounds=True / callback)."""

import re
import warnings

import numpy as np
import pytest

from pygenmod import gmm
from pygenmod.gmm import BatchGaussianMixture, GaussianMixture

TYPES = gmm.COVARIANCE_TYPES


def blobs(rng, N=200, D=3, K=3):
    c = rng.normal(scale=4, size=(K, D))
    return c[rng.integers(0, K, N)] + rng.normal(size=(N, D))


def sk_init(X, ct, K=3, seed=0):
    """Initial parameters from scikit-learn (one iteration), to start both from the same place."""
    mixture = pytest.importorskip("sklearn.mixture")
    ref0 = mixture.GaussianMixture(K, covariance_type=ct, max_iter=1, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref0.fit(X)
    return dict(weights_init=ref0.weights_, means_init=ref0.means_, precisions_init=ref0.precisions_)


def quiet_fit(est, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, **kw)


# ----------------------------------------------------------------------------- fit() engine
@pytest.mark.parametrize("ct", TYPES)
@pytest.mark.parametrize("n_init,tol", [(1, 1e-3), (3, 1e-3), (2, 0.0)])
def test_stepwise_equals_compiled_loop(backend, ct, n_init, tol, rng):
    """lower_bounds=True drives the same kernel one iteration at a time: identical results."""
    B, N = 5, 90
    X = rng.normal(size=(B, N, 2))
    X[:, : N // 2] += 3
    W = rng.integers(0, 3, size=(B, N)).astype(float)
    W[3] = 0  # a set without data
    kw = dict(covariance_type=ct, n_init=n_init, tol=tol, max_iter=40, seed=1, warn=False)
    a = gmm.fit(backend.asarray(X), 3, backend.asarray(W), **kw)
    b = gmm.fit(backend.asarray(X), 3, backend.asarray(W), lower_bounds=True, **kw)
    assert a.lower_bounds is None
    for x, y in zip(a.params[:4], b.params[:4]):
        np.testing.assert_array_equal(backend.numpy(x), backend.numpy(y))
    for name in ("lower_bound", "n_iter", "converged", "flags"):
        np.testing.assert_array_equal(backend.numpy(getattr(a, name)), backend.numpy(getattr(b, name)), err_msg=name)
    H, n_iter, lb = backend.numpy(b.lower_bounds), backend.numpy(b.n_iter), backend.numpy(b.lower_bound)
    assert H.shape == (B, n_iter.max())
    for s in range(B):
        assert np.isfinite(H[s, : n_iter[s]]).all() and np.isnan(H[s, n_iter[s] :]).all()
        if n_iter[s]:
            assert H[s, n_iter[s] - 1] == lb[s]
    assert n_iter[3] == 0 and lb[3] == -np.inf  # the empty set: no iteration, as documented


def test_single_set_history_and_max_iter_zero(rng):
    X = blobs(rng)
    r = gmm.fit(X, 3, max_iter=25, tol=1e-4, seed=0, lower_bounds=True, warn=False)
    assert r.lower_bounds.shape == (r.n_iter,) and r.lower_bounds[-1] == r.lower_bound
    # EM never decreases the bound (up to rounding)
    assert (np.diff(r.lower_bounds) > -1e-9).all()
    r0 = gmm.fit(X, 3, max_iter=0, seed=0, lower_bounds=True, warn=False)
    assert r0.lower_bounds.shape == (0,) and r0.n_iter == 0 and r0.lower_bound == -np.inf


def test_callback_events(rng):
    B = 4
    X = np.stack([blobs(rng, N=100, D=2) for _ in range(B)])
    events = []
    r = gmm.fit(X, 3, n_init=2, max_iter=30, tol=1e-3, seed=0, warn=False, callback=events.append)
    assert all(isinstance(e, gmm.FitProgress) for e in events)
    starts = [e for e in events if e.iteration == 0]
    assert [e.init for e in starts] == [0, 1]
    assert all(np.array_equal(e.sets, np.arange(B)) and np.all(e.lower_bound == -np.inf) for e in starts)
    for init in (0, 1):
        ev = [e for e in events if e.init == init and e.iteration > 0]
        assert [e.iteration for e in ev] == list(range(1, len(ev) + 1))
        finished = np.concatenate([e.sets[e.finished] for e in ev])
        assert np.array_equal(np.sort(finished), np.arange(B))  # every set finishes exactly once
        for e in ev:
            np.testing.assert_array_equal(e.converged, np.abs(e.change) < 1e-3)
            assert np.all(e.finished[e.converged])
    # the kept init's history equals the bounds the callback saw for that set
    best_last = r.lower_bound
    for s in range(B):
        seen = [
            e.lower_bound[list(e.sets).index(s)]
            for e in events
            if e.iteration > 0 and s in e.sets and e.finished[list(e.sets).index(s)]
        ]
        assert best_last[s] in seen
    with pytest.raises(TypeError, match="callback"):
        gmm.fit(X, 3, callback=3)


# ----------------------------------------------------------------------------- lower_bounds_
@pytest.mark.parametrize("ct", TYPES)
def test_lower_bounds_match_sklearn(ct, rng):
    mixture = pytest.importorskip("sklearn.mixture")
    X = blobs(rng)
    kw = dict(covariance_type=ct, max_iter=200, tol=1e-4, **sk_init(X, ct))
    sk = quiet_fit(mixture.GaussianMixture(3, **kw), X)
    ours = quiet_fit(GaussianMixture(3, **kw), X)
    if not hasattr(sk, "lower_bounds_"):
        pytest.skip("scikit-learn < 1.6 has no lower_bounds_")
    assert isinstance(ours.lower_bounds_, list) and len(ours.lower_bounds_) == ours.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(ours.lower_bounds_, sk.lower_bounds_, rtol=0, atol=1e-6)
    assert ours.lower_bounds_[-1] == ours.lower_bound_


def test_lower_bounds_warm_start_and_zero_iterations_match_sklearn(rng):
    mixture = pytest.importorskip("sklearn.mixture")
    X = blobs(rng)
    kw = dict(max_iter=4, tol=0, warm_start=True, **sk_init(X, "full"))
    sk, ours = mixture.GaussianMixture(3, **kw), GaussianMixture(3, **kw)
    for _ in range(2):  # the second fit continues from the first: only its own iterations
        quiet_fit(sk, X)
        quiet_fit(ours, X)
        if not hasattr(sk, "lower_bounds_"):
            pytest.skip("scikit-learn < 1.6 has no lower_bounds_")
        np.testing.assert_allclose(ours.lower_bounds_, sk.lower_bounds_, rtol=0, atol=1e-6)
    # (max_iter=0 with precisions_init fails inside scikit-learn 1.9 (no covariances_): own inits)
    sk0 = quiet_fit(mixture.GaussianMixture(3, max_iter=0, random_state=0), X)
    ours0 = quiet_fit(GaussianMixture(3, max_iter=0, random_state=0), X)
    assert ours0.lower_bounds_ == list(sk0.lower_bounds_) == [] and ours0.n_iter_ == sk0.n_iter_ == 0
    assert ours0.lower_bound_ == sk0.lower_bound_ == -np.inf


def test_lower_bounds_best_of_n_init(rng):
    X = blobs(rng, N=300, K=4)
    g = quiet_fit(GaussianMixture(4, n_init=4, init_params="random", random_state=3, tol=1e-5), X)
    events = []
    gmm.fit(X, 4, n_init=4, init="random", seed=3, tol=1e-5, warn=False, callback=events.append)
    runs = [[float(e.lower_bound[0]) for e in events if e.init == i and e.iteration > 0] for i in range(4)]
    best = max(range(4), key=lambda i: runs[i][-1])
    assert len({r[-1] for r in runs}) > 1  # the inits differ, so the choice matters
    assert g.lower_bounds_ == runs[best] and g.lower_bound_ == runs[best][-1] and g.n_iter_ == len(runs[best])


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_batch_lower_bounds_per_set(ct, rng):
    B = 3
    X = np.stack([blobs(rng, N=120) for _ in range(B)])
    inits = [sk_init(X[b], ct, seed=b) for b in range(B)]
    stack = {k: np.stack([i[k] for i in inits]) for k in inits[0]}
    bat = BatchGaussianMixture(
        3, covariance_type=ct, tol=1e-4, max_iter=100, record_lower_bounds=True, warn=False, **stack
    ).fit(X)
    assert BatchGaussianMixture(3, covariance_type=ct, warn=False, **stack).fit(X).lower_bounds_ is None
    assert bat.lower_bounds_.shape == (B, bat.n_iter_.max())
    for b in range(B):
        one = quiet_fit(GaussianMixture(3, covariance_type=ct, tol=1e-4, max_iter=100, **inits[b]), X[b])
        n = one.n_iter_
        assert bat.n_iter_[b] == n
        np.testing.assert_allclose(bat.lower_bounds_[b, :n], one.lower_bounds_, rtol=0, atol=1e-12)
        assert np.isnan(bat.lower_bounds_[b, n:]).all()


# ----------------------------------------------------------------------------- verbose
def _normalise(text):
    """Time lapses differ between runs: blank them; return (lines, numbers after 'change'/'bound')."""
    lines = [re.sub(r"time lapse [0-9.]+s", "time lapse Ts", ln) for ln in text.strip().splitlines()]
    nums = [float(m) for ln in lines for m in re.findall(r"(?:change|bound) (-?[0-9]+\.[0-9]+)", ln)]
    lines = [re.sub(r"((?:change|bound)) -?[0-9]+\.[0-9]+", r"\1 X", ln) for ln in lines]
    return lines, nums


@pytest.mark.parametrize("verbose", [1, 2])
@pytest.mark.parametrize("max_iter", [0, 7, 100])
def test_verbose_output_matches_sklearn(verbose, max_iter, capsys, rng):
    mixture = pytest.importorskip("sklearn.mixture")
    X = blobs(rng)
    # (max_iter=0 with precisions_init fails inside scikit-learn 1.9: own inits there)
    init = sk_init(X, "full") if max_iter else dict(random_state=0)
    kw = dict(max_iter=max_iter, tol=1e-4, verbose=verbose, verbose_interval=3, **init)
    capsys.readouterr()
    quiet_fit(mixture.GaussianMixture(3, **kw), X)
    sk_out = capsys.readouterr().out
    quiet_fit(GaussianMixture(3, **kw), X)
    ours_out = capsys.readouterr().out
    if verbose == 1:
        assert ours_out == sk_out
    else:
        (a, na), (b, nb) = _normalise(ours_out), _normalise(sk_out)
        assert a == b
        np.testing.assert_allclose(na, nb, rtol=0, atol=1.1e-5)
    assert sk_out.startswith("Initialization 0\n")


def test_verbose_n_init_structure_and_silence(capsys, rng):
    X = blobs(rng)
    quiet_fit(GaussianMixture(3, n_init=3, verbose=1, verbose_interval=1, random_state=0), X)
    out = capsys.readouterr().out.splitlines()
    assert [ln for ln in out if ln.startswith("Initialization ") and ln[-1].isdigit()] == [
        "Initialization 0",
        "Initialization 1",
        "Initialization 2",
    ]
    assert sum(ln in ("Initialization converged.", "Initialization did not converge.") for ln in out) == 3
    assert all(re.fullmatch(r"  Iteration \d+", ln) for ln in out if ln.startswith("  "))
    quiet_fit(GaussianMixture(3, n_init=2, random_state=0), X)
    assert capsys.readouterr().out == ""


def test_batch_verbose(capsys, rng):
    B = 4
    X = np.stack([blobs(rng, N=100) for _ in range(B)])
    g = BatchGaussianMixture(
        3, n_init=2, verbose=2, verbose_interval=2, random_state=0, tol=1e-3, max_iter=50, warn=False
    ).fit(X)
    out = capsys.readouterr().out.splitlines()
    assert g.lower_bounds_.shape == (B, g.n_iter_.max())
    assert out[0] == "Initialization 0"
    it_lines = [ln for ln in out if ln.startswith("  Iteration")]
    assert it_lines and all(
        re.fullmatch(
            r"  Iteration \d*[02468]\t \d of 4 sets running\t time lapse [0-9.]+s\t "
            r"max \|ll change\| [0-9.]+",
            ln,
        )
        for ln in it_lines
    )
    ends = [ln for ln in out if ln.startswith("Initialization done")]
    assert len(ends) == 2
    assert all(
        re.fullmatch(
            r"Initialization done: \d of 4 sets converged\. time lapse [0-9.]+s\t "
            r"mean lower bound -?[0-9.]+\.",
            ln,
        )
        for ln in ends
    )


@pytest.mark.parametrize("bad", [dict(verbose_interval=0), dict(verbose=-1), dict(verbose="yes")])
def test_bad_verbose_params(bad, rng):
    with pytest.raises(ValueError, match="verbose"):
        GaussianMixture(2, **bad).fit(blobs(rng, N=20))
