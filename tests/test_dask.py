"""pygenmod.dask on a real LocalCluster (2 worker processes x 1 thread, loopback only).

Every function is checked bitwise against the single-process call for three chunkings of the
batch axis: one chunk, chunks of one element, and uneven chunks ending in an empty one.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="dask[array] is not installed (pip install 'pygenmod[dask]')")
distributed = pytest.importorskip("distributed", reason="distributed is not installed (pip install 'pygenmod[dask]')")

from conftest import run_python

import pygenmod
from pygenmod import cem, gmm, mcts, mdp, returns, sampling
from pygenmod import dask as pdask
from pygenmod._backend import is_available

B = 6
CHUNKINGS = [(B,), (1,) * B, (3, 2, 1, 0)]


@pytest.fixture(scope="module")
def client():
    import cloudpickle

    # the CEM objectives below live in this module, which the workers cannot import
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def chunked(x, chunks, axis=0):
    return da.from_array(np.asarray(x), chunks={axis: chunks})


def same(got, want, what=""):
    """Bitwise equality of a (possibly nested) result and its reference."""
    if want is None or isinstance(want, str):
        assert got == want, what
        return
    if isinstance(want, tuple):
        assert len(got) == len(want), what
        for i, (g, w) in enumerate(zip(got, want)):
            same(g, w, f"{what}[{i}]")
        return
    g, w = np.asarray(got), np.asarray(want)
    assert g.dtype == w.dtype and g.shape == w.shape, (what, g.dtype, w.dtype, g.shape, w.shape)
    assert g.tobytes() == w.tobytes(), what


def run(lazy):
    import dask

    (out,) = dask.compute(lazy)
    return out


# ------------------------------------------------------------------------------ gmm
@pytest.fixture(scope="module")
def gmm_data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(B, 40, 2))
    X[:, :20] += 3.0
    return X


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("ct", ["full", "diag", "tied", "spherical"])
def test_gmm_fit(client, gmm_data, chunks, ct):
    w = np.random.default_rng(2).random(gmm_data.shape[:2])
    want = gmm.fit(gmm_data, 2, w, covariance_type=ct, seed=7, n_init=2)
    got = run(pdask.fit(chunked(gmm_data, chunks), 2, chunked(w, chunks), covariance_type=ct, seed=7, n_init=2))
    same(got, want)


def test_gmm_fit_float32_per_set_reg_and_stream(client, gmm_data):
    X = gmm_data.astype(np.float32)
    reg = np.linspace(1e-6, 1e-3, B)
    want = gmm.fit(X, 3, init="random", reg_covar=reg, seed=11, stream=100)
    got = run(pdask.fit(chunked(X, (2, 4)), 3, init="random", reg_covar=reg, seed=11, stream=100))
    same(got, want)


def test_seed_none_resolved_once_on_client(client, gmm_data):
    pygenmod.manual_seed(5)
    got = run(pdask.fit(chunked(gmm_data, (1,) * B), 2))
    pygenmod.manual_seed(5)
    same(got, gmm.fit(gmm_data, 2))


def test_batch_gaussian_mixture_estimator(client, gmm_data):
    reg = np.full(B, 1e-5)
    want = gmm.BatchGaussianMixture(2, random_state=4, reg_covar=reg, n_init=2, warn=False).fit(gmm_data)
    est = pdask.BatchGaussianMixture(2, random_state=4, reg_covar=reg, n_init=2).fit(chunked(gmm_data, (4, 2)))
    for attr in (
        "weights_",
        "means_",
        "covariances_",
        "precisions_cholesky_",
        "precisions_",
        "converged_",
        "n_iter_",
        "lower_bound_",
        "flags_",
    ):
        same(getattr(est, attr), getattr(want, attr), attr)
    same(est.predict(gmm_data), want.predict(gmm_data))
    same(
        pdask.BatchGaussianMixture(2, random_state=4).fit(gmm_data).means_,
        gmm.BatchGaussianMixture(2, random_state=4).fit(gmm_data).means_,
    )
    with pytest.raises(ValueError, match="verbose"):
        pdask.BatchGaussianMixture(2, verbose=1).fit(gmm_data)


# ------------------------------------------------------------------------------ mdp
@pytest.fixture(scope="module")
def mdps():
    P, R = mdp.random_mdp(5, 3, B, seed=2)
    return P, R, np.linspace(0.5, 0.95, B)


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("fname", ["solve", "value_iteration", "policy_iteration"])
def test_mdp_solvers(client, mdps, chunks, fname):
    P, R, g = mdps
    want = getattr(mdp, fname)(P, R, g)
    got = run(getattr(pdask, fname)(chunked(P, chunks), chunked(R, chunks), g))
    same(got, want)


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_mdp_policy_evaluation(client, mdps, chunks):
    P, R, _ = mdps
    rng = np.random.default_rng(0)
    det = rng.integers(0, 3, size=(B, 5))
    stoch = rng.random((B, 5, 3))
    stoch /= stoch.sum(-1, keepdims=True)
    for pi in (det, stoch):
        for method in ("exact", "iterative"):
            want = mdp.policy_evaluation(P, R, 0.9, pi, evaluation=method)
            got = run(pdask.policy_evaluation(chunked(P, chunks), chunked(R, chunks), 0.9, pi, evaluation=method))
            same(got, want, method)


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_mdp_policy_iteration_initial_policy(client, mdps, chunks):
    """An initial-policy array is chunked with R; "random" draws MDP b's start from stream + b
    (global b): the same result for every chunking."""
    P, R, g = mdps
    start = np.random.default_rng(2).integers(0, 3, size=(B, 5))
    for evaluation in ("iterative", "exact"):
        want = mdp.policy_iteration(P, R, g, evaluation=evaluation, initial_policy=start)
        got = run(
            pdask.policy_iteration(
                chunked(P, chunks), chunked(R, chunks), g, evaluation=evaluation, initial_policy=start
            )
        )
        same(got, want, evaluation)
        want = mdp.policy_iteration(P, R, g, evaluation=evaluation, initial_policy="random", seed=7, stream=3)
        got = run(
            pdask.policy_iteration(
                chunked(P, chunks),
                chunked(R, chunks),
                g,
                evaluation=evaluation,
                initial_policy="random",
                seed=7,
                stream=3,
            )
        )
        same(got, want, evaluation)


def test_mdp_exact_policy_iteration_float32(client, mdps):
    P, R, _g = mdps
    P32, R32 = P.astype(np.float32), R.astype(np.float32)
    want = mdp.policy_iteration(P32, R32, 0.9, evaluation="exact")
    same(run(pdask.policy_iteration(chunked(P32, (4, 2)), chunked(R32, (4, 2)), 0.9, evaluation="exact")), want)


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_mdp_sparse(client, chunks):
    """CSR transitions are split on the client along R's batch chunks."""
    P, R = mdp.random_mdp(7, 3, B, successors=3, seed=4)
    g = np.linspace(0.5, 0.95, B)
    for fname in ("solve", "value_iteration", "policy_iteration"):
        same(run(getattr(pdask, fname)(P, chunked(R, chunks), g)), getattr(mdp, fname)(P, R, g), fname)
    pi = np.random.default_rng(1).integers(0, 3, size=(B, 7))
    for method in ("exact", "iterative"):
        same(
            run(pdask.policy_evaluation(P, chunked(R, chunks), 0.9, pi, evaluation=method)),
            mdp.policy_evaluation(P, R, 0.9, pi, evaluation=method),
            method,
        )


def test_mdp_bad_transitions(mdps):
    P, R = mdp.random_mdp(5, 3, 2, successors=2, seed=0)
    with pytest.raises(ValueError, match="P: 2 MDPs, R has 3"):
        pdask.solve(P, np.zeros((3, 5, 3)), 0.9)
    with pytest.raises(ValueError, match="P: expected a dense"):
        pdask.solve(np.zeros((2, 5, 3)), R, 0.9)


# ------------------------------------------------------------------------------ returns
@pytest.fixture(scope="module")
def traj():
    rng = np.random.default_rng(3)
    T = 9
    r = rng.normal(size=(T, B)).astype(np.float32)
    v = rng.normal(size=(T, B)).astype(np.float32)
    term = rng.random((T, B)) < 0.2
    return r, v, term, rng.normal(size=B).astype(np.float32), np.linspace(0.9, 0.99, B).astype(np.float32)


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_gae_and_lambda_returns(client, traj, chunks):
    r, v, term, boot, gam = traj
    kw = {"gamma": gam, "lam": 0.9, "bootstrap_value": boot}
    want = returns.gae(r, v, terminated=term, **kw)
    got = run(pdask.gae(chunked(r, chunks, 1), chunked(v, chunks, 1), terminated=chunked(term, chunks, 1), **kw))
    same(got, want)
    same(
        run(pdask.lambda_returns(chunked(r, chunks, 1), chunked(v, chunks, 1), terminated=term, **kw)),
        returns.lambda_returns(r, v, terminated=term, **kw),
    )
    # batch-major input (time_axis=1): the batch axis is axis 0
    want = returns.gae(r.T, v.T, time_axis=1, compute_returns=False)
    same(run(pdask.gae(chunked(r.T, chunks), chunked(v.T, chunks), time_axis=1, compute_returns=False)), want)


def test_gae_time_axis_rechunked_to_one(client, traj):
    r, v, *_ = traj
    x = da.from_array(r, chunks=(4, 2))  # the time axis in 3 chunks: rechunked to one
    same(run(pdask.gae(x, da.from_array(v, chunks=(2, 3)))), returns.gae(r, v))


# ------------------------------------------------------------------------------ sampling
@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(4)
    mu = rng.normal(size=(B, 3)).astype(np.float32)
    lv = rng.normal(size=(B, 3)).astype(np.float32)
    L = np.tril(rng.normal(size=(B, 3, 3))) + 3 * np.eye(3)
    return mu, lv, L


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("S", [None, 4])
def test_sampling_heads(client, rows, chunks, S):
    mu, lv, L = rows
    kw = {"seed": 21, "n_samples": S, "stream": 3, "offset": 5}
    same(
        run(pdask.rsample_normal(chunked(mu, chunks), chunked(lv, chunks), **kw)), sampling.rsample_normal(mu, lv, **kw)
    )
    std = np.exp(lv)
    same(
        run(pdask.rsample_normal(chunked(mu, chunks), std=std, return_eps=True, **kw)),
        sampling.rsample_normal(mu, std=std, return_eps=True, **kw),
    )
    same(
        run(pdask.normal_head(chunked(mu, chunks), log_std=chunked(lv, chunks), log_q=True, return_eps=True, **kw)),
        sampling.normal_head(mu, log_std=lv, log_q=True, return_eps=True, **kw),
    )
    mu64 = mu.astype(np.float64)
    same(run(pdask.rsample_mvn(chunked(mu64, chunks), chunked(L, chunks), **kw)), sampling.rsample_mvn(mu64, L, **kw))
    same(run(pdask.rsample_mvn(chunked(mu64, chunks), L[0], **kw)), sampling.rsample_mvn(mu64, L[0], **kw))


# ------------------------------------------------------------------------------ cem
def quadratic(X):
    """Row-wise objective: each problem b has its optimum at (b, b, ...)."""
    target = np.arange(X.shape[0], dtype=X.dtype)[:, None, None]
    return -((X - target) ** 2).sum(-1)


def row_quadratic(X):
    return -((X - 1.5) ** 2).sum(-1)


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("cov", ["diag", "full"])
def test_cem(client, chunks, cov):
    rng = np.random.default_rng(5)
    mean = rng.normal(size=(B, 2))
    scale = np.ones((B, 2)) if cov == "diag" else np.broadcast_to(np.eye(2), (B, 2, 2)).copy()
    kw = {"n_samples": 16, "n_elite": 4, "n_iter": 3, "seed": 9, "covariance": cov}
    want = cem.cem_optimize(row_quadratic, mean, scale, **kw)
    same(run(pdask.cem_optimize(row_quadratic, chunked(mean, chunks), chunked(scale, chunks), **kw)), want)


def test_cem_stream_matches_a_slice():
    """cem_optimize(stream=g) on rows g: equals rows g: of the whole batch (no Dask involved)."""
    rng = np.random.default_rng(6)
    mean, scale = rng.normal(size=(5, 2)), np.ones((5, 2))
    kw = {"n_samples": 8, "n_elite": 2, "n_iter": 2, "seed": 1}
    whole = cem.cem_optimize(row_quadratic, mean, scale, **kw)
    part = cem.cem_optimize(row_quadratic, mean[2:], scale[2:], stream=2, **kw)
    for w, p in zip(whole, part):
        same(p, w[..., 2:] if w.shape[0] == 2 else w[2:])


# ------------------------------------------------------------------------------ mcts
@pytest.fixture(scope="module")
def mcts_models():
    rng = np.random.default_rng(8)
    S, A = 7, 3
    R, L, V = rng.normal(size=(S, A)), rng.normal(size=(S, A)), rng.normal(size=S)
    det = mcts.tabular_model(rng.integers(0, S, (S, A)), R, L, V, 0.9)
    sto = mcts.stochastic_tabular_model(
        rng.dirichlet(np.ones(S), (S, A)), R.astype(np.float32), L.astype(np.float32), V.astype(np.float32), 0.9
    )
    roots = rng.integers(0, S, B)
    inv = rng.random((B, A)) < 0.3
    inv[:, 0] = False
    return det, sto, roots, inv


def _policy_rows(out):
    return tuple(out[:4])


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("policy", ["muzero", "gumbel", "uct"])
@pytest.mark.parametrize("stochastic", [False, True])
def test_mcts_search(client, mcts_models, chunks, policy, stochastic):
    det, sto, roots, inv = mcts_models
    m = sto if stochastic else det
    kw = {"seed": 3, "stream": 10, "invalid_actions": inv}
    kw.update({"temperature": np.linspace(0.0, 2.0, B)} if policy != "gumbel" else {"max_num_considered_actions": 2})
    want = mcts.search(roots, m, 12, policy=policy, **kw)
    kw["invalid_actions"] = chunked(inv, chunks)
    got = run(pdask.search(chunked(roots, chunks), m, 12, policy=policy, **kw))
    assert got.tree is None
    same(_policy_rows(got), _policy_rows(want))


@pytest.mark.parametrize("policy", ["muzero", "uct"])
def test_mcts_chance_nodes(client, mcts_models, policy):
    _, sto, roots, _ = mcts_models
    want = mcts.search(roots, sto, 12, policy=policy, seed=6, chance_nodes=True)
    got = run(pdask.search(chunked(roots, (3, 2, 1, 0)), sto, 12, policy=policy, seed=6, chance_nodes=True))
    same(_policy_rows(got), _policy_rows(want))


@pytest.mark.skipif(not is_available("numba"), reason="numba is not installed")
def test_mcts_numba_backend_on_workers(client, mcts_models):
    _, sto, roots, _ = mcts_models
    with pygenmod.use_backend("numba"):
        want = mcts.muzero_policy(roots, sto, 10, seed=4)
    same(
        _policy_rows(run(pdask.muzero_policy(chunked(roots, (2, 4)), sto, 10, seed=4, backend="numba"))),
        _policy_rows(want),
    )


def test_mcts_seed_none_and_bad_arguments(client, mcts_models):
    det, _, roots, _ = mcts_models
    pygenmod.manual_seed(9)
    got = run(pdask.muzero_policy(chunked(roots, (1,) * B), det, 8))
    pygenmod.manual_seed(9)
    same(_policy_rows(got), _policy_rows(mcts.muzero_policy(roots, det, 8)))
    with pytest.raises(TypeError, match="model"):
        pdask.muzero_policy(chunked(roots, (B,)), lambda e, a: None, 4)
    with pytest.raises(ValueError, match="tree"):
        pdask.gumbel_muzero_policy(chunked(roots, (B,)), det, 4, tree=object())
    with pytest.raises(ValueError, match="roots"):
        pdask.search(chunked(np.zeros((B, 2), int), (B,)), det, 4)
    with pytest.raises(ValueError, match="policy"):
        pdask.search(chunked(roots, (B,)), det, 4, policy="uct?")


# ------------------------------------------------------------------------------ threads, backends, robustness
def test_threads_follow_the_worker(client):
    # workers have nthreads=1: a task runs 1 thread, and the worker's setting is restored after
    for inside, _, _ in client.run(pdask._probe_threads).values():
        assert inside == 1
    inside, after, _ = client.submit(pdask._probe_threads, 2, pure=False).result()
    assert inside == 2 and after == 1


@pytest.mark.skipif(not is_available("numba"), reason="numba is not installed")
def test_numba_threads_follow_the_worker(client):
    # numba is loaded by the budget itself when it is the backend, so its count is set too
    assert client.submit(pdask._probe_threads, None, "numba", pure=False).result()[2] == 1
    assert client.submit(pdask._probe_threads, 2, "numba", pure=False).result()[2] == 2


def _busy_probe():
    time.sleep(0.5)  # both tasks are executing when either measures ...
    r = pdask._probe_threads()
    time.sleep(0.5)  # ... and still when the other one does
    return r


def test_threads_split_between_the_tasks_of_a_worker():
    """A worker with nthreads=2: one task gets 2 threads, two concurrent tasks 1 each."""
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=False,  # in-process comms
            dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        assert c.submit(pdask._probe_threads, pure=False).result()[0] == 2
        futs = [c.submit(_busy_probe, pure=False) for _ in range(2)]
        assert [f.result()[0] for f in futs] == [1, 1]


def test_threads_outside_a_worker_are_left_alone():
    before = pygenmod.get_num_threads()
    assert pdask._probe_threads()[:2] == (before, before)


@pytest.mark.skipif(not is_available("numba"), reason="numba is not installed")
def test_numba_backend_on_workers(client, traj, mdps):
    r, v, term, _boot, gam = traj
    with pygenmod.use_backend("numba"):
        want = returns.gae(r, v, terminated=term, gamma=gam)
    got = run(pdask.gae(chunked(r, (4, 2), 1), chunked(v, (4, 2), 1), terminated=term, gamma=gam, backend="numba"))
    same(got, want)
    P, R, g = mdps
    with pygenmod.use_backend("numba"):
        want = mdp.solve(P, R, g)
    same(run(pdask.solve(chunked(P, (1, 5)), chunked(R, (1, 5)), g, backend="numba")), want)


def test_bad_arguments(client, gmm_data):
    with pytest.raises(ValueError, match="X: expected"):
        pdask.fit(chunked(gmm_data[0], (40,)), 2)
    with pytest.raises(ValueError, match="lower_bounds"):
        pdask.fit(chunked(gmm_data, (B,)), 2, lower_bounds=True)
    with pytest.raises(ValueError, match="R: batch axis has length"):
        P, R = mdp.random_mdp(3, 2, 4, seed=0)
        pdask.solve(chunked(P, (4,)), chunked(R[:3], (3,)), 0.9)
    with pytest.raises(ValueError, match="threads"):
        pdask.gae(chunked(np.zeros((3, 2)), (2,), 1), np.zeros((3, 2)), threads=0)


def slow_quadratic(X):
    time.sleep(0.15)
    return row_quadratic(X)


def test_worker_lost_mid_computation(client):
    """A worker killed while it runs tasks: Dask reruns them elsewhere, the result is exact."""
    rng = np.random.default_rng(7)
    mean, scale = rng.normal(size=(8, 2)), np.ones((8, 2))
    kw = {"n_samples": 8, "n_elite": 2, "n_iter": 4, "seed": 3}
    want = cem.cem_optimize(row_quadratic, mean, scale, **kw)
    lazy = pdask.cem_optimize(slow_quadratic, chunked(mean, (1,) * 8), chunked(scale, (1,) * 8), **kw)
    pids = client.run(os.getpid)
    futs = client.compute(list(lazy))
    time.sleep(0.5)  # tasks of 4 x 0.15 s are running now
    os.kill(pids[min(pids)], signal.SIGKILL)  # the nanny restarts it; the scheduler reruns its tasks
    distributed.wait(futs, timeout=60)
    same(tuple(client.gather(futs)), want)
    assert set(client.run(os.getpid).values()) != set(pids.values())


def test_import_first_in_a_fresh_process():
    """A worker unpickles a task by importing pygenmod.dask before anything else of pygenmod."""

    out = run_python(["-c", "import pygenmod.dask"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


FORK_SCRIPT = """
import dask, dask.array as da, distributed, numpy as np, pygenmod
from pygenmod import dask as pdask, mdp
pygenmod.set_num_threads(2)
P, R = mdp.random_mdp(16, 3, 64, seed=0)
want = mdp.solve(P, R, 0.9)  # a parallel region has run in this (the parent) process
with dask.config.set({"distributed.worker.multiprocessing-method": "fork"}):
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                                  dashboard_address=":0") as cl, distributed.Client(cl):
        (got,) = dask.compute(pdask.solve(da.from_array(P, chunks=(16, -1, -1, -1)), R, 0.9))
assert got.V.tobytes() == want.V.tobytes() and got.policy.tobytes() == want.policy.tobytes()
"""


@pytest.mark.skipif(sys.platform != "linux", reason="fork-started workers: Linux only")
def test_fork_started_worker_after_a_parallel_kernel():
    """Workers forked from a parent whose OpenMP pool ran: no hang, exact results (own process, timeout)."""
    # run_python: a child in the repository root would import the source tree (no compiled modules)
    out = run_python(["-c", FORK_SCRIPT], timeout=120, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_local_schedulers_with_a_progress_bar(traj, scheduler, capsys):
    """No cluster needed: the local schedulers, with dask's ProgressBar, give the same bits."""
    import dask
    from dask.diagnostics import ProgressBar

    r, v, term, _, gam = traj
    lazy = pdask.gae(chunked(r, (2, 2, 2), 1), chunked(v, (2, 2, 2), 1), terminated=term, gamma=gam)
    with ProgressBar():
        (got,) = dask.compute(lazy, scheduler=scheduler)
    same(got, returns.gae(r, v, terminated=term, gamma=gam))
    assert "100%" in capsys.readouterr().out
