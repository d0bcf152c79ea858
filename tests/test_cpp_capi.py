"""The C API (libpygenmod_c, csrc/capi/include/pygenmod_c.h) through ctypes, against the
Python API: the Bellman sweep, GAE and the tabular MCTS search, float32 and float64, fresh
random inputs, odd sizes; and the error path (status code + message, no crash)."""

import ctypes
import glob
import os

import numpy as np
import pytest

import pygenmod
from pygenmod import mcts, mdp, returns

_HERE = os.path.dirname(pygenmod.__file__)
_LIBS = glob.glob(os.path.join(_HERE, "libpygenmod_c.*"))

pytestmark = pytest.mark.skipif(not _LIBS, reason="libpygenmod_c not built with this copy of pygenmod")


@pytest.fixture(scope="module")
def lib():
    L = ctypes.CDLL(_LIBS[0])
    L.pgm_last_error.restype = ctypes.c_char_p
    L.pgm_version.restype = ctypes.c_char_p
    return L


def _p(a):
    return None if a is None else a.ctypes.data_as(ctypes.c_void_p)


_I64 = ctypes.c_int64
_SUFFIX = {np.float32: "f32", np.float64: "f64"}


def test_version(lib):
    assert lib.pgm_version().decode() == pygenmod.__version__


def test_thread_count(lib):
    n0 = lib.pgm_get_num_threads()
    try:
        assert lib.pgm_set_num_threads(0) == 1 and b"n:" in lib.pgm_last_error()
        assert lib.pgm_set_num_threads(3) == 0 and lib.pgm_get_num_threads() == 3
    finally:
        lib.pgm_set_num_threads(n0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,S,A", [(1, 1, 1), (3, 7, 5), (2, 33, 4)])
def test_bellman_backup_matches_python(lib, dtype, B, S, A):
    rng = np.random.default_rng(B * 100 + S * 10 + A)
    P = rng.random((B, S, A, S)).astype(dtype)
    P /= P.sum(-1, keepdims=True)
    R = rng.standard_normal((B, S, A)).astype(dtype)
    V = rng.standard_normal((B, S)).astype(dtype)
    gamma = rng.uniform(0.5, 0.99, B).astype(dtype)
    Q, Vo, pi = np.empty((B, S, A), dtype), np.empty((B, S), dtype), np.empty((B, S), np.int64)
    fn = getattr(lib, f"pgm_bellman_backup_{_SUFFIX[dtype]}")
    rc = fn(_p(P), _p(R), _p(V), _p(gamma), _I64(B), _I64(S), _I64(A), 0, None, None, None, _p(Q), _p(Vo), _p(pi))
    assert rc == 0, lib.pgm_last_error()
    with pygenmod.use_backend("cpu"):
        ref = mdp.bellman_backup(P, R, V, gamma)
    np.testing.assert_array_equal(Q, ref.Q)  # the same kernel: bit-identical
    np.testing.assert_array_equal(Vo, ref.V)
    np.testing.assert_array_equal(pi, ref.policy)
    # and against an independent float64 reference
    q64 = R.astype(np.float64) + gamma[:, None, None].astype(np.float64) * np.einsum(
        "bsat,bt->bsa", P.astype(np.float64), V.astype(np.float64)
    )
    tol = {"rtol": 2e-4, "atol": 2e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    np.testing.assert_allclose(Q, q64, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T,B", [(1, 1), (17, 3), (64, 33)])
def test_gae_matches_python(lib, dtype, T, B):
    rng = np.random.default_rng(T * 1000 + B)
    r = rng.standard_normal((T, B)).astype(dtype)
    v = rng.standard_normal((T, B)).astype(dtype)
    boot = rng.standard_normal(B).astype(dtype)
    nv = rng.standard_normal((T, B)).astype(dtype)
    term = (rng.random((T, B)) < 0.1).astype(np.uint8)
    trunc = (rng.random((T, B)) < 0.1).astype(np.uint8)
    gamma, lam = 0.97, 0.9
    adv, ret = np.empty((T, B), dtype), np.empty((T, B), dtype)
    g = np.full(B, gamma, dtype)
    la = np.full(B, lam, dtype)
    fn = getattr(lib, f"pgm_gae_{_SUFFIX[dtype]}")
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    # terminations and a bootstrap value after the last step
    rc = fn(_p(r), _p(v), None, _p(boot), _p(term), None, _p(g), _p(la), _I64(T), _I64(B), _p(adv), _p(ret))
    assert rc == 0, lib.pgm_last_error()
    with pygenmod.use_backend("cpu"):
        ref = returns.gae(r, v, gamma=gamma, lam=lam, terminated=term.astype(bool), bootstrap_value=boot)
    np.testing.assert_allclose(adv, ref.advantages, **tol)
    np.testing.assert_allclose(ret, ref.returns, **tol)
    # truncations need the next observations' values
    rc = fn(_p(r), _p(v), _p(nv), None, _p(term), _p(trunc), _p(g), _p(la), _I64(T), _I64(B), _p(adv), _p(ret))
    assert rc == 0, lib.pgm_last_error()
    with pygenmod.use_backend("cpu"):
        ref = returns.gae(
            r, v, gamma=gamma, lam=lam, terminated=term.astype(bool), truncated=trunc.astype(bool), next_values=nv
        )
    np.testing.assert_allclose(adv, ref.advantages, **tol)
    np.testing.assert_allclose(ret, ref.returns, **tol)
    # against an independent float64 loop
    a64, carry = np.zeros((T, B)), np.zeros(B)
    for t in range(T - 1, -1, -1):
        delta = r[t] + gamma * (1 - term[t]) * nv[t].astype(np.float64) - v[t]
        carry = delta + gamma * lam * (1 - (term[t] | trunc[t])) * carry
        a64[t] = carry
    np.testing.assert_allclose(adv, a64, **({"rtol": 1e-4, "atol": 1e-4} if dtype == np.float32 else tol))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("S,A,B,sims", [(1, 1, 1, 3), (9, 3, 5, 20), (40, 7, 16, 100)])
def test_mcts_search_matches_python(lib, dtype, S, A, B, sims):
    rng = np.random.default_rng(S * 7 + A)
    terminal = np.zeros(S, bool)
    if S > 2:
        terminal[-1] = True
    model = mcts.tabular_model(
        rng.integers(0, S, (S, A)),
        rng.standard_normal((S, A)),
        rng.standard_normal((S, A)),
        rng.standard_normal(S),
        0.95,
        terminal=terminal,
        dtype=dtype,
    )
    roots = rng.integers(0, max(S - 1, 1), B).astype(np.int64)
    counts = np.empty((B, A), np.int32)
    value = np.empty(B, dtype)
    fn = getattr(lib, f"pgm_mcts_search_tabular_{_SUFFIX[dtype]}")
    arrays = [
        np.ascontiguousarray(x)
        for x in (
            model.next_state.astype(np.int64),
            model.reward,
            model.discount,
            model.logits,
            model.prior,
            model.value,
            model.invalid,
        )
    ]
    rc = fn(
        *map(_p, arrays),
        _I64(S),
        _I64(A),
        _p(roots),
        _I64(B),
        _I64(sims),
        ctypes.c_double(1.25),
        ctypes.c_double(19652.0),
        _p(counts),
        _p(value),
    )
    assert rc == 0, lib.pgm_last_error()
    with pygenmod.use_backend("cpu"):
        ref = mcts.muzero_policy(roots, model, sims, dirichlet_fraction=0.0, temperature=0.0)
    np.testing.assert_array_equal(counts, ref.visit_counts)
    np.testing.assert_allclose(value, ref.value, rtol=1e-6 if dtype == np.float32 else 1e-12)
    assert (counts.sum(1) == sims).all()


def test_errors_are_codes_with_messages(lib):
    out = np.empty(4)
    rc = lib.pgm_gae_f64(None, None, None, None, None, None, None, None, _I64(2), _I64(2), _p(out), None)
    assert rc == 1
    assert b"must not be NULL" in lib.pgm_last_error()
    P = np.ones((1, 2, 1, 2)) / 2
    R, V, g = np.zeros((1, 2, 1)), np.zeros((1, 2)), np.array([0.9])
    Q, Vo, pi = np.empty((1, 2, 1)), np.empty((1, 2)), np.empty((1, 2), np.int64)
    rc = lib.pgm_bellman_backup_f64(
        _p(P), _p(R), _p(V), _p(g), _I64(1), _I64(2), _I64(1), 7, None, None, None, _p(Q), _p(Vo), _p(pi)
    )
    assert rc == 1 and b"kind" in lib.pgm_last_error()
    bad = np.array([[np.nan, 0.0]])
    rc = lib.pgm_gae_f64(
        _p(bad),
        _p(np.zeros((1, 2))),
        None,
        None,
        None,
        None,
        _p(np.ones(2)),
        _p(np.ones(2)),
        _I64(1),
        _I64(2),
        _p(np.empty((1, 2))),
        None,
    )
    assert rc == 1 and b"NaN" in lib.pgm_last_error()
    assert (
        lib.pgm_bellman_backup_f64(
            _p(P), _p(R), _p(V), _p(g), _I64(1), _I64(2), _I64(1), 0, None, None, None, _p(Q), _p(Vo), _p(pi)
        )
        == 0
    )
    assert lib.pgm_last_error() == b""
