"""The one-call fast paths of hot tiny functions (pygenmod._fast, issue 11): on both sides of
every fast/general decision the results are bitwise identical and the errors are the same
(type and message), on the cpu and numba backends (numba always takes the general path)."""

import math
import warnings

import numpy as np
import pytest
from conftest import run_python

import pygenmod
import pygenmod.random  # noqa: F401  (pygenmod.random.manual_seed below, whichever tests run)
from pygenmod import _backend, _fast, adversarial, categorical, cem, elbo, gmm, mdp, returns, sampling, spatial
from pygenmod._seed import resolve_seed
from pygenmod.mdp import _solvers

HOST = ("cpu", "numba")


@pytest.fixture(params=HOST)
def host(request):
    ok, why = pygenmod._backend._probe(request.param)
    if not ok:
        pytest.skip(f"backend {request.param!r} unavailable: {why}")
    with pygenmod.use_backend(request.param):
        yield request.param


def both(f, monkeypatch):
    """f() with the fast paths on, then off: each side's result, or its (type, message)."""
    out = []
    for on in (True, False):
        monkeypatch.setattr(_fast, "ENABLED", on)
        try:
            out.append(f())
        except Exception as exc:  # noqa: BLE001 - the exception itself is what is compared
            out.append((type(exc), str(exc)))
    monkeypatch.setattr(_fast, "ENABLED", True)
    return out


def assert_same(a, b):
    """Bitwise equality of results (NamedTuples / tuples of arrays and scalars), or equal errors."""
    if isinstance(a, tuple) and a and isinstance(a[0], type) and issubclass(a[0], Exception):
        assert a == b
        return
    assert type(a) is type(b)
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
    else:
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def raises(result):
    return isinstance(result, tuple) and result and isinstance(result[0], type) and issubclass(result[0], Exception)


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


# ----------------------------------------------------------------------------- bellman_backup
def _mdp(rng, lead, S, A, dtype):
    P = rng.random(lead + (S, A, S)) + 0.1
    P /= P.sum(-1, keepdims=True)
    return (
        P.astype(dtype),
        rng.standard_normal(lead + (S, A)).astype(dtype),
        rng.standard_normal(lead + (S,)).astype(dtype),
    )


@pytest.mark.parametrize("lead,S,A", [((), 1, 1), ((), 4, 4), ((), 13, 3), ((3,), 5, 2), ((2,), 70, 4)])
@pytest.mark.parametrize("check", [True, False])
def test_backup_fast_equals_general(host, dtype, rng, monkeypatch, lead, S, A, check):
    P, R, V = _mdp(rng, lead, S, A, dtype)
    fast, general = both(lambda: mdp.bellman_backup(P, R, V, 0.9, check=check), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":  # the compiled entry point took it (None would mean the general path ran)
        assert pygenmod._cpu_mdp.backup_fast(P, R, V, 0.9, _solvers._fast_tol(P, check)) is not None


def _backup_cases(dtype):
    rng = np.random.default_rng(5)
    P, R, V = _mdp(rng, (), 4, 3, dtype)
    bad_sum = P.copy()
    bad_sum[1, 2] *= 1.5
    neg = P.copy()
    neg[0, 0, :2] = [-0.25, 1.25 - P[0, 0, 2:].sum()]
    nan_p = P.copy()
    nan_p[2, 1, 0] = np.nan
    neg_zero = P.copy()  # accepted (-0.0 >= 0); the compiled check leaves signed zeros to the general path
    neg_zero[3, 0, 1] += neg_zero[3, 0, 0]
    neg_zero[3, 0, 0] = -0.0

    def with_(a, i, v):
        a = a.copy()
        a.flat[i] = v
        return a

    return {
        "row sums": (bad_sum, R, V, 0.9),
        "negative": (neg, R, V, 0.9),
        "nan P": (nan_p, R, V, 0.9),
        "negative zero": (neg_zero, R, V, 0.9),
        "nan R": (P, with_(R, 3, np.nan), V, 0.9),
        "inf V": (P, R, with_(V, 1, -np.inf), 0.9),
        "gamma 1": (P, R, V, 1.0),
        "gamma < 0": (P, R, V, -0.1),
        "gamma nan": (P, R, V, float("nan")),
        "gamma rounds to 1": (P, R, V, 0.99999999),
        "P 2-d": (P[0], R, V, 0.9),
        "P not square": (P[..., :3], R, V, 0.9),
        "R shape": (P, R[:, :2], V, 0.9),
        "R with S' axis": (P, np.repeat(R[..., None], 4, -1), V, 0.9),
        "V shape": (P, R, V[:3], 0.9),
        "V batched": (P, R, V[None], 0.9),
        "no actions": (P[:, :0], R[:, :0], V, 0.9),
        "empty batch": (P[None][:0], R[None][:0], V[None][:0], 0.9),
        "int P": (np.ones((2, 1, 2), np.int64), R[:2, :1], V[:2], 0.9),
        "other dtypes": (P, R.astype(np.float32 if dtype == np.float64 else np.float64), V, 0.9),
        "non-contiguous": (np.asfortranarray(P), R[:, ::-1], V[::-1], 0.9),
        "big-endian": (P.astype(P.dtype.newbyteorder(">")), R, V, 0.9),
    }


@pytest.mark.parametrize(
    "case",
    list(_backup_cases(np.float64)),
)
def test_backup_errors_and_edge_cases_equal(host, dtype, monkeypatch, case):
    P, R, V, g = _backup_cases(dtype)[case]
    fast, general = both(lambda: mdp.bellman_backup(P, R, V, g), monkeypatch)
    assert_same(fast, general)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("off", [-1e-9, -1e-14, 0.0, 1e-14, 1e-9])
def test_row_check_at_the_tolerance(host, monkeypatch, dtype, off):
    """Rows whose sum is off by the tolerance give the same answer on both paths: the compiled
    check sums in another order, so it leaves rows that close to the limit to the general path."""
    tol = mdp.ROW_SUM_TOL[np.dtype(dtype)]
    P = np.full((3, 2, 3), 1 / 3)
    P[1, 0, 0] += tol + off
    P = P.astype(dtype)
    R, V = np.ones((3, 2), dtype), np.ones(3, dtype)
    fast, general = both(lambda: mdp.bellman_backup(P, R, V, 0.5), monkeypatch)
    assert_same(fast, general)
    fast, general = both(lambda: _pi(P, R, 0.5), monkeypatch)
    assert_same(fast, general)


_ROW_CHECK_SCRIPT = """
import numpy as np, pygenmod
from pygenmod import _cpu_mdp, _fast, mdp
from pygenmod.mdp._solvers import _fast_tol

def run(f):
    try:
        return f()
    except ValueError as exc:
        return str(exc)

def same(a, b):
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return all(x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(a, b))

rng = np.random.default_rng(3)
bad = []
for dtype in (np.float64, np.float32):
    # S: rows of one masked chunk, of whole 16-entry steps, and of both, with one or two masked
    # chunks (12, 29); A: the dot's 4- and 1-row calls (backup_state asks for 4 rows at a time:
    # 9 = 4 + 4 + 1, 5 = 4 + 1, 3 = 1 + 1 + 1); entries changed in the first, the middle and the
    # last row of a state, in a 16-step and in the tail
    for S in (3, 12, 16, 21, 29, 40, 70):
        for A in (1, 3, 5, 9):
            P = rng.random((S, A, S)) + 0.1
            P /= P.sum(-1, keepdims=True)
            R, V = rng.standard_normal((S, A)), rng.standard_normal(S)
            for kind in ("ok", "sum", "neg", "nan", "inf", "negzero"):
                for s, a, j in ((0, 0, 0), (S // 2, A // 2, S // 2), (S - 1, A - 1, S - 1)):
                    Q = P.copy()
                    if kind == "sum":
                        Q[s, a, j] += 1e-3
                    elif kind == "neg":  # the row still sums to 1
                        Q[s, a, (j + 1) % S] += Q[s, a, j] + 0.25
                        Q[s, a, j] = -0.25
                    elif kind in ("nan", "inf"):
                        Q[s, a, j] = np.nan if kind == "nan" else np.inf
                    elif kind == "negzero":
                        Q[s, a, (j + 1) % S] += Q[s, a, j]
                        Q[s, a, j] = -0.0
                    Q, Rd, Vd = Q.astype(dtype), R.astype(dtype), V.astype(dtype)
                    out = []
                    for on in (True, False):
                        _fast.ENABLED = on
                        out.append(run(lambda: mdp.bellman_backup(Q, Rd, Vd, 0.9)))
                    _fast.ENABLED = True
                    if not same(*out) or (kind in ("sum", "neg", "nan", "inf")) != isinstance(out[1], str):
                        bad.append((np.dtype(dtype).name, S, A, kind, s, a, j))
                    # good rows pass the compiled check (None: it left them to the general path)
                    if kind == "ok" and _cpu_mdp.backup_fast(Q, Rd, Vd, 0.9, _fast_tol(Q, True)) is None:
                        bad.append((np.dtype(dtype).name, S, A, kind, s, a, j, "fast path not taken"))
assert not bad, bad
print("ok")
"""


_F32_DOTS_SCRIPT = """
import hashlib, numpy as np, pygenmod
from pygenmod import mdp

rng = np.random.default_rng(4)
h = hashlib.sha256()
for S in (1, 7, 8, 13, 16, 33, 100):
    for A in (1, 3, 4, 6):
        for lead in ((), (2,)):
            P = rng.random(lead + (S, A, S)) + 0.05
            P /= P.sum(-1, keepdims=True)
            R, V = rng.standard_normal(lead + (S, A)), rng.standard_normal(lead + (S,)) * 10
            P, R, V = P.astype(np.float32), R.astype(np.float32), V.astype(np.float32)
            for check in (True, False):
                b = mdp.bellman_backup(P, R, V, 0.9, check=check)
                h.update(b.Q.tobytes() + b.V.tobytes() + b.policy.tobytes())
            h.update(mdp.bellman_backup(P, R, V, 0.9, policy=np.zeros(lead + (S,), np.int64)).V.tobytes())
print(h.hexdigest())
"""


def test_float32_backups_bitwise_equal_on_every_isa():
    """float32 backups (Q, V, policy; checked, unchecked and policy evaluation) are bitwise the
    same under every instruction-set cap. (The float64 accumulators themselves are compared
    with dot_generic's in tests/cpp/test_mdp.cpp: the final float rounding would hide a
    last-bit difference here.)"""
    import os

    if not pygenmod.backends()["cpu"]["available"]:
        pytest.skip("compiled CPU backend unavailable")
    digests = {}
    for isa in ("baseline", "avx2", "avx512"):
        env = dict(os.environ, PYGENMOD_CPU_ISA=isa, PYGENMOD_BACKEND="cpu")
        res = run_python(["-c", _F32_DOTS_SCRIPT], env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[-3000:]
        digests[isa] = res.stdout.strip()
    assert len(set(digests.values())) == 1, digests


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_row_check_rejects_nonfinite_at_any_tolerance(host, monkeypatch, bad):
    """A row holding NaN or inf is an error whatever the row-sum tolerance (found by review: an
    infinite tolerance let the compiled check pass a row whose sum is not finite)."""
    P, R, V = _mdp(np.random.default_rng(2), (), 5, 3, np.float64)
    P[2, 1, 3] = bad
    monkeypatch.setitem(mdp.ROW_SUM_TOL, np.dtype(np.float64), np.inf)
    for f in (lambda: mdp.bellman_backup(P, R, V, 0.9), lambda: _pi(P, R, 0.9)):
        fast, general = both(f, monkeypatch)
        assert raises(general) and general[0] is ValueError
        assert_same(fast, general)


@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])
def test_backup_row_check_on_every_isa(isa):
    """The fast backup's row check (fused into the float64 AVX-512 dot, a pass over each state's
    rows elsewhere) gives the general path's answer for bad entries anywhere in a state's rows,
    at every instruction-set level (capped in a fresh process; a cap above the CPU's own level
    runs the CPU's level)."""
    import os

    if not pygenmod.backends()["cpu"]["available"]:
        pytest.skip("compiled CPU backend unavailable")
    env = dict(os.environ, PYGENMOD_CPU_ISA=isa, PYGENMOD_BACKEND="cpu")
    res = run_python(["-c", _ROW_CHECK_SCRIPT], env=env, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]


# ----------------------------------------------------------------------------- exact policy iteration
def _pi(P, R, g, **kw):
    return mdp.policy_iteration(P, R, g, evaluation="exact", **kw)


@pytest.mark.parametrize("lead,S,A", [((), 1, 1), ((), 6, 3), ((4,), 9, 2), ((2,), "max", 2), ((), "max+1", 2)])
@pytest.mark.parametrize("max_iter", [1, 1000])
def test_exact_pi_fast_equals_general(host, dtype, rng, monkeypatch, lead, S, A, max_iter):
    """(both sides of the compiled loop's size limit, too)"""
    if isinstance(S, str):
        S = _solvers._EXACT_LOOP_MAX_S + (S == "max+1")
    P, R, _ = _mdp(rng, lead, S, A, dtype)
    fast, general = both(lambda: _pi(P, R, 0.95, max_iter=max_iter), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)


def test_exact_pi_gridworld_fast_equals_general(host, monkeypatch):
    P, R, _ = mdp.gridworld()
    fast, general = both(lambda: _pi(P, R, 0.99), monkeypatch)
    assert_same(fast, general)
    assert fast.converged and fast.iterations >= 2


@pytest.mark.parametrize("initial", [None, "random", "given"])
def test_exact_pi_compiled_loop_matches_lapack(dtype, rng, monkeypatch, initial):
    """Both sides of the size threshold of the compiled loop (cpu): LU vs LAPACK, to rounding."""
    P, R, _ = _mdp(rng, (3,), 12, 4, dtype)
    kw = {}
    if initial == "random":
        kw = {"initial_policy": "random", "seed": 4}
    elif initial == "given":
        kw = {"initial_policy": rng.integers(0, 4, (3, 12))}
    with pygenmod.use_backend("cpu"):
        loop = _pi(P, R, 0.97, **kw)
        monkeypatch.setattr(_solvers, "_EXACT_LOOP_MAX_S", 0)
        lapack = _pi(P, R, 0.97, **kw)
    np.testing.assert_array_equal(loop.policy, lapack.policy)
    np.testing.assert_array_equal(loop.iterations, lapack.iterations)
    np.testing.assert_array_equal(loop.converged, lapack.converged)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(loop.V, lapack.V, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(loop.Q, lapack.Q, rtol=rtol, atol=rtol)


def _pi_cases(dtype):
    cases = {k: v for k, v in _backup_cases(dtype).items() if k not in ("inf V", "V shape", "V batched")}
    return {k: (P, R, g) for k, (P, R, V, g) in cases.items()}


@pytest.mark.parametrize("case", list(_pi_cases(np.float64)) + ["singular", "max_iter 0", "max_iter float"])
def test_exact_pi_errors_and_edge_cases_equal(host, dtype, monkeypatch, case):
    kw = {}
    if case == "singular":  # P(s|s, a) = 2 and gamma 1/2 (no row checks): I - g P_pi = 0
        P = np.zeros((3, 2, 3), dtype)
        P[np.arange(3), :, np.arange(3)] = 2
        R = np.ones((3, 2), dtype)
        g, kw = 0.5, {"check": False}
    elif case.startswith("max_iter"):
        P, R, _, g = _backup_cases(dtype)["row sums"]
        P = P / P.sum(-1, keepdims=True)
        kw = {"max_iter": 0 if case == "max_iter 0" else 3.0}
    else:
        P, R, g = _pi_cases(dtype)[case]
    fast, general = both(lambda: _pi(P, R, g, **kw), monkeypatch)
    assert_same(fast, general)
    if case == "singular":
        assert fast[0] is np.linalg.LinAlgError


# ----------------------------------------------------------------------------- rsample_normal
@pytest.mark.parametrize("shape", [(1,), (7,), (1, 4), (3, 33), (0, 5), (2, 0)])
@pytest.mark.parametrize("seed,stream,offset", [(1, 0, 0), (2**64 - 1, 5, 2**63), (None, 0, 0)])
def test_rsample_fast_equals_general(host, dtype, rng, monkeypatch, shape, seed, stream, offset):
    mu, lv = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)

    def f():
        pygenmod.random.manual_seed(11)  # seed=None: the same key on both sides
        return sampling.rsample_normal(mu, lv, seed=seed, stream=stream, offset=offset)

    fast, general = both(f, monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu" and seed is not None:
        res, _ = pygenmod._cpu_sampling.normal_head_fast(mu, lv, seed, resolve_seed, stream, offset, False)
        assert res is not None


def _rsample_cases(dtype):
    rng = np.random.default_rng(2)
    mu, lv = rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal((3, 4)).astype(dtype)
    nan_mu, inf_lv = mu.copy(), lv.copy()
    nan_mu[1, 2] = np.nan
    inf_lv[2, 0] = np.inf
    return {
        "nan mu": (nan_mu, lv, {}),
        "inf logvar": (mu, inf_lv, {}),
        "logvar shape": (mu, lv[:, :3], {}),
        "logvar row for one row": (mu[:1], lv[0], {}),
        "logvar other dtype": (mu, lv.astype(np.float32 if dtype == np.float64 else np.float64), {}),
        "mu 3-d": (mu[None], lv[None], {}),
        "int mu": (np.ones((2, 3), np.int64), lv[:2, :3], {}),
        "non-contiguous": (mu.T, lv.T, {}),
        "seed too big": (mu, lv, {"seed": 2**64}),
        "seed negative": (mu, lv, {"seed": -1}),
        "seed bool": (mu, lv, {"seed": True}),
        "stream negative": (mu, lv, {"stream": -1}),
        "offset too big": (mu, lv, {"offset": 2**64}),
        "stream float": (mu, lv, {"stream": 1.0}),
        "generator seed": (mu, lv, {"seed": np.random.default_rng(0)}),
    }


@pytest.mark.parametrize("case", list(_rsample_cases(np.float64)))
def test_rsample_errors_and_edge_cases_equal(host, dtype, monkeypatch, case):
    def f():
        mu, lv, kw = _rsample_cases(dtype)[case]  # fresh (a Generator seed advances)
        kw = {"seed": 3, **kw}
        return sampling.rsample_normal(mu, lv, **kw)

    fast, general = both(f, monkeypatch)
    assert_same(fast, general)


def test_rsample_fallback_draws_one_key(monkeypatch):
    """seed=None and an input the compiled path passes on (float32 logvar for float64 mu): the
    package generator advances once per call, as on the general path."""
    mu, lv = np.zeros((2, 3)), np.zeros((2, 3), np.float32)

    def f():
        pygenmod.random.manual_seed(5)
        return sampling.rsample_normal(mu, lv), sampling.rsample_normal(mu, lv.astype(np.float64))

    fast, general = both(f, monkeypatch)
    assert_same(fast, general)


# ----------------------------------------------------------------------------- normal_head, kl_normal, normal_log_prob
def _diag_calls(mu, lv, x, kw):
    """The three diagonal-Gaussian functions with fast paths, on the same arguments."""
    head_kw = {k: v for k, v in kw.items() if k in ("seed", "stream", "offset", "log_q", "n_samples", "clamp")}
    other = {k: v for k, v in kw.items() if k == "clamp"}
    return {
        "normal_head": lambda: sampling.normal_head(mu, lv, **{"seed": 3, **head_kw}),
        "kl_normal": lambda: sampling.kl_normal(mu, lv, **other),
        "normal_log_prob": lambda: sampling.normal_log_prob(x, mu, lv, **other),
    }


def _assert_diag_fast_path_takes(fn, mu, lv, x):
    """The cpu backend's one-call entry of fn answers these arguments (does not hand them on)."""
    if fn == "normal_head":
        assert pygenmod._cpu_sampling.normal_head_fast(mu, lv, 3, resolve_seed, 0, 0, True)[0] is not None
    else:
        args = (mu, lv) if fn == "kl_normal" else (x, mu, lv)
        assert getattr(pygenmod._cpu_sampling, fn + "_fast")(*args) is not None


@pytest.mark.parametrize("fn", ["normal_head", "kl_normal", "normal_log_prob"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (3, 33), (0, 5), (2, 0), (70, 300)])
def test_diag_gaussian_fast_equals_general(host, dtype, rng, monkeypatch, fn, shape):
    mu, lv, x = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    call = _diag_calls(mu, lv, x, {})[fn]

    def f():
        pygenmod.random.manual_seed(11)  # normal_head with seed=None below: the same key on both sides
        return call()

    fast, general = both(f, monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        _assert_diag_fast_path_takes(fn, mu, lv, x)
    if fn == "normal_head":  # seed=None draws one key on either path
        fast, general = both(lambda: (pygenmod.random.manual_seed(5), sampling.normal_head(mu, lv))[1], monkeypatch)
        assert_same(fast, general)


@pytest.mark.parametrize("fn", ["normal_head", "kl_normal", "normal_log_prob"])
def test_diag_gaussian_fast_path_takes_strided_views(host, dtype, rng, monkeypatch, fn):
    """mu and logvar sliced from one (B, 2D) encoder output (strided views): the one-call path
    reads their rows in place (x, transposed, is copied, as the general path does) and gives
    the general path's bits."""
    h = rng.standard_normal((5, 14)).astype(dtype)
    mu, lv = h[:, :7], h[:, 7:]
    x = rng.standard_normal((7, 5)).astype(dtype).T  # a transposed x
    call = _diag_calls(mu, lv, x, {})[fn]
    fast, general = both(lambda: (pygenmod.random.manual_seed(11), call())[1], monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        _assert_diag_fast_path_takes(fn, mu, lv, x)


def _row_layouts(dtype):
    """(mu, logvar) pairs in the layouts a caller hands over: rows read in place at their
    stride (column slices, a row step), and the layouts that are copied (Fortran order,
    reversed rows, unaligned rows)."""
    rng = np.random.default_rng(12)

    def f(shape):
        return rng.standard_normal(shape).astype(dtype)

    h, w, big, wide = f((5, 14)), f((4, 17)), f((12, 9)), f((70, 1200))
    raw = np.zeros(w.nbytes + 1, np.uint8)
    raw[1:] = np.frombuffer(w.tobytes(), np.uint8)
    odd = np.frombuffer(raw.data, dtype=dtype, count=w.size, offset=1).reshape(w.shape)
    assert not odd.flags.aligned
    return {
        "column slices of one output": (h[:, :7], h[:, 7:]),
        "columns at an offset": (w[:, 1:8], w[:, 9:16]),
        "a row step": (big[::2], big[1::2]),
        "one row": (h[:1, :7], h[:1, 7:]),
        "one column": (h[:, :1], h[:, 7:8]),
        "large, in parallel": (wide[:, :600], wide[:, 600:]),
        "Fortran order (copied)": (np.asfortranarray(big[:6]), big[6:]),
        "reversed rows (copied)": (h[::-1, :7], h[:, 7:]),
        "unaligned rows (copied)": (odd[:, 1:8], odd[:, 9:16]),
    }


@pytest.mark.parametrize("layout", list(_row_layouts(np.float64)))
def test_diag_gaussian_rows_read_at_their_strides(host, dtype, monkeypatch, layout):
    """The diagonal Gaussian one-call paths (sample, KL, log-density and their backward passes) read
    (B, D) rows at their strides (no copy) where the rows are contiguous and aligned, else copy:
    the general path's bits either way, and the compiled call answers."""
    mu, lv = _row_layouts(dtype)[layout]
    B, D = mu.shape
    rng = np.random.default_rng(13)
    gz, eps = (rng.standard_normal((B, D)).astype(dtype) for _ in range(2))
    gk = rng.standard_normal(B).astype(dtype)
    x = rng.standard_normal((B, D)).astype(dtype)
    calls = {
        "normal_log_prob": lambda: sampling.normal_log_prob(x, mu, lv),
        "normal_log_prob_backward": lambda: sampling.normal_log_prob_backward(x, mu, lv, grad_log_prob=gk),
        "normal_head": lambda: sampling.normal_head(mu, lv, seed=3),
        "rsample_normal": lambda: sampling.rsample_normal(mu, lv, seed=3),
        "kl_normal": lambda: sampling.kl_normal(mu, lv),
        "kl_normal_backward": lambda: sampling.kl_normal_backward(mu, lv, grad_kl=gk),
        "rsample_normal_backward": lambda: sampling.rsample_normal_backward(mu, lv, grad_z=gz, eps=eps),
        "normal_head_backward": lambda: sampling.normal_head_backward(mu, lv, grad_z=gz, grad_kl=gk, seed=3),
    }
    for name, call in calls.items():
        fast, general = both(call, monkeypatch)
        assert not raises(fast), name
        assert_same(fast, general)
    if host == "cpu":
        c = pygenmod._cpu_sampling
        assert c.normal_head_fast(mu, lv, 3, resolve_seed, 0, 0, True)[0] is not None
        assert c.kl_normal_fast(mu, lv) is not None
        assert c.kl_normal_backward_fast(mu, lv, gk) is not None
        assert c.normal_log_prob_fast(x, mu, lv) is not None
        assert c.normal_log_prob_backward_fast(x, mu, lv, gk) is not None
        assert c.normal_head_backward_fast(mu, lv, eps, None, resolve_seed, 0, 0, gz, gk, None)[0] is not None


def test_fast_path_copies_unaligned_arrays(dtype, rng, monkeypatch):
    """A C-contiguous but unaligned array (a buffer read at an odd offset) is copied, aligned,
    before the kernel's vector loops read it; the result is the general path's."""
    mu = rng.standard_normal((3, 5)).astype(dtype)
    raw = np.zeros(mu.nbytes + 1, np.uint8)
    raw[1:] = np.frombuffer(mu.tobytes(), np.uint8)
    odd = np.frombuffer(raw.data, dtype=dtype, count=mu.size, offset=1).reshape(mu.shape)
    assert not odd.flags.aligned and odd.flags.c_contiguous
    fast, general = both(lambda: sampling.kl_normal(odd, mu), monkeypatch)
    assert_same(fast, general)
    assert_same(fast, sampling.kl_normal(mu, mu))
    assert pygenmod._cpu_sampling.kl_normal_fast(odd, mu) is not None


def _diag_cases(dtype):
    rng = np.random.default_rng(2)
    mu, lv, x = (rng.standard_normal((3, 4)).astype(dtype) for _ in range(3))

    def with_(a, v):
        a = a.copy()
        a[1, 2] = v
        return a

    other = np.float32 if dtype == np.float64 else np.float64
    return {
        "nan mu": (with_(mu, np.nan), lv, x, {}),
        "inf logvar": (mu, with_(lv, np.inf), x, {}),
        "huge logvar": (mu, with_(lv, 1e4), x, {}),
        "nan x": (mu, lv, with_(x, np.nan), {}),
        "logvar shape": (mu, lv[:, :3], x, {}),
        "x shape": (mu, lv, x[:2], {}),
        "x with samples": (mu, lv, np.stack([x, x]), {}),
        "1-d": (mu[0], lv[0], x[0], {}),
        "3-d": (mu[None], lv[None], x[None], {}),
        "logvar other dtype": (mu, lv.astype(other), x, {}),
        "x other dtype": (mu, lv, x.astype(other), {}),
        "int mu": (np.ones((3, 4), np.int64), lv, x, {}),
        "non-contiguous": (np.asfortranarray(mu), lv, x, {}),
        "clamp": (mu, lv, x, {"clamp": (-1.0, 1.0)}),
        "log_q": (mu, lv, x, {"log_q": True}),
        "two samples": (mu, lv, x, {"n_samples": 2}),
        "seed too big": (mu, lv, x, {"seed": 2**64}),
        "stream negative": (mu, lv, x, {"stream": -1}),
        "offset float": (mu, lv, x, {"offset": 1.0}),
    }


@pytest.mark.parametrize("fn", ["normal_head", "kl_normal", "normal_log_prob"])
@pytest.mark.parametrize("case", list(_diag_cases(np.float64)))
def test_diag_gaussian_errors_and_edge_cases_equal(host, dtype, monkeypatch, fn, case):
    mu, lv, x, kw = _diag_cases(dtype)[case]
    fast, general = both(_diag_calls(mu, lv, x, kw)[fn], monkeypatch)
    assert_same(fast, general)


# ----------------------------------------------------------------------------- their backward passes
def _diag_backward_calls(mu, lv, x, g, gz, eps, kw):
    """The diagonal-Gaussian backward passes with one-call paths, on the same arguments."""
    seed = {"seed": 3} if "seed" not in kw else {}
    return {
        "kl_normal_backward": lambda: sampling.kl_normal_backward(mu, lv, grad_kl=g, **kw),
        "normal_log_prob_backward": lambda: sampling.normal_log_prob_backward(x, mu, lv, grad_log_prob=g, **kw),
        "rsample_normal_backward": lambda: sampling.rsample_normal_backward(mu, lv, grad_z=gz, eps=eps, **kw),
        "rsample_normal_backward, seeded": lambda: sampling.rsample_normal_backward(mu, lv, grad_z=gz, **seed, **kw),
        "normal_head_backward": lambda: sampling.normal_head_backward(
            mu, lv, grad_z=gz, grad_kl=g, grad_log_q=g, eps=eps, **kw
        ),
        "normal_head_backward, kl only, seeded": lambda: sampling.normal_head_backward(mu, lv, grad_kl=g, **seed, **kw),
    }


_DIAG_BACKWARD = list(_diag_backward_calls(*(None,) * 6, {}))
_DIAG_BACKWARD_FAST = {  # the compiled entry point of each and its arguments
    "kl_normal_backward": lambda mu, lv, x, g, gz, eps: ("kl_normal_backward_fast", (mu, lv, g)),
    "normal_log_prob_backward": lambda mu, lv, x, g, gz, eps: ("normal_log_prob_backward_fast", (x, mu, lv, g)),
    "rsample_normal_backward": lambda mu, lv, x, g, gz, eps: (
        "normal_head_backward_fast",
        (mu, lv, eps, 3, resolve_seed, 0, 0, gz, None, None),
    ),
}


@pytest.mark.parametrize("fn", _DIAG_BACKWARD)
@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (3, 33), (0, 5), (2, 0), (70, 300)])
def test_diag_gaussian_backward_fast_equals_general(host, dtype, rng, monkeypatch, fn, shape):
    mu, lv, x, gz, eps = (rng.standard_normal(shape).astype(dtype) for _ in range(5))
    g = rng.standard_normal(shape[:1]).astype(dtype)
    call = _diag_backward_calls(mu, lv, x, g, gz, eps, {})[fn]

    def f():
        pygenmod.random.manual_seed(11)  # (eps given with seed=None draws a key, as the general path)
        return call(), pygenmod.random.get_state()["counter"]

    fast, general = both(f, monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu" and fn in _DIAG_BACKWARD_FAST:
        name, args = _DIAG_BACKWARD_FAST[fn](mu, lv, x, g, gz, eps)
        res = getattr(pygenmod._cpu_sampling, name)(*args)
        assert (res[0] if name == "normal_head_backward_fast" else res) is not None


def _diag_backward_cases(dtype):
    rng = np.random.default_rng(2)
    mu, lv, x, gz, eps = (rng.standard_normal((3, 4)).astype(dtype) for _ in range(5))
    g = rng.standard_normal(3).astype(dtype)

    def with_(a, v):
        a = a.copy()
        a.flat[min(5, a.size - 1)] = v
        return a

    other = np.float32 if dtype == np.float64 else np.float64
    base = (mu, lv, x, g, gz, eps)

    def case(i, a, **kw):
        args = list(base)
        args[i] = a
        return (*args, kw)

    return {
        "nan mu": case(0, with_(mu, np.nan)),
        "huge logvar": case(1, with_(lv, 1e4)),
        "inf logvar": case(1, with_(lv, np.inf)),
        "nan x": case(2, with_(x, np.nan)),
        "nan upstream gradient": case(3, with_(g, np.nan)),
        "inf upstream gradient": case(3, with_(g, -np.inf)),
        "nan grad_z": case(4, with_(gz, np.nan)),
        "nan eps": case(5, with_(eps, np.nan)),
        "scalar upstream gradient": case(3, np.asarray(g[0])),
        "upstream gradient shape": case(3, g[:2]),
        "upstream gradient other dtype": case(3, g.astype(other)),
        "grad_z shape": case(4, gz[:, :3]),
        "eps shape": case(5, eps[:2]),
        "eps other dtype": case(5, eps.astype(other)),
        "logvar shape": case(1, lv[:, :3]),
        "logvar other dtype": case(1, lv.astype(other)),
        "1-d": (mu[0], lv[0], x[0], np.asarray(g[0]), gz[0], eps[0], {}),
        "non-contiguous": case(0, np.asfortranarray(mu)),
        "clamp": case(0, mu, clamp=(-1.0, 1.0)),
        "seed too big": case(0, mu, seed=2**64),
        "stream negative": case(0, mu, stream=-1),
        "offset float": case(0, mu, offset=1.0),
    }


@pytest.mark.parametrize("fn", _DIAG_BACKWARD)
@pytest.mark.parametrize("case", list(_diag_backward_cases(np.float64)))
def test_diag_gaussian_backward_errors_and_edge_cases_equal(host, dtype, monkeypatch, fn, case):
    *args, kw = _diag_backward_cases(dtype)[case]
    if fn.startswith("kl_normal") or fn.startswith("normal_log_prob"):
        kw = {k: v for k, v in kw.items() if k == "clamp"}
    call = _diag_backward_calls(*args, kw)[fn]

    def f():
        pygenmod.random.manual_seed(11)
        return call(), pygenmod.random.get_state()["counter"]

    fast, general = both(f, monkeypatch)
    assert_same(fast, general)


def _mvn_backward_calls(mu, L, g, gz, eps, kw):
    seed = {"seed": 3} if "seed" not in kw else {}
    return {
        "rsample_mvn_backward": lambda: sampling.rsample_mvn_backward(mu, L, grad_z=gz, eps=eps, **kw),
        "rsample_mvn_backward, seeded": lambda: sampling.rsample_mvn_backward(mu, L, grad_z=gz, **seed, **kw),
        "mvn_head_backward": lambda: sampling.mvn_head_backward(
            mu, L, grad_z=gz, grad_kl=g, grad_log_q=g, eps=eps, **kw
        ),
        "mvn_head_backward, kl only, seeded": lambda: sampling.mvn_head_backward(mu, L, grad_kl=g, **seed, **kw),
        "mvn_head_backward, log q only, seeded": lambda: sampling.mvn_head_backward(mu, L, grad_log_q=g, **seed, **kw),
    }


def _lower_factor(rng, shape, dtype):
    D = shape[-1]
    return (np.tril(0.3 * rng.standard_normal(shape)) + 2 * np.eye(D)).astype(dtype)


@pytest.mark.parametrize("fn", list(_mvn_backward_calls(*(None,) * 5, {})))
@pytest.mark.parametrize("B,D", [(1, 1), (1, 5), (3, 4), (2, 33), (0, 3), (9, 70)])
@pytest.mark.parametrize("shared", [False, True])
def test_mvn_backward_fast_equals_general(host, dtype, rng, monkeypatch, fn, B, D, shared):
    mu, gz, eps = (rng.standard_normal((B, D)).astype(dtype) for _ in range(3))
    L = _lower_factor(rng, (D, D) if shared else (B, D, D), dtype)
    g = rng.standard_normal(B).astype(dtype)
    call = _mvn_backward_calls(mu, L, g, gz, eps, {})[fn]

    def f():
        pygenmod.random.manual_seed(11)
        return call(), pygenmod.random.get_state()["counter"]

    fast, general = both(f, monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu" and fn == "rsample_mvn_backward":
        args = (mu, L, eps, 3, resolve_seed, 0, 0, gz, None, None)
        assert pygenmod._cpu_sampling.mvn_head_backward_fast(*args)[0] is not None


def _mvn_backward_cases(dtype):
    rng = np.random.default_rng(2)
    mu, gz, eps = (rng.standard_normal((3, 4)).astype(dtype) for _ in range(3))
    L, g = _lower_factor(rng, (3, 4, 4), dtype), rng.standard_normal(3).astype(dtype)
    other = np.float32 if dtype == np.float64 else np.float64

    def with_(a, v):
        a = a.copy()
        a.flat[min(5, a.size - 1)] = v
        return a

    base = (mu, L, g, gz, eps)

    def case(i, a, **kw):
        args = list(base)
        args[i] = a
        return (*args, kw)

    return {
        "nan mu": case(0, with_(mu, np.nan)),
        "nan L": case(1, with_(L, np.nan)),
        "upper L": case(1, L + np.triu(np.ones((4, 4)), 1).astype(dtype)),
        "L (1, D, D) for B = 3": case(1, L[:1]),
        "L shape": case(1, L[:, :3, :3]),
        "L other dtype": case(1, L.astype(other)),
        "nan upstream gradient": case(2, with_(g, np.nan)),
        "scalar upstream gradient": case(2, np.asarray(g[0])),
        "nan grad_z": case(3, with_(gz, np.inf)),
        "grad_z shape": case(3, gz[:2]),
        "eps shape": case(4, eps[:, :3]),
        "1-d": (mu[0], L[0], np.asarray(g[0]), gz[0], eps[0], {}),
        "two samples": (mu, L, g, gz[None].repeat(2, 0), eps[None].repeat(2, 0), {"n_samples": 2}),
        "seed too big": case(0, mu, seed=2**64),
        "stream negative": case(0, mu, stream=-1),
    }


@pytest.mark.parametrize("fn", list(_mvn_backward_calls(*(None,) * 5, {})))
@pytest.mark.parametrize("case", list(_mvn_backward_cases(np.float64)))
def test_mvn_backward_errors_and_edge_cases_equal(host, dtype, monkeypatch, fn, case):
    *args, kw = _mvn_backward_cases(dtype)[case]
    call = _mvn_backward_calls(*args, kw)[fn]

    def f():
        pygenmod.random.manual_seed(11)
        return call(), pygenmod.random.get_state()["counter"]

    fast, general = both(f, monkeypatch)
    assert_same(fast, general)


def test_head_backward_without_seed_or_eps_raises_on_both_paths(monkeypatch):
    mu = np.zeros((2, 3))
    fast, general = both(lambda: sampling.rsample_normal_backward(mu, mu, grad_z=mu), monkeypatch)
    assert raises(fast) and fast == general


# ----------------------------------------------------------------------------- random.uniform / normal / gumbel
@pytest.mark.parametrize("dist", ["uniform", "normal", "gumbel"])
@pytest.mark.parametrize(
    "shape", [(), 1, 7, (2, 4), (3, 0, 2), (0,), (2, 3, 5), (1000, 3), (300, 500), (1,) * 31 + (3,)], ids=repr
)
@pytest.mark.parametrize("seed", [9, None])
def test_random_fast_equals_general(host, dtype, monkeypatch, dist, shape, seed):
    draw = getattr(pygenmod.random, dist)

    def f():
        pygenmod.random.manual_seed(11)  # seed=None: the same key on both sides
        return draw(seed, shape, stream=3, offset=5, dtype=dtype), pygenmod.random.get_state()["counter"]

    fast, general = both(f, monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        assert pygenmod._cpu_sampling.fill_fast(9, resolve_seed, 3, 5, 1, shape, dtype == np.float64) is not None


@pytest.mark.parametrize(
    "kw",
    [
        {"shape": -1},
        {"shape": (2, -3)},
        {"shape": True},
        {"shape": (2, True)},
        {"shape": 2.0},
        {"shape": (2, 2.5)},
        {"shape": [2, 3]},
        {"shape": (np.int64(2), 3)},
        {"shape": (2**40, 2**40)},
        {"shape": (3, 2**21)},
        {"shape": "3"},
        {"shape": (1,) * 33},
        {"shape": (1,) * 65},
        {"dtype": np.float16},
        {"dtype": "float64"},
        {"dtype": np.dtype(np.float32)},
        {"device": "gpu"},
        {"seed": -1},
        {"seed": 2**64},
        {"seed": 1.0},
        {"stream": -1},
        {"offset": 2**64},
    ],
    ids=repr,
)
def test_random_errors_and_edge_cases_equal(host, monkeypatch, kw):
    a = {"seed": 4, "shape": (2, 3), **kw}
    fast, general = both(lambda: pygenmod.random.normal(**a), monkeypatch)
    assert_same(fast, general)


@pytest.mark.skipif(not _backend.is_available("cpu"), reason="the compiled extension is not built")
def test_random_fast_entry_declines_what_it_does_not_take():
    # fill_fast is a plain METH_FASTCALL function (csrc/bind/sampling.cpp): its own argument
    # count check, and None (the general path) for anything else it does not take
    fill = pygenmod._cpu_sampling.fill_fast
    with pytest.raises(TypeError, match="7 arguments"):
        fill(9, resolve_seed, 0, 0, 1, (2,))
    for dist in (-1, 3, True, 1.0, 2**70):
        assert fill(9, resolve_seed, 0, 0, dist, (2,), False) is None
    assert fill(9, resolve_seed, 0, 0, 1, (1,) * 33, False) is None  # beyond its 32 extents
    assert fill(9, resolve_seed, 0, 0, 1, (2**20, 2), False) is None  # beyond its element bound

    def failing_resolve(seed):
        raise ValueError("no key")

    with pytest.raises(ValueError, match="no key"):  # an error of the key's draw comes through
        fill(None, failing_resolve, 0, 0, 1, (2,), False)
    with pytest.raises(RuntimeError):  # a key that is not a uint64
        fill(None, lambda seed: -1, 0, 0, 1, (2,), False)


@pytest.mark.parametrize("kw", [{"stream": -1}, {"offset": 2**64}, {"stream": 1.0}, {"shape": (2, -3)}], ids=repr)
def test_random_rejected_default_seed_takes_the_general_paths_key(host, monkeypatch, kw):
    # the counter checks run in the compiled call before it draws a key (pygenmod._fast): a call
    # the general path rejects leaves the package generator as the general path alone does
    def f():
        pygenmod.random.manual_seed(11)
        try:
            pygenmod.random.normal(**{"seed": None, "shape": (2, 3), **kw})
        except (TypeError, ValueError) as exc:
            return type(exc), pygenmod.random.get_state()["counter"]

    fast, general = both(f, monkeypatch)
    assert fast == general and fast[0] is not None


# ----------------------------------------------------------------------------- gumbel_softmax
@pytest.mark.parametrize("shape", [(1,), (6,), (2, 6), (3, 2, 5), (0, 4), (400, 9)])
@pytest.mark.parametrize("temperature,hard", [(1.0, False), (0.3, True), (2, False)])
@pytest.mark.parametrize("seed", [4, None])
def test_gumbel_softmax_fast_equals_general(host, dtype, rng, monkeypatch, shape, temperature, hard, seed):
    logits = rng.standard_normal(shape).astype(dtype)
    if logits.size > 3:
        logits.flat[2] = -np.inf  # a masked category

    def f():
        pygenmod.random.manual_seed(11)  # seed=None: the same key on both sides
        out = sampling.gumbel_softmax(logits, temperature, seed=seed, hard=hard, stream=2, offset=7)
        return out, out.y is out.y_soft

    fast, general = both(f, monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        res, _ = pygenmod._cpu_sampling.gumbel_softmax_fast(logits, float(temperature), 4, resolve_seed, 2, 7, hard)
        assert res is not None


def _gumbel_cases():
    lg = np.random.default_rng(5).standard_normal((3, 5))

    def with_(v, where=(1, 2)):
        a = lg.copy()
        a[where] = v
        return a

    masked = lg.copy()
    masked[2] = -np.inf
    return {
        "nan": (with_(np.nan), {}),
        "+inf": (with_(np.inf), {}),
        "all masked": (masked, {}),
        "no categories": (lg[:, :0], {}),
        "scalar": (np.float64(1.0).reshape(()), {}),
        "float16": (lg.astype(np.float16), {}),
        "int logits": (np.ones((2, 3), np.int64), {}),
        "non-contiguous": (np.asfortranarray(lg), {}),
        "temperature 0": (lg, {"temperature": 0.0}),
        "temperature -1": (lg, {"temperature": -1}),
        "temperature inf": (lg, {"temperature": float("inf")}),
        "temperature nan": (lg, {"temperature": float("nan")}),
        "temperature bool": (lg, {"temperature": True}),
        "temperature numpy": (lg, {"temperature": np.float64(0.5)}),
        "temperature huge int": (lg, {"temperature": 10**400}),
        "temperature huge int, nan logits": (with_(np.nan), {"temperature": 10**400}),
        "hard as int": (lg, {"hard": 1}),
        "tau": (lg, {"tau": 0.5}),
        "seed negative": (lg, {"seed": -1}),
        "stream too big": (lg, {"stream": 2**64}),
    }


@pytest.mark.parametrize("case", list(_gumbel_cases()))
def test_gumbel_softmax_errors_and_edge_cases_equal(host, monkeypatch, case):
    lg, kw = _gumbel_cases()[case]
    a = {"seed": 3, **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # tau=
        fast, general = both(lambda: sampling.gumbel_softmax(lg, **a), monkeypatch)
    assert_same(fast, general)


@pytest.mark.parametrize("shape", [(1,), (6,), (2, 6), (3, 2, 5), (0, 4), (400, 9)])
@pytest.mark.parametrize("temperature", [1.0, 0.3, 2])
@pytest.mark.parametrize("with_logits", [False, True])
def test_gumbel_softmax_backward_fast_equals_general(host, dtype, rng, monkeypatch, shape, temperature, with_logits):
    """The backward from the forward's y_soft (the torch op's backward)."""
    logits = rng.standard_normal(shape).astype(dtype)
    y_soft = sampling.gumbel_softmax(logits, temperature, seed=3).y_soft
    g = rng.standard_normal(shape).astype(dtype)
    lg = logits if with_logits else None
    fast, general = both(
        lambda: sampling.gumbel_softmax_backward(lg, temperature, grad_y=g, y_soft=y_soft), monkeypatch
    )
    assert not raises(fast)
    assert_same(fast, general)
    regenerated = sampling.gumbel_softmax_backward(logits, temperature, grad_y=g, seed=3)
    assert_same(fast, regenerated)  # the same row kernel from the saved sample or from the seed
    if host == "cpu":
        assert pygenmod._cpu_sampling.gumbel_softmax_backward_fast(y_soft, float(temperature), g) is not None


def _gumbel_backward_cases():
    rng = np.random.default_rng(6)
    y = sampling.gumbel_softmax(rng.standard_normal((3, 5)), seed=1).y_soft
    g = rng.standard_normal((3, 5))

    def with_(a, v, where=(1, 2)):
        a = a.copy()
        a[where] = v
        return a

    return {
        "nan y_soft": (None, with_(y, np.nan), g, {}),
        "inf grad": (None, y, with_(g, np.inf), {}),
        "no categories": (None, y[:, :0], g[:, :0], {}),
        "scalar": (None, np.float64(0.5).reshape(()), np.float64(1.0).reshape(()), {}),
        "float16 y_soft": (None, y.astype(np.float16), g, {}),
        "float32 grad": (None, y, g.astype(np.float32), {}),
        "int grad": (None, y, np.ones((3, 5), np.int64), {}),
        "grad of another shape": (None, y, g[:2], {}),
        "non-contiguous y_soft": (None, np.asfortranarray(y), g, {}),
        "logits of another shape": (g[:, :4], y, g, {}),
        "logits as a list": (g.tolist(), y, g, {}),
        "temperature 0": (None, y, g, {"temperature": 0.0}),
        "temperature inf": (None, y, g, {"temperature": float("inf")}),
        "temperature bool": (None, y, g, {"temperature": True}),
        "temperature numpy": (None, y, g, {"temperature": np.float64(0.5)}),
        "temperature huge int, nan y_soft": (None, with_(y, np.nan), g, {"temperature": 10**400}),
        "temperature huge int": (None, y, g, {"temperature": 10**400}),
        "tau": (None, y, g, {"tau": 0.5}),
        "no rows, no categories": (None, y[:0, :0], g[:0, :0], {}),
        "3-d, no categories": (None, np.ones((2, 0, 3)), np.ones((2, 0, 3)), {}),
        "3-d": (None, np.stack([y, y]), np.stack([g, g]), {}),
        "big-endian y_soft": (None, y.astype(">f8"), g, {}),
        "read-only y_soft": (None, _read_only(y), _read_only(g), {}),
    }


@pytest.mark.parametrize("case", list(_gumbel_backward_cases()))
def test_gumbel_softmax_backward_errors_and_edge_cases_equal(host, monkeypatch, case):
    lg, y, g, kw = _gumbel_backward_cases()[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # tau=
        fast, general = both(lambda: sampling.gumbel_softmax_backward(lg, grad_y=g, y_soft=y, **kw), monkeypatch)
    assert_same(fast, general)


# ----------------------------------------------------------------------------- rsample_mvn, mvn_log_prob, kl_mvn
def _tril(rng, lead, D, dtype):
    L = np.tril(rng.standard_normal(lead + (D, D))) * 0.3
    idx = np.arange(D)
    L[..., idx, idx] = rng.uniform(0.5, 1.5, lead + (D,))
    return L.astype(dtype)


def _mvn_grad(x, mu):
    """An upstream gradient of the rows' result shape (x's leading axes), of mu's dtype."""
    return np.linspace(-1.5, 2.0, int(np.prod(x.shape[:-1]))).reshape(x.shape[:-1]).astype(mu.dtype)


def _mvn_calls(mu, L, x, kw):
    kw = dict(kw or {})
    g = kw.pop("grad") if "grad" in kw else None if x is None else _mvn_grad(x, mu)
    return {
        "rsample_mvn": lambda: sampling.rsample_mvn(mu, L, **{"seed": 3, **kw}),
        "mvn_head": lambda: sampling.mvn_head(mu, L, **{"seed": 3, **kw}),
        "mvn_log_prob": lambda: sampling.mvn_log_prob(x, mu, L),
        "kl_mvn": lambda: sampling.kl_mvn(mu, L),
        "mahalanobis": lambda: sampling.mahalanobis(x, mu, L),
        "mahalanobis, precision, not squared": lambda: sampling.mahalanobis(x, mu, precision_tril=L, squared=False),
        "mvn_log_prob_backward": lambda: sampling.mvn_log_prob_backward(x, mu, L, grad_log_prob=g),
        "kl_mvn_backward": lambda: sampling.kl_mvn_backward(mu, L, grad_kl=g),
        "mahalanobis_backward": lambda: sampling.mahalanobis_backward(x, mu, L, grad_mahalanobis=g),
        "mahalanobis_backward, precision, not squared": lambda: sampling.mahalanobis_backward(
            x, mu, precision_tril=L, squared=False, grad_mahalanobis=g
        ),
    }


_MVN_FAST = {  # the mvn_rows_fast (and mvn_rows_backward_fast) mode and squared flag of each
    "mvn_log_prob": (2, True),
    "mahalanobis": (0, True),
    "mahalanobis, precision, not squared": (1, False),
    "mvn_log_prob_backward": (2, True),
    "mahalanobis_backward": (0, True),
    "mahalanobis_backward, precision, not squared": (1, False),
}


@pytest.mark.parametrize("fn", list(_mvn_calls(*(None,) * 4)))
@pytest.mark.parametrize("B,D", [(1, 1), (2, 4), (5, 17), (0, 3), (300, 8)])
@pytest.mark.parametrize("shared", [False, True])
def test_mvn_fast_equals_general(host, dtype, rng, monkeypatch, fn, B, D, shared):
    mu, x = (rng.standard_normal((B, D)).astype(dtype) for _ in range(2))
    L = _tril(rng, () if shared else (B,), D, dtype)
    fast, general = both(_mvn_calls(mu, L, x, {})[fn], monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        if fn == "kl_mvn_backward":
            assert pygenmod._cpu_sampling.kl_mvn_backward_fast(mu, L, _mvn_grad(x, mu)) is not None
        elif fn.endswith("_backward") or "_backward," in fn:
            g = _mvn_grad(x, mu)
            assert pygenmod._cpu_sampling.mvn_rows_backward_fast(x, mu, L, *_MVN_FAST[fn], g) is not None
        elif fn in _MVN_FAST:
            assert pygenmod._cpu_sampling.mvn_rows_fast(x, mu, L, *_MVN_FAST[fn]) is not None
        else:
            out = {"rsample_mvn": 1, "mvn_head": 2}.get(fn, 0)  # MVN_HEAD_OUT: z, (z, kl) or kl
            args = (mu, L, 3 if out else 0, resolve_seed, 0, 0, out)
            assert pygenmod._cpu_sampling.mvn_head_fast(*args)[0] is not None

    def keys():  # seed=None takes one key per rsample_mvn or mvn_head call on either path; kl_mvn none
        pygenmod.random.manual_seed(5)
        z = sampling.rsample_mvn(mu, L), sampling.mvn_head(mu, L)
        sampling.kl_mvn(mu, L)
        return z, pygenmod.random.get_state()["counter"]

    fast, general = both(keys, monkeypatch)
    assert_same(fast, general)


def _mvn_cases(dtype):
    rng = np.random.default_rng(3)
    mu, x = (rng.standard_normal((3, 4)).astype(dtype) for _ in range(2))
    L = _tril(rng, (3,), 4, dtype)

    def with_(a, where, v):
        a = a.copy()
        a[where] = v
        return a

    other = np.float32 if dtype == np.float64 else np.float64
    return {
        "upper entry": (mu, with_(L, (1, 0, 2), 0.5), x, {}),
        "negative diagonal": (mu, with_(L, (2, 1, 1), -1.0), x, {}),
        "zero diagonal": (mu, with_(L, (0, 3, 3), 0.0), x, {}),
        "nan in L": (mu, with_(L, (1, 2, 0), np.nan), x, {}),
        "inf diagonal": (mu, with_(L, (1, 2, 2), np.inf), x, {}),
        "nan mu": (with_(mu, (1, 1), np.nan), L, x, {}),
        "nan x": (mu, L, with_(x, (2, 0), np.nan), {}),
        "L of 1 row": (mu, L[:1], x, {}),
        "L of another D": (mu, L[:, :3, :3], x, {}),
        "x with samples": (mu, L, np.stack([x, x]), {}),
        "1-d mu": (mu[0], L[0], x[0], {}),
        "L other dtype": (mu, L.astype(other), x, {}),
        "non-contiguous L": (mu, np.ascontiguousarray(L.transpose(0, 2, 1)).transpose(0, 2, 1), x, {}),
        "check off": (mu, L, x, {"check": False}),
        "two samples": (mu, L, x, {"n_samples": 2}),
        "seed negative": (mu, L, x, {"seed": -1}),
        "offset too big": (mu, L, x, {"offset": 2**64}),
        "nan grad": (mu, L, x, {"grad": with_(_mvn_grad(x, mu), 1, np.nan)}),
        "grad of shape (B, 1)": (mu, L, x, {"grad": _mvn_grad(x, mu)[:, None]}),
        "grad as a list": (mu, L, x, {"grad": _mvn_grad(x, mu).tolist()}),
        "grad of another dtype": (mu, L, x, {"grad": _mvn_grad(x, mu).astype(other)}),
        "grad of 2 rows": (mu, L, x, {"grad": _mvn_grad(x, mu)[:2]}),
        "strided grad": (mu, L, x, {"grad": np.repeat(_mvn_grad(x, mu), 2)[::2]}),
    }


def test_mahalanobis_options_equal(host, monkeypatch):
    rng = np.random.default_rng(4)
    mu, x = rng.standard_normal((2, 3, 4))
    L = _tril(rng, (3,), 4, np.float64)
    for call in (
        lambda: sampling.mahalanobis(x, mu, L, precision_tril=L),  # both factors: TypeError
        lambda: sampling.mahalanobis(x, mu),  # neither
        lambda: sampling.mahalanobis(x, mu, L, squared=1),  # a non-bool flag: the general path's
        lambda: sampling.mahalanobis(x, mu, L[0]),  # a shared factor
    ):
        fast, general = both(call, monkeypatch)
        assert_same(fast, general)


@pytest.mark.parametrize("fn", list(_mvn_calls(*(None,) * 4)))
@pytest.mark.parametrize("case", list(_mvn_cases(np.float64)))
def test_mvn_errors_and_edge_cases_equal(host, dtype, monkeypatch, fn, case):
    mu, L, x, kw = _mvn_cases(dtype)[case]
    fast, general = both(_mvn_calls(mu, L, x, kw)[fn], monkeypatch)
    assert_same(fast, general)


# ----------------------------------------------------------------------------- seed=None on failing calls
def _seeded_failures():
    """Calls of the seeded fast paths with seed=None that fail before, at or after the general
    path's own key draw (its checks of mu or logits come first, of the scale or factor after)."""
    rng = np.random.default_rng(8)
    mu, lv = rng.standard_normal((3, 4)), 0.1 * rng.standard_normal((3, 4))
    L = _tril(rng, (3,), 4, np.float64)
    nan_mu, big_lv, nan_lv, bad_L = mu.copy(), lv.copy(), lv.copy(), L.copy()
    nan_mu[1, 1], big_lv[0, 0], nan_lv[2, 3], bad_L[1, 0, 2] = np.nan, 1e4, np.nan, 1.0
    lg = rng.standard_normal((2, 5))
    nan_lg = lg.copy()
    nan_lg[0, 1] = np.nan
    return {
        "rsample_normal nan mu": lambda: sampling.rsample_normal(nan_mu, lv),
        "rsample_normal int mu": lambda: sampling.rsample_normal(np.ones((3, 4), np.int64), lv),
        "rsample_normal 3-d mu": lambda: sampling.rsample_normal(mu[None], lv[None]),
        "rsample_normal nan logvar": lambda: sampling.rsample_normal(mu, nan_lv),
        "rsample_normal huge logvar": lambda: sampling.rsample_normal(mu, big_lv),
        "rsample_normal logvar shape": lambda: sampling.rsample_normal(mu, lv[:, :3]),
        "normal_head nan mu": lambda: sampling.normal_head(nan_mu, lv),
        "normal_head nan logvar": lambda: sampling.normal_head(mu, nan_lv),
        "normal_head float32 logvar": lambda: sampling.normal_head(mu, lv.astype(np.float32)),
        "rsample_mvn nan mu": lambda: sampling.rsample_mvn(nan_mu, L),
        "rsample_mvn upper entry": lambda: sampling.rsample_mvn(mu, bad_L),
        "rsample_mvn factor shape": lambda: sampling.rsample_mvn(mu, L[:, :3, :3]),
        "gumbel_softmax nan": lambda: sampling.gumbel_softmax(nan_lg),
        "gumbel_softmax no categories": lambda: sampling.gumbel_softmax(lg[:, :0]),
        "gumbel_softmax scalar": lambda: sampling.gumbel_softmax(np.float64(1.0).reshape(())),
        "gumbel_softmax int": lambda: sampling.gumbel_softmax(np.ones((2, 3), np.int64)),
    }


def _result_and_counter(call, seed):
    """call()'s result (or its exception's type and message) and the package generator's counter
    after it, from manual_seed(seed)."""
    pygenmod.random.manual_seed(seed)
    try:
        out = call()
    except Exception as exc:  # noqa: BLE001 - compared
        out = (type(exc), str(exc))
    return out, pygenmod.random.get_state()["counter"]


@pytest.mark.parametrize("case", list(_seeded_failures()))
def test_seeded_fast_paths_take_the_general_paths_keys(host, monkeypatch, case):
    """seed=None: the package generator advances exactly as on the general path, also for calls
    that fail, and the retry after a fast path gave up with its key draws the same noise."""
    call = _seeded_failures()[case]
    fast, general = both(lambda: _result_and_counter(call, 21), monkeypatch)
    assert_same(fast, general)


def _given_noise_calls(dtype):
    rng = np.random.default_rng(8)
    mu, lv, gz, eps = (rng.standard_normal((3, 5)).astype(dtype) for _ in range(4))
    L = (np.tril(0.2 * rng.standard_normal((3, 5, 5))) + np.eye(5)).astype(dtype)
    gk = rng.standard_normal(3).astype(dtype)
    return {
        "rsample_normal": lambda: sampling.rsample_normal(mu, lv, eps=eps),
        "normal_head": lambda: sampling.normal_head(mu, lv, eps=eps),
        "rsample_mvn": lambda: sampling.rsample_mvn(mu, L, eps=eps),
        "rsample_normal_backward": lambda: sampling.rsample_normal_backward(mu, lv, grad_z=gz, eps=eps),
        "normal_head_backward": lambda: sampling.normal_head_backward(mu, lv, grad_z=gz, grad_kl=gk, eps=eps),
        "normal_head_backward log_std": lambda: sampling.normal_head_backward(mu, log_std=lv, grad_z=gz, eps=eps),
        "rsample_mvn_backward": lambda: sampling.rsample_mvn_backward(mu, L, grad_z=gz, eps=eps),
        "mvn_head_backward": lambda: sampling.mvn_head_backward(mu, L, grad_z=gz, grad_kl=gk, eps=eps),
        "eps of a wrong shape": lambda: sampling.rsample_normal_backward(mu, lv, grad_z=gz, eps=eps[:, :4]),
        "NaN grad_z": lambda: sampling.rsample_normal_backward(mu, lv, grad_z=np.full_like(gz, np.nan), eps=eps),
    }


@pytest.mark.parametrize("case", list(_given_noise_calls(np.float64)))
def test_given_noise_takes_no_key(host, dtype, monkeypatch, case):
    """seed=None with eps given: the call draws no noise, so it takes no key and the package
    generator stays where it is, on the fast and the general path alike (errors included); the
    result does not depend on the seed."""
    call = _given_noise_calls(dtype)[case]
    fast, general = both(lambda: _result_and_counter(call, 3), monkeypatch)
    assert_same(fast, general)
    pygenmod.random.manual_seed(3)
    assert fast[1] == pygenmod.random.get_state()["counter"]


def test_given_noise_with_a_generator_seed_advances_it_once(host, monkeypatch):
    """eps given and a numpy Generator as the seed: one key drawn from the Generator, as before,
    on the fast and the general path (a failing call too: its key is drawn first)."""
    rng = np.random.default_rng(8)
    mu, lv, gz, eps = (rng.standard_normal((3, 5)) for _ in range(4))

    def f(bad):
        gen = np.random.default_rng(4)
        e = eps[:, :4] if bad else eps
        try:
            out = sampling.rsample_normal_backward(mu, lv, grad_z=gz, eps=e, seed=gen)
        except Exception as exc:  # noqa: BLE001 - compared
            out = (type(exc), str(exc))
        return out, int(gen.integers(0, 2**63))

    for bad in (False, True):
        fast, general = both(lambda bad=bad: f(bad), monkeypatch)
        assert_same(fast, general)
        gen = np.random.default_rng(4)
        gen.integers(0, 2**64, dtype=np.uint64)  # the one key
        assert fast[1] == int(gen.integers(0, 2**63))


@pytest.mark.parametrize("kind", ["logvar", "log_std", "std"])
def test_rsample_only_vjp_equals_the_general_loop(host, dtype, kind):
    """rsample_normal_backward's loop without the KL and clamp terms (PATH_ONLY) gives the bits of
    the general loop run with those terms zero (grad_kl of zeros): signed zeros in grad_z, eps and
    mu, inf and NaN in mu, scales whose square overflows."""
    rng = np.random.default_rng(14)
    mu, p, gz, eps = (rng.standard_normal((4, 37)).astype(dtype) for _ in range(4))
    gz[0, :6], eps[1, :6], mu[2, :6] = -0.0, -0.0, -0.0
    gz[3, :3] = 0.0
    mu[3, 0], mu[3, 1], mu[3, 2] = np.inf, -np.inf, np.nan
    p[1, 7], p[1, 8] = (800.0, 90.0) if dtype == np.float64 else (100.0, 60.0)
    if kind == "std":
        p = (np.abs(p) + 0.1).astype(dtype)
    kw = {"logvar": {"logvar": p}, "log_std": {"log_std": p}, "std": {"std": p}}[kind]
    zeros = np.zeros(4, dtype)
    path = sampling.normal_head_backward(mu, grad_z=gz, eps=eps, **kw)
    general = sampling.normal_head_backward(mu, grad_z=gz, grad_kl=zeros, eps=eps, **kw)
    assert_same(path, general)


def test_torch_given_noise_takes_no_key():
    """The torch wrappers follow the same rule: eps given and seed=None take no key."""
    torch = pytest.importorskip("torch")
    import pygenmod.torch as pt

    mu, lv, eps = (torch.randn(3, 5, dtype=torch.float64, requires_grad=True) for _ in range(3))
    L = torch.eye(5, dtype=torch.float64).expand(3, 5, 5).clone().requires_grad_(True)
    pygenmod.random.manual_seed(3)
    before = pygenmod.random.get_state()["counter"]
    z = pt.rsample_normal(mu, lv, eps=eps.detach())
    z2 = pt.rsample_mvn(mu, L, eps=eps.detach())
    (z.sum() + z2.sum()).backward()
    assert pygenmod.random.get_state()["counter"] == before
    torch.testing.assert_close(z, mu + torch.exp(0.5 * lv) * eps)
    pt.rsample_normal(mu, lv)  # no eps: one key
    assert pygenmod.random.get_state()["counter"] == before + 1


# ----------------------------------------------------------------------------- spatial softmax
@pytest.mark.parametrize("shape", [(1, 4, 4, 4), (2, 3, 1, 5), (1, 2, 6, 1), (2, 1, 1, 1), (0, 2, 3, 3), (3, 5, 17, 9)])
@pytest.mark.parametrize("temperature", [1.0, 0.37])
def test_spatial_fast_equals_general(host, dtype, rng, monkeypatch, shape, temperature):
    x = rng.standard_normal(shape).astype(dtype)
    fast, general = both(lambda: spatial.spatial_softmax(x, temperature), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        assert pygenmod._cpu_spatial.forward_fast(x, temperature) is not None


def _spatial_cases(dtype):
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 5)).astype(dtype)

    def with_(v, where=(1, 2, 3, 4)):
        y = x.copy()
        y[where] = v
        return y

    neg_inf_map = x.copy()
    neg_inf_map[0, 1] = -np.inf
    return {
        "nan": (with_(np.nan), 1.0),
        "+inf": (with_(np.inf), 1.0),
        "-inf pixel": (with_(-np.inf), 1.0),
        "-inf map": (neg_inf_map, 1.0),
        "temperature 0": (x, 0.0),
        "temperature < 0": (x, -1.0),
        "temperature nan": (x, float("nan")),
        "temperature inf": (x, float("inf")),
        "temperature too small": (x, 1e-300),
        "x 3-d": (x[0], 1.0),
        "no pixels": (x[:, :, :0], 1.0),
        "float16": (x.astype(np.float16), 1.0),
        "int x": (np.ones((1, 1, 2, 2), np.int64), 1.0),
        "non-contiguous": (x.transpose(0, 1, 3, 2), 1.0),
        "overflowing logits": (with_(1e30) if dtype == np.float32 else with_(1e300), 1e-10),
    }


@pytest.mark.parametrize("case", list(_spatial_cases(np.float64)))
def test_spatial_errors_and_edge_cases_equal(host, dtype, monkeypatch, case):
    x, t = _spatial_cases(dtype)[case]
    fast, general = both(lambda: spatial.spatial_softmax(x, t), monkeypatch)
    assert_same(fast, general)


def _g_kp(x, rng=None):
    """grad_keypoints for x's (B, C) maps in x's dtype (float64 for other dtypes)."""
    B, C = x.shape[:2] if x.ndim == 4 else (1, 1)
    dt = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    return (rng or np.random.default_rng(9)).standard_normal((B, C, 2)).astype(dt)


@pytest.mark.parametrize("shape", [(1, 4, 4, 4), (2, 3, 1, 5), (1, 2, 6, 1), (2, 1, 1, 1), (0, 2, 3, 3), (3, 5, 17, 9)])
@pytest.mark.parametrize("temperature", [1.0, 0.37])
def test_spatial_backward_fast_equals_general(host, dtype, rng, monkeypatch, shape, temperature):
    x = rng.standard_normal(shape).astype(dtype)
    g = _g_kp(x, rng)
    fast, general = both(lambda: spatial.spatial_softmax_backward(x, temperature, grad_keypoints=g), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        assert pygenmod._cpu_spatial.backward_fast(x, temperature, g) is not None


def _spatial_backward_cases(dtype):
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 5)).astype(dtype)
    g = _g_kp(x)
    other = np.float32 if dtype == np.float64 else np.float64
    cases = {name: (xc, t, _g_kp(xc)) for name, (xc, t) in _spatial_cases(dtype).items()}
    nan_g = g.copy()
    nan_g[1, 2, 0] = np.nan
    cases.update(
        {
            "nan grad": (x, 1.0, nan_g),
            "grad of another shape": (x, 1.0, g[:, :2]),
            "grad in the other dtype": (x, 1.0, g.astype(other)),
            "non-contiguous grad": (x, 1.0, np.asfortranarray(g)),
            "int grad": (x, 1.0, np.ones(g.shape, np.int64)),
        }
    )
    return cases


@pytest.mark.parametrize("case", list(_spatial_backward_cases(np.float64)))
def test_spatial_backward_errors_and_edge_cases_equal(host, dtype, monkeypatch, case):
    x, t, g = _spatial_backward_cases(dtype)[case]
    fast, general = both(lambda: spatial.spatial_softmax_backward(x, t, grad_keypoints=g), monkeypatch)
    assert_same(fast, general)


@pytest.mark.parametrize("shape", [(1, 4, 4, 4), (2, 3, 1, 5), (2, 1, 1, 1), (0, 2, 3, 3), (3, 5, 17, 9)])
def test_spatial_forward_result_fast_equals_general(host, dtype, rng, monkeypatch, shape):
    """spatial_softmax_forward without cov and maps (the torch op's forward): keypoints and stats."""
    x = rng.standard_normal(shape).astype(dtype)
    fast, general = both(lambda: spatial.spatial_softmax_forward(x, 0.37, return_cov=False), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    assert fast.cov is None and fast.maps is None
    if host == "cpu":
        kp, stats = pygenmod._cpu_spatial.forward_fast(x, 0.37, True)
        assert_same((kp, stats), (fast.keypoints, fast.stats))


@pytest.mark.parametrize("case", list(_spatial_cases(np.float64)))
def test_spatial_forward_result_errors_equal(host, dtype, monkeypatch, case):
    x, t = _spatial_cases(dtype)[case]
    fast, general = both(lambda: spatial.spatial_softmax_forward(x, t, return_cov=False), monkeypatch)
    assert_same(fast, general)


@pytest.mark.parametrize("shape", [(1, 4, 4, 4), (2, 3, 1, 5), (0, 2, 3, 3), (3, 5, 17, 9)])
def test_spatial_backward_saved_fast_equals_general(host, dtype, rng, monkeypatch, shape):
    """The backward with the forward's saved keypoints and stats (the torch op's backward)."""
    x = rng.standard_normal(shape).astype(dtype)
    g = _g_kp(x, rng)
    with monkeypatch.context() as m:
        m.setattr(_fast, "ENABLED", False)
        saved = spatial.spatial_softmax_forward(x, 0.37, return_cov=False)
    fast, general = both(lambda: spatial.spatial_softmax_backward(x, 0.37, grad_keypoints=g, saved=saved), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    recomputed = spatial.spatial_softmax_backward(x, 0.37, grad_keypoints=g)
    assert_same(fast, recomputed)
    if host == "cpu":
        assert pygenmod._cpu_spatial.backward_fast(x, 0.37, g, saved.keypoints, saved.stats) is not None


def _spatial_saved_cases(dtype):
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 5)).astype(dtype)
    saved = spatial.spatial_softmax_forward(x, 1.0, return_cov=False)
    kp, stats = saved.keypoints, saved.stats
    other = np.float32 if dtype == np.float64 else np.float64
    nan_stats = stats.copy()
    nan_stats[0, 1, 1] = np.nan
    shifted = kp + 0.25  # saved values are used as given, not recomputed
    return x, {
        "as given": saved._replace(keypoints=shifted),
        "with cov": spatial.spatial_softmax_forward(x, 1.0, return_cov=True),
        "keypoints None": saved._replace(keypoints=None),
        "stats None": saved._replace(stats=None),
        "both None": saved._replace(keypoints=None, stats=None),
        "nan stats": saved._replace(stats=nan_stats),
        "keypoints of another shape": saved._replace(keypoints=kp[:, :2]),
        "stats in the other dtype": saved._replace(stats=stats.astype(other)),
        "non-contiguous keypoints": saved._replace(keypoints=np.asfortranarray(kp)),
        "keypoints as a list": saved._replace(keypoints=kp.tolist()),
        "keypoints in the other dtype": saved._replace(keypoints=kp.astype(other)),
        "big-endian stats": saved._replace(stats=stats.astype(stats.dtype.newbyteorder(">"))),
        "read-only": saved._replace(keypoints=_read_only(kp), stats=_read_only(stats)),
        "with maps, no cov": spatial.spatial_softmax_forward(x, 1.0, return_cov=False, return_maps=True),
        "a plain tuple": tuple(saved),
    }


@pytest.mark.parametrize("case", list(_spatial_saved_cases(np.float64)[1]))
def test_spatial_backward_saved_cases_equal(host, dtype, monkeypatch, case):
    x, cases = _spatial_saved_cases(dtype)
    g = _g_kp(x)
    saved = cases[case]
    fast, general = both(lambda: spatial.spatial_softmax_backward(x, 1.0, grad_keypoints=g, saved=saved), monkeypatch)
    assert_same(fast, general)


# ----------------------------------------------------------------------------- gmm.em_step
def _gmm_problem(rng, dtype, lead, N, K, D, ct):
    X = rng.standard_normal(lead + (N, D)).astype(dtype)
    resp = rng.dirichlet(np.ones(K), lead + (N,)).astype(dtype)
    return X, gmm.m_step(X, resp, covariance_type=ct)


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize(
    "lead,N,K,D", [((), 16, 3, 2), ((), 1, 1, 1), ((), 7, 2, 5), ((3,), 10, 2, 3), ((1,), 5, 4, 1)]
)
def test_em_step_fast_equals_general(host, dtype, rng, monkeypatch, ct, lead, N, K, D):
    X, p = _gmm_problem(rng, dtype, lead, N, K, D, ct)
    fast, general = both(lambda: gmm.em_step(X, p, reg_covar=1e-4), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        assert pygenmod._cpu_gmm.em_step_fast(X, *p[:4], gmm._CODE[ct], 1e-4) is not None


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_gmm_fast_paths_take_strided_data(host, dtype, rng, monkeypatch, ct):
    """X as two columns sliced from a wider data array (a strided view): the one-call paths copy
    it, as the general path does, and give its bits."""
    X, p = _gmm_problem(rng, dtype, (), 16, 3, 2, ct)
    wide = np.concatenate([X, rng.standard_normal((16, 1)).astype(dtype)], 1)
    Xs = wide[:, :2]
    for f in (lambda: gmm.em_step(Xs, p, reg_covar=1e-4), lambda: gmm.log_prob(Xs, p), lambda: gmm.predict(Xs, p)):
        fast, general = both(f, monkeypatch)
        assert not raises(fast)
        assert_same(fast, general)
    if host == "cpu":
        assert pygenmod._cpu_gmm.em_step_fast(Xs, *p[:4], gmm._CODE[ct], 1e-4) is not None


E_STEP_CALLS = {
    "e_step": lambda X, p: gmm.e_step(X, p),
    "log_prob": lambda X, p: gmm.log_prob(X, p),
    "log_prob component": lambda X, p: gmm.log_prob(X, p, per="component"),
    "log_prob weighted": lambda X, p: gmm.log_prob(X, p, per="weighted"),
    "predict_proba": lambda X, p: gmm.predict_proba(X, p),
    "predict": lambda X, p: gmm.predict(X, p),
    "bic": lambda X, p: gmm.bic(X, p),
    "aic": lambda X, p: gmm.aic(X, p),
}


@pytest.mark.parametrize("call", list(E_STEP_CALLS))
@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("lead,N,K,D", [((), 16, 3, 2), ((), 1, 1, 1), ((3,), 10, 2, 3)])
def test_e_step_family_fast_equals_general(host, dtype, rng, monkeypatch, call, ct, lead, N, K, D):
    X, p = _gmm_problem(rng, dtype, lead, N, K, D, ct)
    if call == "log_prob weighted" and K > 1:  # a zero weight: log 0 = -inf, as the general path
        w = p.weights.copy()
        w[..., 0] = 0
        p = p._replace(weights=w)
    fast, general = both(lambda: E_STEP_CALLS[call](X, p), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        assert pygenmod._cpu_gmm.e_step_fast(X, *p[:4], gmm._CODE[ct]) is not None


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("lead,N,K,D", [((), 16, 3, 2), ((), 1, 1, 1), ((3,), 10, 2, 3), ((), 5, 4, 2)])
def test_m_step_fast_equals_general(host, dtype, rng, monkeypatch, ct, lead, N, K, D):
    X = rng.standard_normal(lead + (N, D)).astype(dtype)
    resp = rng.dirichlet(np.ones(K), lead + (N,)).astype(dtype)
    resp[..., 0, :] = 0  # a point with no responsibility, and (N >= K) maybe an empty component
    fast, general = both(lambda: gmm.m_step(X, resp, covariance_type=ct, reg_covar=1e-4), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        assert pygenmod._cpu_gmm.m_step_fast(X, resp, gmm._CODE[ct], 1e-4) is not None


@pytest.mark.parametrize(
    "case",
    ["nan X", "negative resp", "nan resp", "resp of another N", "1-d resp", "resp in another dtype", "no points"],
)
def test_m_step_errors_and_edge_cases_equal(host, dtype, monkeypatch, case):
    rng = np.random.default_rng(8)
    X = rng.standard_normal((6, 2)).astype(dtype)
    resp = rng.dirichlet(np.ones(3), 6).astype(dtype)
    if case == "nan X":
        X[1, 1] = np.nan
    elif case == "negative resp":
        resp[2, 0] = -0.5
    elif case == "nan resp":
        resp[2, 0] = np.nan
    elif case == "resp of another N":
        resp = resp[:4]
    elif case == "1-d resp":
        resp = resp[:, 0].copy()
    elif case == "resp in another dtype":
        resp = resp.astype(np.float32 if dtype == np.float64 else np.float64)
    else:
        X, resp = X[:0], resp[:0]
    fast, general = both(lambda: gmm.m_step(X, resp), monkeypatch)
    assert_same(fast, general)


def test_em_step_fast_path_leaves_large_problems(rng, monkeypatch):
    X, p = _gmm_problem(rng, np.float64, (), 20000, 2, 2, "full")  # N * K * D over the fast path's limit
    assert pygenmod._cpu_gmm.em_step_fast(X, *p[:4], 0, 1e-6) is None
    fast, general = both(lambda: gmm.em_step(X, p), monkeypatch)
    assert_same(fast, general)


def _em_step_cases(dtype):
    X, p = _gmm_problem(np.random.default_rng(4), dtype, (), 9, 3, 2, "full")
    Xb, pb = _gmm_problem(np.random.default_rng(5), dtype, (2,), 9, 3, 2, "diag")

    def with_(p, field, where, v):
        a = getattr(p, field).copy()
        a[where] = v
        return p._replace(**{field: a})

    return {
        "nan X": (np.where(X > 1, np.nan, X), p, 1e-6),
        "inf mean": (X, with_(p, "means", (0, 1), np.inf), 1e-6),
        "nan covariance": (X, with_(p, "covariances", (1, 0, 0), np.nan), 1e-6),
        "negative weight": (X, with_(p, "weights", 0, -0.1), 1e-6),
        "zero weights": (X, p._replace(weights=np.zeros_like(p.weights)), 1e-6),
        "zero Cholesky diagonal": (X, with_(p, "precisions_cholesky", (2, 1, 1), 0.0), 1e-6),
        "negative diag precision": (Xb, with_(pb, "precisions_cholesky", (1, 2, 0), -1.0), 1e-6),
        "negative reg": (X, p, -1e-3),
        "nan reg": (X, p, float("nan")),
        "X 1-d": (X[:, 0], p, 1e-6),
        "no points": (X[:0], p, 1e-6),
        "wrong D": (X[:, :1], p, 1e-6),
        "batched X, single params": (Xb, p, 1e-6),
        "single X, batched params": (X, pb._replace(covariance_type="diag"), 1e-6),
        "params in the other dtype": (
            X,
            p._replace(means=p.means.astype(np.float32 if dtype == np.float64 else np.float64)),
            1e-6,
        ),
        "non-contiguous X": (np.asfortranarray(X), p, 1e-6),
        "int X": (np.ones((4, 2), np.int64), p, 1e-6),
        "X None": (None, p, 1e-6),
        "unknown covariance type": (X, p._replace(covariance_type="banded"), 1e-6),
        "covariances None": (X, p._replace(covariances=None), 1e-6),
        "integer reg": (X, p, 0),
        "tuple params": (X, tuple(p), 1e-6),
    }


@pytest.mark.parametrize("case", list(_em_step_cases(np.float64)))
def test_em_step_errors_and_edge_cases_equal(host, dtype, monkeypatch, case):
    X, p, reg = _em_step_cases(dtype)[case]
    fast, general = both(lambda: gmm.em_step(X, p, reg_covar=reg), monkeypatch)
    assert_same(fast, general)


@pytest.mark.parametrize("call", list(E_STEP_CALLS))
@pytest.mark.parametrize("case", [c for c in _em_step_cases(np.float64) if "reg" not in c])
def test_e_step_family_errors_and_edge_cases_equal(host, dtype, monkeypatch, call, case):
    X, p, _ = _em_step_cases(dtype)[case]
    fast, general = both(lambda: E_STEP_CALLS[call](X, p), monkeypatch)
    assert_same(fast, general)


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("lead,K,D,n", [((), 3, 2, 4), ((), 1, 1, 1), ((3,), 2, 3, 17), ((), 4, 2, 20000)])
@pytest.mark.parametrize("seed,stream", [(1, 0), (2**64 - 1, 2**64 - 2)])
def test_sample_fast_equals_general(host, dtype, rng, monkeypatch, ct, lead, K, D, n, seed, stream):
    """gmm.sample; n = 20000 at D = 2 is past the fast path's size limit (the general path)."""
    _, p = _gmm_problem(rng, dtype, lead, 8, K, D, ct)
    fast, general = both(lambda: gmm.sample(p, n, seed=seed, stream=stream), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        res = pygenmod._cpu_gmm.sample_fast(*p[:4], gmm._CODE[ct], n, seed, stream)
        assert (res is None) == (n * D > 65536)


@pytest.mark.parametrize(
    "case", [c for c in _em_step_cases(np.float64) if "reg" not in c] + ["n 0", "n -1", "n 2.0", "n 2**62", "n 2**63"]
)
def test_sample_errors_and_edge_cases_equal(host, dtype, monkeypatch, case):
    """The parameter cases of em_step (X is not used here), and bad sample counts."""
    _, p, _ = _em_step_cases(dtype)["nan X" if case.startswith("n ") else case]
    n = {"n 0": 0, "n -1": -1, "n 2.0": 2.0, "n 2**62": 2**62, "n 2**63": 2**63}.get(case, 5)
    fast, general = both(lambda: gmm.sample(p, n, seed=3), monkeypatch)
    assert_same(fast, general)


def test_sample_draws_one_key(monkeypatch):
    """seed=None takes one key from the package generator per call, on either path."""
    _, p = _gmm_problem(np.random.default_rng(2), np.float64, (), 8, 2, 2, "diag")

    def f():
        pygenmod.random.manual_seed(5)
        return gmm.sample(p, 3), gmm.sample(p._replace(weights=p.weights.astype(np.float32)), 3), gmm.sample(p, 3)

    fast, general = both(f, monkeypatch)
    assert_same(fast, general)


# ----------------------------------------------------------------------------- cem.cem_step
def _cem_problem(rng, dtype, B, N, D, ties=False):
    mean = rng.standard_normal((B, D)).astype(dtype)
    std = rng.uniform(0.1, 2.0, (B, D)).astype(dtype)
    X = (mean[:, None] + std[:, None] * rng.standard_normal((B, N, D))).astype(dtype)
    R = rng.standard_normal((B, N)).astype(dtype)
    if ties:
        R = np.round(R)  # many equal returns: ties go to the lower index on both paths
    return mean, std, X, R


@pytest.mark.parametrize("B,N,D,k", [(1, 8, 2, 2), (4, 64, 3, 8), (3, 5, 1, 5), (2, 40, 7, 1), (1, 300, 2, 30)])
@pytest.mark.parametrize("alpha,min_std,reg", [(0.0, 0.0, 0.0), (0.3, 0.05, 1e-3), (0.9, 10.0, 0.5)])
@pytest.mark.parametrize("ties", [False, True])
def test_cem_step_fast_equals_general(host, dtype, rng, monkeypatch, B, N, D, k, alpha, min_std, reg, ties):
    mean, std, X, R = _cem_problem(rng, dtype, B, N, D, ties)
    call = lambda: cem.cem_step(mean, std, X, R, k, alpha=alpha, min_std=min_std, reg=reg)  # noqa: E731
    fast, general = both(call, monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        assert pygenmod._cpu_cem.cem_step_fast(mean, std, X, R, k, alpha, min_std, reg) is not None


def _cem_step_cases(dtype):
    mean, std, X, R = _cem_problem(np.random.default_rng(6), dtype, 2, 10, 3)

    def with_(a, where, v):
        a = a.copy()
        a[where] = v
        return a

    base = dict(mean=mean, std=std, X=X, R=R, k=3, alpha=0.0, min_std=0.0, reg=0.0)
    cases = {
        "nan return": dict(R=with_(R, (1, 2), np.nan)),
        "inf sample": dict(X=with_(X, (0, 1, 2), np.inf)),
        "nan mean": dict(mean=with_(mean, (1, 0), np.nan)),
        "negative std": dict(std=with_(std, (0, 0), -1.0)),
        "k = 0": dict(k=0),
        "k > N": dict(k=11),
        "alpha 1": dict(alpha=1.0),
        "alpha < 0": dict(alpha=-0.1),
        "min_std < 0": dict(min_std=-1.0),
        "min_std nan": dict(min_std=float("nan")),
        "negative reg": dict(reg=-1.0),
        "samples of another D": dict(X=X[:, :, :2].copy()),
        "returns of another N": dict(R=R[:, :4].copy()),
        "std of another shape": dict(std=std[:1].copy()),
        "no problems": dict(mean=mean[:0], std=std[:0], X=X[:0], R=R[:0]),
        "1-d mean": dict(mean=mean[0]),
        "samples in the other dtype": dict(X=X.astype(np.float32 if dtype == np.float64 else np.float64)),
        "non-contiguous samples": dict(X=np.asfortranarray(X)),
        "int mean": dict(mean=np.zeros((2, 3), np.int64)),
        "integer alpha": dict(alpha=0),
    }
    return {name: {**base, **c} for name, c in cases.items()}


@pytest.mark.parametrize("case", list(_cem_step_cases(np.float64)))
def test_cem_step_errors_and_edge_cases_equal(host, dtype, monkeypatch, case):
    a = _cem_step_cases(dtype)[case]
    call = lambda: cem.cem_step(  # noqa: E731
        a["mean"], a["std"], a["X"], a["R"], a["k"], alpha=a["alpha"], min_std=a["min_std"], reg=a["reg"]
    )
    fast, general = both(call, monkeypatch)
    assert_same(fast, general)


# ----------------------------------------------------------------------------- cem.top_k
@pytest.mark.parametrize(
    "shape,k", [((16,), 8), ((1, 16), 8), ((3, 17), 5), ((2, 4, 31), 31), ((5, 64), 17), ((4, 9), 0)]
)
@pytest.mark.parametrize("ties", [False, True])
def test_top_k_fast_equals_general(host, dtype, rng, monkeypatch, shape, k, ties):
    x = rng.standard_normal(shape).astype(dtype)
    if ties:
        x = np.round(x)
    fast, general = both(lambda: cem.top_k(x, k), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        assert pygenmod._cpu_cem.top_k_fast(x, k) is not None


def _top_k_cases():
    x = np.random.default_rng(3).standard_normal((3, 10))

    def with_(v):
        a = x.copy()
        a[1, 4] = v
        return a

    return {
        "nan": (with_(np.nan), 3),
        "inf": (with_(np.inf), 3),
        "-inf": (with_(-np.inf), 3),
        "k > N": (x, 11),
        "k < 0": (x, -1),
        "bool k": (x, True),
        "float k": (x, 3.0),
        "numpy int k": (x, np.int64(3)),
        "huge k": (x, 2**70),
        "no columns": (x[:, :0], 0),
        "no rows": (x[:0], 2),
        "scalar": (np.float64(1.0).reshape(()), 0),
        "int array": (np.arange(12).reshape(3, 4), 2),
        "non-contiguous": (np.asfortranarray(x), 2),
        "big-endian": (x.astype(">f8"), 2),
        "large": (np.random.default_rng(4).standard_normal((70, 1000)), 9),
    }


@pytest.mark.parametrize("case", list(_top_k_cases()))
def test_top_k_errors_and_edge_cases_equal(host, monkeypatch, case):
    x, k = _top_k_cases()[case]
    fast, general = both(lambda: cem.top_k(x, k), monkeypatch)
    assert_same(fast, general)


# ----------------------------------------------------------------------------- categorical
def _categorical_call(fn, x, q, a, g):
    """(args, kwargs) of categorical.fn on logits x (and q), actions a, upstream gradient g."""
    return {
        "log_prob": ((x, a), {}),
        "entropy": ((x,), {}),
        "kl": ((x, q), {}),
        "log_prob_backward": ((x, a), {"grad_log_prob": g}),
        "entropy_backward": ((x,), {"grad_entropy": g}),
        "kl_backward": ((x, q), {"grad_kl": g}),
    }[fn]


def _assert_categorical_fast_takes(host, monkeypatch, fn, args, kw):
    """categorical.fn(*args, **kw): the one-call path's result is the general path's, bit for bit,
    and on the cpu host the compiled call takes it (kw in the binding's positional order)."""
    fast, general = both(lambda: getattr(categorical, fn)(*args, **kw), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        assert getattr(pygenmod._cpu_categorical, fn + "_fast")(*args, *kw.values()) is not None


@pytest.mark.parametrize("shape", [(1,), (6,), (2, 6), (3, 1), (2, 3, 17), (4, 0, 5), (70, 600)])
@pytest.mark.parametrize("fn", ["log_prob", "entropy", "kl", "log_prob_backward", "entropy_backward", "kl_backward"])
def test_categorical_fast_equals_general(host, dtype, rng, monkeypatch, shape, fn):
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    q = (3 * rng.standard_normal(shape)).astype(dtype)
    a = rng.integers(0, shape[-1], shape[:-1])
    g = rng.standard_normal(shape[:-1]).astype(dtype)
    _assert_categorical_fast_takes(host, monkeypatch, fn, *_categorical_call(fn, x, q, a, g))


@pytest.mark.parametrize("fn", ["log_prob", "entropy", "kl", "log_prob_backward", "entropy_backward", "kl_backward"])
def test_categorical_fast_path_takes_strided_views(host, dtype, rng, monkeypatch, fn):
    """An actor-critic head's logits out[:, :A] (a strided view), actions a column of a batch
    array: the one-call path copies them, as the general path does, and gives its bits."""
    out = rng.standard_normal((6, 5)).astype(dtype)
    x, q = out[:, :4], out[:, 1:]
    a = rng.integers(0, 4, (6, 2))[:, 1]
    g = rng.standard_normal((6, 2)).astype(dtype)[:, 0]
    _assert_categorical_fast_takes(host, monkeypatch, fn, *_categorical_call(fn, x, q, a, g))


@pytest.mark.parametrize("shape", [(6,), (2, 6), (3, 1), (2, 3, 17), (4, 0, 5), (70, 600)])
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("fn", ["log_prob", "entropy", "kl", "log_prob_backward", "entropy_backward", "kl_backward"])
def test_categorical_fast_path_takes_masks(host, dtype, rng, monkeypatch, shape, shared, fn):
    """Action masks (bool, of the logits' shape or one (K,) row for every row) take the one-call
    path: its results are the general path's, bit for bit. Masked logits hold NaN and inf (never
    read); some actions are masked (-inf log-probabilities, NaN gradient rows)."""
    m = rng.random(shape[-1:] if shared else shape) < 0.6
    m[..., 0] = True  # no row masks every action
    x = np.where(m, 3 * rng.standard_normal(shape), np.nan).astype(dtype)
    q = np.where(m, 3 * rng.standard_normal(shape), np.inf).astype(dtype)
    a = rng.integers(0, shape[-1], shape[:-1])
    g = rng.standard_normal(shape[:-1]).astype(dtype)
    args, kw = _categorical_call(fn, x, q, a, g)
    _assert_categorical_fast_takes(host, monkeypatch, fn, args, {**kw, "mask": m})


def _categorical_mask_cases():
    """(fn, args, kwargs) of masked calls that the one-call path declines or flags: the general
    path's results and errors."""
    rng = np.random.default_rng(5)
    x, q = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    a, g = np.array([0, 3, 1]), np.array([0.5, -1.0, 2.0])
    m = np.array([[1, 0, 1, 1], [1, 1, 0, 1], [0, 1, 1, 0]], bool)
    wide = np.repeat(m, 2, axis=1)
    all_masked = m.copy()
    all_masked[1] = False
    nan_allowed = x.copy()
    nan_allowed[1, 0] = np.nan
    lp, ent, kl = "log_prob_backward", "entropy_backward", "kl_backward"
    return {
        "0/1 integer mask": ("entropy", (x,), {"mask": m.astype(np.int64)}),
        "integer mask holding 2": ("entropy", (x,), {"mask": m.astype(np.int64) * 2}),
        "float mask": ("log_prob", (x, a), {"mask": m.astype(float)}),
        "mask of another shape": ("entropy", (x,), {"mask": m[:2]}),
        "shared mask of another length": ("kl", (x, q), {"mask": m[0, :3]}),
        "mask as a list": ("entropy", (x,), {"mask": m.tolist()}),
        "strided mask": ("entropy", (x,), {"mask": wide[:, ::2]}),
        "Fortran-ordered mask": (ent, (x,), {"grad_entropy": g, "mask": np.asfortranarray(m)}),
        "row masks every action": ("log_prob", (x, a), {"mask": all_masked}),
        "row masks every action (backward)": (ent, (x,), {"grad_entropy": g, "mask": all_masked}),
        "masked action": ("log_prob", (x, np.array([1, 0, 0])), {"mask": m}),
        "masked action (backward)": (lp, (x, np.array([1, 0, 0])), {"grad_log_prob": g, "mask": m}),
        "NaN at an allowed action": ("entropy", (nan_allowed,), {"mask": m}),
        "NaN at a masked action": ("entropy", (np.where(m, x, np.nan),), {"mask": m}),
        "separate q_mask": ("kl", (x, q), {"mask": m, "q_mask": m[::-1].copy()}),
        "separate q_mask (backward)": (kl, (x, q), {"grad_kl": g, "mask": m, "q_mask": np.ones_like(m)}),
        "1-d logits, shared mask": ("log_prob", (x[0], np.array(2)), {"mask": m[0]}),
    }


def _categorical_cases():
    x = np.random.default_rng(5).standard_normal((3, 4))
    a = np.array([0, 3, 1])

    def with_(v):
        b = x.copy()
        b[1, 2] = v
        return b

    return {
        "nan logit": ("entropy", (with_(np.nan),)),
        "inf logit": ("log_prob", (with_(np.inf), a)),
        "-inf logit": ("kl", (x, with_(-np.inf))),
        "action out of range": ("log_prob", (x, np.array([0, 4, 1]))),
        "negative action": ("log_prob", (x, np.array([0, -1, 1]))),
        "int32 actions": ("log_prob", (x, a.astype(np.int32))),
        "actions of another shape": ("log_prob", (x, a[:2])),
        "float actions": ("log_prob", (x, a.astype(float))),
        "empty actions axis": ("entropy", (x[:, :0],)),
        "scalar logits": ("entropy", (np.float64(1.0).reshape(()),)),
        "int logits": ("entropy", (np.arange(12).reshape(3, 4),)),
        "non-contiguous": ("entropy", (np.asfortranarray(np.ones((3, 4))),)),
        "big-endian": ("kl", (x.astype(">f8"), x.astype(">f8"))),
        "p of another dtype": ("kl", (x.astype(np.float32), x)),
        "p of another shape": ("kl", (x[:2], x)),
        "list": ("entropy", (x.tolist(),)),
    }


def _categorical_backward_cases():
    x = np.random.default_rng(5).standard_normal((3, 4))
    a, g = np.array([0, 3, 1]), np.array([0.5, -1.0, 2.0])

    def with_(v):
        b = x.copy()
        b[1, 2] = v
        return b

    g_nan = g.copy()
    g_nan[1] = np.nan

    lp, ent, kl = "log_prob_backward", "entropy_backward", "kl_backward"
    return {
        "nan logit": (ent, (with_(np.nan),), {"grad_entropy": g}),
        "inf logit": (lp, (with_(np.inf), a), {"grad_log_prob": g}),
        "-inf q logit": (kl, (x, with_(-np.inf)), {"grad_kl": g}),
        "nan upstream gradient": (lp, (x, a), {"grad_log_prob": g_nan}),
        "action out of range": (lp, (x, np.array([0, 4, 1])), {"grad_log_prob": g}),
        "int32 actions": (lp, (x, a.astype(np.int32)), {"grad_log_prob": g}),
        "float32 upstream gradient": (ent, (x,), {"grad_entropy": g.astype(np.float32)}),
        "scalar upstream gradient": (ent, (x,), {"grad_entropy": np.float64(2.0)}),
        "0-d upstream gradient": (kl, (x, x[::-1].copy()), {"grad_kl": np.array(2.0)}),
        "Python float upstream gradient": (lp, (x, a), {"grad_log_prob": 2.0}),
        "upstream gradient of another shape": (ent, (x,), {"grad_entropy": g[:2]}),
        "strided upstream gradient": (ent, (x,), {"grad_entropy": np.repeat(g, 2)[::2]}),
        "p of another dtype": (kl, (x.astype(np.float32), x), {"grad_kl": g}),
        "non-contiguous logits": (ent, (np.asfortranarray(np.ones((3, 4))),), {"grad_entropy": g}),
    }


@pytest.mark.parametrize(
    "case", list(_categorical_cases()) + list(_categorical_backward_cases()) + list(_categorical_mask_cases())
)
def test_categorical_errors_and_edge_cases_equal(host, monkeypatch, case):
    fn, args, kw = {
        **{k: v + ({},) for k, v in _categorical_cases().items()},
        **_categorical_backward_cases(),
        **_categorical_mask_cases(),
    }[case]
    fast, general = both(lambda: getattr(categorical, fn)(*args, **kw), monkeypatch)
    assert_same(fast, general)


# ----------------------------------------------------------------------------- categorical.policy_target_kl
def _policy_target_calls(w, x, g, mask):
    kw = {} if mask is None else {"mask": mask}
    return {
        "policy_target_kl": lambda: categorical.policy_target_kl(w, x, **kw),
        "policy_target_kl_backward": lambda: categorical.policy_target_kl_backward(w, x, grad_kl=g, **kw),
    }


@pytest.mark.parametrize("shape", [(1, 1), (2, 4), (3, 2, 9), (5, 130), (2, 8300), (0, 3)])
@pytest.mark.parametrize("mask", [None, "rows", "shared"])
def test_policy_target_kl_fast_equals_general(host, dtype, rng, monkeypatch, shape, mask):
    """Visit-count weights (zeros included) against logits, masked or not: the one-call path
    normalises the weights as NumPy does (row sums in its order: 130 and 8300 entries cross
    its pairwise blocks and slices) and gives the general path's bits."""
    w = (rng.integers(0, 4, shape) * rng.random(shape)).astype(dtype)
    w[..., 0] += 1  # every row has mass
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    g = rng.standard_normal(shape[:-1]).astype(dtype)
    m = None
    if mask is not None:
        m = rng.random(shape[-1:] if mask == "shared" else shape) < 0.7
        m[..., 0] = True
        w = np.where(m, w, 0).astype(dtype)  # no weight on a masked action
    for name, call in _policy_target_calls(w, x, g, m).items():
        fast, general = both(call, monkeypatch)
        assert not raises(fast), name
        assert_same(fast, general)
    if host == "cpu":
        chunk = pygenmod.adversarial.numpy_sum_chunk()
        assert pygenmod._cpu_categorical.policy_target_kl_fast(w, x, m, chunk) is not None
        assert pygenmod._cpu_categorical.policy_target_kl_fast(w, x, m, chunk, g) is not None


def _policy_target_cases():
    rng = np.random.default_rng(9)
    w, x = rng.random((3, 4)), rng.standard_normal((3, 4))
    g = rng.standard_normal(3)
    m = np.array([[1, 0, 1, 1], [1, 1, 0, 1], [0, 1, 1, 1]], bool)

    def with_(a, where, v):
        a = a.copy()
        a[where] = v
        return a

    return {
        "negative weight": (with_(w, (1, 2), -0.5), x, g, None),
        "NaN weight": (with_(w, (0, 1), np.nan), x, g, None),
        "inf weight": (with_(w, (2, 3), np.inf), x, g, None),
        "a row of zero weights": (with_(w, 1, 0.0), x, g, None),
        "weight on a masked action": (w, x, g, m),
        "NaN logit": (w, with_(x, (1, 1), np.nan), g, None),
        "NaN upstream gradient": (w, x, with_(g, 1, np.nan), None),
        "float32 weights, float64 logits": (w.astype(np.float32), x, g, None),
        "weights as a list": (w.tolist(), x, g, None),
        "strided weights": (np.repeat(w, 2, 1)[:, ::2], x, g, None),
        "weights of another shape": (w[:, :3], x, g, None),
        "a 0-d upstream gradient": (w, x, np.array(0.5), None),
        "an int mask": (w, x, g, m.astype(int)),
        "-0.0 weights": (with_(w, (0, 0), -0.0), x, g, None),
    }


@pytest.mark.parametrize("case", list(_policy_target_cases()))
def test_policy_target_kl_errors_and_edge_cases_equal(host, monkeypatch, case):
    for call in _policy_target_calls(*_policy_target_cases()[case]).values():
        fast, general = both(call, monkeypatch)
        assert_same(fast, general)


# ----------------------------------------------------------------------------- categorical.pg_loss
@pytest.mark.parametrize("shape", [(1,), (7,), (2, 6), (3, 1, 9), (2, 129), (1, 8300), (4, 0)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_entropy", [False, True])
def test_pg_loss_fast_equals_general(dtype, rng, monkeypatch, shape, reduction, with_entropy):
    """GAIL's surrogate in one compiled pass: each entry and gradient rounded as NumPy's
    expression, the row sums in NumPy's order (129 and 8300 entries cross its pairwise blocks)."""
    lp = (-3 * rng.random(shape)).astype(dtype)
    q, h = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    for q_is in ("reward", "cost"):
        kw = dict(lam=0.37, q_is=q_is, reduction=reduction) if with_entropy else dict(q_is=q_is, reduction=reduction)
        args = (lp, q, h) if with_entropy else (lp, q)
        fast, general = both(lambda args=args, kw=kw: categorical.pg_loss(*args, **kw), monkeypatch)
        if shape[-1] == 0 and reduction == "mean":
            assert raises(fast)
        else:
            assert not raises(fast)
            sign = -1 if q_is == "reward" else 1
            code = {"none": 0, "sum": 1, "mean": 2}[reduction]
            assert (
                pygenmod._cpu_categorical.pg_rows_fast(
                    lp, q, args[2] if with_entropy else None, sign, kw.get("lam", 0.0), code, 0, 1.0
                )
                is not None
            )
        assert_same(fast, general)


def _pg_loss_cases():
    rng = np.random.default_rng(10)
    lp, q, h = -rng.random((3, 5)), rng.standard_normal((3, 5)), rng.random((3, 5))

    def with_(a, where, v):
        a = a.copy()
        a[where] = v
        return a

    return {
        "NaN log-prob": ((with_(lp, (1, 2), np.nan), q), {}),
        "inf q": ((lp, with_(q, (0, 0), np.inf)), {}),
        "NaN entropy": ((lp, q, with_(h, (2, 4), np.nan)), {"lam": 0.1}),
        "lam without entropy": ((lp, q), {"lam": 0.1}),
        "negative lam": ((lp, q, h), {"lam": -0.1}),
        "inf lam": ((lp, q, h), {"lam": float("inf")}),
        "lam beyond float32": ((lp.astype(np.float32), q.astype(np.float32), h.astype(np.float32)), {"lam": 1e39}),
        "bool lam": ((lp, q, h), {"lam": True}),
        "numpy lam": ((lp, q, h), {"lam": np.float64(0.2)}),
        "entropy of another shape": ((lp, q, h[:, :4]), {"lam": 0.1}),
        "q of another shape": ((lp, q[:2]), {}),
        "q of another dtype": ((lp, q.astype(np.float32)), {}),
        "q as a list": ((lp, q.tolist()), {}),
        "strided q": ((lp, np.repeat(q, 2, 1)[:, ::2]), {}),
        "entropy as a list": ((lp, q, h.tolist()), {"lam": 0.1}),
        "0-d": ((lp[0, 0] * np.ones(()), q[0, 0] * np.ones(())), {}),
        "bad reduction": ((lp, q), {"reduction": "max"}),
        "bad q_is": ((lp, q), {"q_is": "advantage"}),
        "entropy with lam 0": ((lp, q, h), {}),
    }


@pytest.mark.parametrize("case", list(_pg_loss_cases()))
def test_pg_loss_errors_and_edge_cases_equal(monkeypatch, case):
    args, kw = _pg_loss_cases()[case]
    fast, general = both(lambda: categorical.pg_loss(*args, **kw), monkeypatch)
    assert_same(fast, general)


# ----------------------------------------------------------------------------- adversarial.gail_reward
@pytest.mark.parametrize("shape", [(1,), (2, 6), (3, 1, 5), (2, 4099), (3, 6001), (4, 0)])  # (3, 6001): parallel
@pytest.mark.parametrize("kind", ["log_d", "neg_log_one_minus_d"])
def test_gail_reward_fast_equals_general(host, dtype, rng, monkeypatch, shape, kind):
    # logits over many scales, zeros and both signs: every branch of NumPy's logaddexp
    x = (rng.standard_normal(shape) * rng.choice([0.0, 1e-8, 1.0, 30.0, 800.0], shape)).astype(dtype)
    fast, general = both(lambda: adversarial.gail_reward(x, kind), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        assert pygenmod._cpu_categorical.softplus_fast(x, -1 if kind == "log_d" else 1) is not None


@pytest.mark.parametrize("case", ["nan", "inf", "0-d", "strided", "int", "float16", "list", "bad kind"])
def test_gail_reward_errors_and_edge_cases_equal(host, monkeypatch, case):
    x = np.random.default_rng(6).standard_normal((3, 4))
    args = {
        "nan": (np.where(x > 1, np.nan, x),),
        "inf": (np.where(x > 1, -np.inf, x),),
        "0-d": (np.float64(0.5) * np.ones(()),),
        "strided": (x[:, ::2],),
        "int": (np.arange(6).reshape(2, 3),),
        "float16": (x.astype(np.float16),),
        "list": ([0.5, -2.0],),
        "bad kind": (x, "log"),
    }[case]
    fast, general = both(lambda: adversarial.gail_reward(*args), monkeypatch)
    assert_same(fast, general)


# ----------------------------------------------------------------------------- adversarial losses, rig_reward
LOSS_SHAPES = [(1,), (7,), (2, 6), (3, 1, 9), (2, 129), (1, 4099), (2, 8192), (2, 16384), (1, 20000), (4, 0)]
LOSSES = {
    "gan_discriminator_loss": lambda a, b, red: adversarial.gan_discriminator_loss(a, b, red),
    "gan_value": lambda a, b, red: adversarial.gan_value(a, b, red),
    "gan_generator_loss": lambda a, b, red: adversarial.gan_generator_loss(a, reduction=red),
    "gan_generator_loss minimax": lambda a, b, red: adversarial.gan_generator_loss(a, False, red),
    "lsgan_discriminator_loss": lambda a, b, red: adversarial.lsgan_discriminator_loss(a, b, reduction=red),
    "lsgan_discriminator_loss a, b": lambda a, b, red: adversarial.lsgan_discriminator_loss(
        a, b, 0.3, 2, reduction=red
    ),
    "lsgan_generator_loss": lambda a, b, red: adversarial.lsgan_generator_loss(a, reduction=red),
    "lsgan_generator_loss c": lambda a, b, red: adversarial.lsgan_generator_loss(a, -0.7, red),
}


@pytest.mark.parametrize("shape", LOSS_SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("loss", list(LOSSES))
def test_adversarial_losses_fast_equal_general(dtype, rng, monkeypatch, shape, reduction, loss):
    # logits over many scales, zeros and both signs (every branch of NumPy's logaddexp), rows on
    # both sides of numpy's pairwise blocks (8, 128) and of the float64 sums' 8192-entry slices
    a, b = ((rng.standard_normal(shape) * rng.choice([0.0, 1e-8, 1.0, 30.0, 800.0], shape)).astype(dtype) for _ in "ab")
    b = b[..., : max(shape[-1] - 3, 1)] if shape[-1] > 3 else b  # another row length for the second argument
    b = np.ascontiguousarray(b)
    fast, general = both(lambda: LOSSES[loss](a, b, reduction), monkeypatch)
    if shape[-1] == 0 and reduction == "mean":
        assert raises(fast)
    else:
        assert not raises(fast)
    assert_same(fast, general)


def test_adversarial_losses_take_the_compiled_rows(rng):
    x = rng.standard_normal((2, 5))
    assert pygenmod._cpu_categorical.softplus_rows_fast(x, -1, 2, 0, 1) is not None
    assert pygenmod._cpu_categorical.square_rows_fast(x, 1.0, 2, 0, 0.4) is not None
    assert pygenmod._cpu_categorical.neg_distance_fast(x, x[0], 0, False) is not None


@pytest.mark.parametrize("reduce", [0, 1, 2])
def test_logistic_rows_do_not_depend_on_the_thread_count(rng, reduce):
    """softplus_rows from 2^14 entries runs its entries over threads and sums the rows after
    them: the same bits with one thread and with two."""
    x = (rng.standard_normal((3, 6001)) * rng.choice([0.0, 1.0, 30.0, 800.0], (3, 6001))).astype(np.float64)
    before, out = pygenmod.get_num_threads(), []
    try:
        for nt in (1, 2):
            pygenmod.set_num_threads(nt)
            out.append(pygenmod._cpu_categorical.softplus_rows_fast(x, -1, reduce, 0, 1))
    finally:
        pygenmod.set_num_threads(before)
    assert_same(out[0], out[1])


@pytest.mark.parametrize("dtype_", [np.float32, np.float64])
def test_sums_in_numpys_order(rng, dtype_):
    """The compiled rows sum as numpy's a.sum(-1) does (pairwise, in the slices the installed
    NumPy uses): the premise of the fast paths' bitwise equality."""
    chunk = adversarial.numpy_sum_chunk()
    assert chunk in (0, adversarial.SQ_CHUNK)  # NumPy 2.x: one of the two orders is NumPy's
    for shape in [(3, n) for n in (1, 7, 8, 9, 127, 128, 129, 1000, 8192, 8193, 40000)] + [(5,), (20000,)]:
        x = (rng.standard_normal(shape) * 10 ** rng.uniform(-3, 3, shape)).astype(dtype_)
        x[..., :1] = -0.0  # (a row of one -0.0: the sign of a zero sum)
        terms, _ = pygenmod._cpu_categorical.square_rows_fast(x, 0.0, 1, chunk, 1.0)
        assert terms.tobytes() == np.asarray((x * x).sum(-1)).tobytes(), shape
        terms, _ = pygenmod._cpu_categorical.softplus_rows_fast(x, 1, 1, chunk, 1)
        assert terms.tobytes() == np.asarray(np.logaddexp(0, x).sum(-1)).tobytes(), shape


def test_rows_never_fuse_products(rng):
    """d * d is rounded before it is summed, as NumPy's is, on every build (numpy_sum.hpp's
    PGM_NO_CONTRACT): values whose products round differently from a fused multiply-add."""
    x = 1 + rng.random((4, 300)) * 2.0**-20  # products with long low parts
    terms, _ = pygenmod._cpu_categorical.square_rows_fast(x, 0.0, 1, 0, 1.0)
    assert terms.tobytes() == (x * x).sum(-1).tobytes()
    d = pygenmod._cpu_categorical.neg_distance_fast(x, np.zeros(300), 0, True)
    assert d.tobytes() == (-(x * x).sum(-1)).tobytes()


@pytest.mark.parametrize(
    "zshape,gshape",
    [((3,), (3,)), ((2, 3), (3,)), ((5, 4), (5, 4)), ((2, 5, 4), (5, 4)), ((2, 300), (2, 300)), ((1, 9000), (9000,))],
)
@pytest.mark.parametrize("squared", [False, True])
def test_rig_reward_fast_equals_general(dtype, rng, monkeypatch, zshape, gshape, squared):
    from pygenmod import goals

    z = (rng.standard_normal(zshape) * 10 ** rng.uniform(-3, 3, zshape)).astype(dtype)
    g = rng.standard_normal(gshape).astype(dtype)
    fast, general = both(lambda: goals.rig_reward(z, g, squared=squared), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)


@pytest.mark.parametrize(
    "case", ["nan", "inf", "0-d", "strided", "int", "float16", "list", "mixed dtypes", "bad reduction", "shapes"]
)
@pytest.mark.parametrize(
    "loss", ["gan_discriminator_loss", "gan_generator_loss", "lsgan_discriminator_loss", "lsgan_generator_loss"]
)
def test_adversarial_losses_errors_and_edge_cases_equal(monkeypatch, case, loss):
    x = np.random.default_rng(6).standard_normal((3, 4))
    y = x[:, :3].copy()
    args, red = {
        "nan": ((np.where(x > 1, np.nan, x), y), "mean"),
        "inf": ((x, np.where(y > 1, -np.inf, y)), "sum"),
        "0-d": ((np.ones(()), np.ones(())), "mean"),
        "strided": ((x[:, ::2], y), "mean"),
        "int": ((np.arange(6).reshape(2, 3), np.arange(6).reshape(2, 3)), "mean"),
        "float16": ((x.astype(np.float16), y.astype(np.float16)), "none"),
        "list": (([0.5, -2.0], [1.0]), "mean"),
        "mixed dtypes": ((x, y.astype(np.float32)), "mean"),
        "bad reduction": ((x, y), "avg"),
        "shapes": ((x, y[:2]), "sum"),
    }[case]
    fast, general = both(lambda: LOSSES[loss](*args, red), monkeypatch)
    assert_same(fast, general)


@pytest.mark.parametrize("case", ["nan", "strided", "mixed dtypes", "shapes", "0-d", "empty", "3-d goal"])
def test_rig_reward_errors_and_edge_cases_equal(monkeypatch, case):
    from pygenmod import goals

    z = np.random.default_rng(7).standard_normal((3, 4))
    args = {
        "nan": (np.where(z > 1, np.nan, z), z),
        "strided": (z[:, ::2], z[:, :2].copy()),
        "mixed dtypes": (z, z.astype(np.float32)),
        "shapes": (z, z[:2]),
        "0-d": (np.ones(()), np.ones(())),
        "empty": (np.ones((3, 0)), np.ones((3, 0))),
        "3-d goal": (z[None, None], z[None, None]),
    }[case]
    fast, general = both(lambda: goals.rig_reward(*args), monkeypatch)
    assert_same(fast, general)


# ----------------------------------------------------------------------------- returns.gae
@pytest.mark.parametrize("T,B", [(1, 1), (8, 1), (5, 3), (0, 2), (64, 40), (300, 200)])
@pytest.mark.parametrize("flags", [None, "bool", "float"])
@pytest.mark.parametrize("boot", [False, True])
@pytest.mark.parametrize("compute_returns", [True, False])
def test_gae_fast_equals_general(host, dtype, rng, monkeypatch, T, B, flags, boot, compute_returns):
    r, v = rng.standard_normal((2, T, B)).astype(dtype)
    term = None if flags is None else rng.random((T, B)) < 0.2
    if flags == "float":
        term = term.astype(dtype)
    kw = dict(terminated=term, compute_returns=compute_returns, gamma=0.97, lam=1)
    if boot:
        kw["bootstrap_value"] = rng.standard_normal(B).astype(dtype)
    fast, general = both(lambda: returns.gae(r, v, **kw), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        bv = kw.get("bootstrap_value")
        assert pygenmod._cpu_returns.gae_fast(r, v, 0.97, 1, term, bv, compute_returns) is not None


def test_gae_fast_path_declines_non_array_values():
    """values, bootstrap and terminated that are not arrays: the binding answers None (before
    reading an array header: a Python int as values was read as one)."""
    r = np.ones((3, 2))
    for other in (1, 2.5, "x", [1.0, 2.0], (r,)):
        assert pygenmod._cpu_returns.gae_fast(r, other, 0.9, 0.9, None, None, True) is None
        assert pygenmod._cpu_returns.gae_fast(r, r, 0.9, 0.9, other, None, True) is None
        assert pygenmod._cpu_returns.gae_fast(r, r, 0.9, 0.9, None, other, True) is None


def test_gae_fast_path_takes_strided_buffers(host, dtype, rng, monkeypatch):
    """Rewards, values and dones sliced from a rollout buffer (T, B, 3) (strided views): the
    one-call path copies them, as the general path does, and gives its bits."""
    buf = rng.standard_normal((9, 4, 3)).astype(dtype)
    r, v = buf[..., 0], buf[..., 1]
    term = (rng.random((9, 4, 2)) < 0.2)[..., 0]
    boot = rng.standard_normal((4, 2)).astype(dtype)[:, 1]
    kw = dict(terminated=term, bootstrap_value=boot, gamma=0.97, lam=0.9)
    fast, general = both(lambda: returns.gae(r, v, **kw), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        assert pygenmod._cpu_returns.gae_fast(r, v, 0.97, 0.9, term, boot, True) is not None


def _gae_cases():
    rng = np.random.default_rng(6)
    r, v = rng.standard_normal((2, 6, 3))

    def with_(x, val):
        y = x.copy()
        y[2, 1] = val
        return y

    return {
        "nan reward": dict(rewards=with_(r, np.nan), values=v),
        "inf value": dict(rewards=r, values=with_(v, np.inf)),
        "overflow": dict(rewards=np.full((6, 3), 1e308), values=v),
        "gamma > 1": dict(rewards=r, values=v, gamma=1.5),
        "negative lam": dict(rewards=r, values=v, lam=-0.1),
        "nan gamma": dict(rewards=r, values=v, gamma=float("nan")),
        "bool gamma": dict(rewards=r, values=v, gamma=True),
        "numpy gamma": dict(rewards=r, values=v, gamma=np.float64(0.9)),
        "array gamma": dict(rewards=r, values=v, gamma=np.full(3, 0.9)),
        "float32 gamma rounding to 1": dict(
            rewards=r.astype(np.float32), values=v.astype(np.float32), gamma=0.99999999
        ),
        "values of another shape": dict(rewards=r, values=v[:5]),
        "values of another dtype": dict(rewards=r, values=v.astype(np.float32)),
        "no batch": dict(rewards=r[:, :0], values=v[:, :0]),
        "1-d rewards": dict(rewards=r[:, 0], values=v[:, 0]),
        "int terminated": dict(rewards=r, values=v, terminated=np.zeros((6, 3), np.int64)),
        "terminated of another shape": dict(rewards=r, values=v, terminated=np.zeros((6, 2), bool)),
        "bootstrap scalar": dict(rewards=r, values=v, bootstrap_value=0.5),
        "bootstrap of another shape": dict(rewards=r, values=v, bootstrap_value=np.ones(4)),
        "batch-major": dict(rewards=r, values=v, time_axis=1),
        "truncated": dict(rewards=r, values=v, truncated=np.zeros((6, 3), bool), next_values=v),
        "compute_returns=1": dict(rewards=r, values=v, compute_returns=1),
        "non-contiguous": dict(rewards=np.asfortranarray(r), values=v),
        "list": dict(rewards=r.tolist(), values=v),
    }


@pytest.mark.parametrize("case", list(_gae_cases()))
def test_gae_errors_and_edge_cases_equal(host, monkeypatch, case):
    kw = _gae_cases()[case]
    fast, general = both(lambda: returns.gae(**kw), monkeypatch)
    assert_same(fast, general)


# ----------------------------------------------------------------------------- returns.discounted_returns
@pytest.mark.parametrize("T,B", [(1, 1), (8, 1), (5, 3), (0, 2), (64, 40), (300, 200)])
@pytest.mark.parametrize("flags", [None, "bool", "float"])
@pytest.mark.parametrize("boot", [False, True])
def test_discounted_returns_fast_equals_general(host, dtype, rng, monkeypatch, T, B, flags, boot):
    r = rng.standard_normal((T, B)).astype(dtype)
    term = None if flags is None else rng.random((T, B)) < 0.2
    if flags == "float":
        term = term.astype(dtype)
    kw = dict(terminated=term, gamma=0.97)
    if boot:
        kw["bootstrap_value"] = rng.standard_normal(B).astype(dtype)
    fast, general = both(lambda: returns.discounted_returns(r, **kw), monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        bv = kw.get("bootstrap_value")
        assert pygenmod._cpu_returns.gae_fast(r, None, 0.97, 1.0, term, bv, False) is not None


@pytest.mark.parametrize("case", [c for c in _gae_cases() if c not in ("compute_returns=1",)])
def test_discounted_returns_errors_and_edge_cases_equal(host, monkeypatch, case):
    kw = {k: v for k, v in _gae_cases()[case].items() if k not in ("values", "lam")}
    if case == "truncated":
        kw["next_values"] = _gae_cases()[case]["values"]
    fast, general = both(lambda: returns.discounted_returns(**kw), monkeypatch)
    assert_same(fast, general)


# ----------------------------------------------------------------------------- cem.cem_optimize
def _sphere(opt):
    return lambda X: -((X - opt[:, None, :]) ** 2).sum(-1)


@pytest.mark.parametrize(
    "B,N,D,k,T", [(1, 8, 1, 2, 3), (4, 64, 3, 8, 10), (2, 40, 33, 17, 4), (3, 5, 2, 5, 2), (4, 512, 8, 20, 3)]
)  # the last: B N D = 16384, the loop releases the GIL between objective calls
@pytest.mark.parametrize(
    "options",
    [{}, {"alpha": 0.3, "min_std": 0.05, "reg": 1e-3}, {"noise_dtype": np.float64}, {"noise_dtype": None, "stream": 7}],
)
@pytest.mark.parametrize("seed", [3, None])
def test_cem_optimize_fast_equals_general(host, dtype, rng, monkeypatch, B, N, D, k, T, options, seed):
    opt = rng.uniform(-2, 2, (B, D)).astype(dtype)
    m, s = np.zeros((B, D), dtype), np.full((B, D), 1.5, dtype)

    def f():
        pygenmod.random.manual_seed(11)  # seed=None: the same key on both sides
        return cem.cem_optimize(_sphere(opt), m, s, n_samples=N, n_elite=k, n_iter=T, seed=seed, **options)

    fast, general = both(f, monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":  # the compiled entry point took it (None would mean the general path ran)
        args = (m, s, N, k, T, 3, lambda key: key, 0, 0.0, 0.0, 0.0, 4)
        assert pygenmod._cpu_cem.cem_optimize_fast(_sphere(opt), None, *args) is not None


def _cem_optimize_cases():
    m, s = np.zeros((2, 3)), np.ones((2, 3))
    nan_m, neg_s = m.copy(), s.copy()
    nan_m[1, 0] = np.nan
    neg_s[0, 2] = -1.0
    bad_returns = {"nan": np.nan, "inf": np.inf}
    base = dict(mean=m, scale=s, n_samples=8, n_elite=2, n_iter=3, seed=1)
    cases = {
        "nan mean": dict(mean=nan_m),
        "negative scale": dict(scale=neg_s),
        "scale of another shape": dict(scale=s[:1]),
        "scale in the other dtype": dict(scale=s.astype(np.float32)),
        "1-d mean": dict(mean=m[0], scale=s[0]),
        "no problems": dict(mean=m[:0], scale=s[:0]),
        "no dimensions": dict(mean=m[:, :0], scale=s[:, :0]),
        "int mean": dict(mean=np.zeros((2, 3), np.int64)),
        "non-contiguous mean": dict(mean=np.asfortranarray(np.zeros((3, 2))).T),
        "k > N": dict(n_elite=9),
        "k = 0": dict(n_elite=0),
        "n_iter = 0": dict(n_iter=0),
        "bool n_iter": dict(n_iter=True),
        "float n_samples": dict(n_samples=8.0),
        "huge n_samples": dict(n_samples=2**70),
        "numpy int n_elite": dict(n_elite=np.int64(2)),
        "alpha 1": dict(alpha=1.0),
        "integer alpha": dict(alpha=0),
        "min_std nan": dict(min_std=float("nan")),
        "min_std inf": dict(min_std=float("inf")),
        "negative reg": dict(reg=-1e-3),
        "reg nan": dict(reg=float("nan")),
        "negative seed": dict(seed=-1),
        "seed 2**64": dict(seed=2**64),
        "generator seed": dict(seed="generator"),
        "stream 2**64": dict(stream=2**64),
        "noise float16": dict(noise_dtype=np.float16),
        "noise as a string": dict(noise_dtype="float64"),
        "rank weights": dict(elite_weights="rank"),
        "full covariance": dict(covariance="full", scale=np.tile(np.eye(3), (2, 1, 1))),
    }
    cases.update({f"{name} return": dict(bad=v) for name, v in bad_returns.items()})
    cases.update(
        {"returns as a list": dict(convert=lambda r: r.tolist()), "3-d returns": dict(convert=lambda r: r[None])}
    )
    return {name: {**base, **c} for name, c in cases.items()}


@pytest.mark.parametrize("case", list(_cem_optimize_cases()))
def test_cem_optimize_errors_and_edge_cases_equal(host, monkeypatch, case):
    def f():
        a = dict(_cem_optimize_cases()[case])
        bad, convert = a.pop("bad", None), a.pop("convert", None)
        if a["seed"] == "generator":
            a["seed"] = np.random.default_rng(4)  # fresh: a Generator seed advances

        def objective(X):
            r = -(X**2).sum(-1)
            if bad is not None:
                r[1, 3] = bad
            return convert(r) if convert else r

        mean, scale = a.pop("mean"), a.pop("scale")
        return cem.cem_optimize(objective, mean, scale, **a)

    fast, general = both(f, monkeypatch)
    assert_same(fast, general)


def test_cem_optimize_fallback_draws_one_key(monkeypatch):
    """seed=None: the package generator advances once per call on either path, and a call that
    the compiled path hands on (rank weights) draws no key before the general path draws its own."""

    def f():
        pygenmod.random.manual_seed(5)
        kw = dict(n_samples=8, n_elite=2, n_iter=2)
        a = cem.cem_optimize(lambda X: -(X**2).sum(-1), np.zeros((2, 3)), np.ones((2, 3)), elite_weights="rank", **kw)
        b = cem.cem_optimize(lambda X: -(X**2).sum(-1), np.zeros((2, 3)), np.ones((2, 3)), **kw)
        return a, b, pygenmod.random.get_state()["counter"]

    fast, general = both(f, monkeypatch)
    assert_same(fast, general)


# ----------------------------------------------------------------------------- elbo
def _elbo_inputs(rng, B, D, X, S, dtype, lik):
    mu, lv = (rng.standard_normal((B, D)).astype(dtype) for _ in range(2))
    x = (rng.random((B, X)) if lik == "bernoulli" else rng.standard_normal((B, X))).astype(dtype)
    if lik == "bernoulli":
        x[:, ::2] = np.round(x[:, ::2])  # {0, 1} and fractional targets
    dec = (3 * rng.standard_normal(((S,) if S else ()) + (B, X))).astype(dtype)
    return x, dec, mu, lv


def _elbo_calls(x, dec, mu, lv, g, kw):
    return {
        "elbo": lambda: elbo.elbo(x, dec, mu, lv, **kw),
        "elbo_terms": lambda: elbo.elbo_terms(x, dec, mu, lv, **kw),
        "elbo_backward": lambda: elbo.elbo_backward(x, dec, mu, lv, grad_elbo=g, **kw),
        "elbo_backward (all three upstream)": lambda: elbo.elbo_backward(
            x, dec, mu, lv, grad_elbo=g, grad_log_lik=g[::-1].copy(), grad_kl=-g, **kw
        ),
    }


@pytest.mark.parametrize(
    "B, D, X, S", [(1, 1, 1, 0), (2, 8, 4, 0), (3, 5, 33, 2), (70, 16, 300, 0), (2, 3, 0, 0), (2, 0, 5, 3)]
)
@pytest.mark.parametrize("lik", ["gaussian", "bernoulli"])
@pytest.mark.parametrize("fn", list(_elbo_calls(*(None,) * 6)))
def test_elbo_fast_equals_general(host, dtype, rng, monkeypatch, B, D, X, S, lik, fn):
    x, dec, mu, lv = _elbo_inputs(rng, B, D, X, S, dtype, lik)
    g = rng.standard_normal(B).astype(dtype)
    kw = {"likelihood": lik, "beta": 0.5}
    fast, general = both(_elbo_calls(x, dec, mu, lv, g, kw)[fn], monkeypatch)
    assert not raises(fast)
    assert_same(fast, general)
    if host == "cpu":
        if fn.startswith("elbo_backward"):
            assert pygenmod._cpu_elbo.elbo_backward_fast(x, dec, mu, lv, lik, 0.5, g, None, None) is not None
        else:
            assert pygenmod._cpu_elbo.elbo_fast(x, dec, mu, lv, lik, 0.5) is not None


def _elbo_cases(dtype):
    rng = np.random.default_rng(7)
    x, dec, mu, lv = _elbo_inputs(rng, 3, 4, 5, 0, dtype, "gaussian")
    xb = np.round(rng.random((3, 5))).astype(dtype)
    g = np.ones(3, dtype)

    def with_(a, v):
        a = a.copy()
        a.flat[min(6, a.size - 1)] = v
        return a

    other = np.float32 if dtype == np.float64 else np.float64
    return {
        "nan x": ((with_(x, np.nan), dec, mu, lv), {}, {}),
        "inf x": ((with_(x, np.inf), dec, mu, lv), {}, {}),
        "nan dec": ((x, with_(dec, np.nan), mu, lv), {}, {}),
        "inf dec": ((x, with_(dec, -np.inf), mu, lv), {}, {}),
        "nan mu": ((x, dec, with_(mu, np.nan), lv), {}, {}),
        "huge logvar": ((x, dec, mu, with_(lv, 1e4)), {}, {}),
        "bernoulli x above 1": ((with_(xb, 1.5), dec, mu, lv), {"likelihood": "bernoulli"}, {}),
        "bernoulli x nan": ((with_(xb, np.nan), dec, mu, lv), {"likelihood": "bernoulli"}, {}),
        "categorical": (
            (np.zeros((3, 5), np.int64), dec[..., None].repeat(2, -1), mu, lv),
            {"likelihood": "categorical"},
            {},
        ),
        "unknown likelihood": ((x, dec, mu, lv), {"likelihood": "Gaussian"}, {}),
        "negative beta": ((x, dec, mu, lv), {"beta": -1.0}, {}),
        "nan beta": ((x, dec, mu, lv), {"beta": float("nan")}, {}),
        "bool beta": ((x, dec, mu, lv), {"beta": True}, {}),
        "int beta": ((x, dec, mu, lv), {"beta": 2}, {}),
        "NumPy beta": ((x, dec, mu, lv), {"beta": np.float64(2.0)}, {}),
        "string beta": ((x, dec, mu, lv), {"beta": "1"}, {}),
        "dec shape": ((x, dec[:, :4], mu, lv), {}, {}),
        "dec rows": ((x, dec[:2], mu, lv), {}, {}),
        "no samples": ((x, dec[None][:0], mu, lv), {}, {}),
        "x rows": ((x[:2], dec, mu, lv), {}, {}),
        "logvar shape": ((x, dec, mu, lv[:, :3]), {}, {}),
        "1-d": ((x[0], dec[0], mu[0], lv[0]), {}, {}),
        "image features": ((x.reshape(3, 5, 1), dec.reshape(3, 5, 1), mu, lv), {}, {}),
        "no rows": ((x[:0], dec[:0], mu[:0], lv[:0]), {}, {}),
        "dec other dtype": ((x, dec.astype(other), mu, lv), {}, {}),
        "x other dtype": ((x.astype(other), dec, mu, lv), {}, {}),
        "logvar other dtype": ((x, dec, mu, lv.astype(other)), {}, {}),
        "int mu": ((x, dec, np.ones((3, 4), np.int64), lv), {}, {}),
        "non-contiguous dec": ((x, np.asfortranarray(dec), mu, lv), {}, {}),
        "list x": ((x.tolist(), dec, mu, lv), {}, {}),
        "decoder scale": ((x, dec, mu, lv), {"dec_logvar": 0.0}, {}),
        "prior": ((x, dec, mu, lv), {"prior_mu": 0.5}, {}),
        "clamp": ((x, dec, mu, lv), {"clamp": (-1.0, 1.0)}, {}),
        "log_std": ((x, dec, mu), {"log_std": lv}, {}),
        "sliced encoder output": ((x, dec, *np.split(np.concatenate([mu, lv], 1), 2, axis=1)), {}, {}),
        "transposed dec": ((x, np.ascontiguousarray(dec.T).T, mu, lv), {}, {}),
        "strided x": ((np.repeat(x, 2, 1)[:, ::2], dec, mu, lv), {}, {}),
        "big-endian mu": ((x, dec, mu.astype(mu.dtype.newbyteorder(">")), lv), {}, {}),
        "strided upstream gradient": ((x, dec, mu, lv), {}, {"grad_elbo": np.repeat(g, 2)[::2]}),
        "nan upstream gradient": ((x, dec, mu, lv), {}, {"grad_elbo": with_(g, np.nan)}),
        "scalar upstream gradient": ((x, dec, mu, lv), {}, {"grad_elbo": 2.0}),
        "(B, 1) upstream gradient": ((x, dec, mu, lv), {}, {"grad_elbo": g[:, None]}),
        "upstream gradient of another dtype": ((x, dec, mu, lv), {}, {"grad_kl": g.astype(other)}),
        "upstream gradient of another shape": ((x, dec, mu, lv), {}, {"grad_log_lik": g[:2]}),
        "list upstream gradient": ((x, dec, mu, lv), {}, {"grad_elbo": g.tolist()}),
        "no upstream gradient": ((x, dec, mu, lv), {}, {"grad_elbo": None}),
    }


@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("case", list(_elbo_cases(np.float64)))
def test_elbo_errors_and_edge_cases_equal(host, dtype, monkeypatch, case, backward):
    args, kw, grads = _elbo_cases(dtype)[case]
    if backward:
        f = lambda: elbo.elbo_backward(*args, **kw, **{"grad_elbo": np.ones(len(args[2]), dtype), **grads})  # noqa: E731
    else:
        f = lambda: elbo.elbo_terms(*args, **kw)  # noqa: E731
    fast, general = both(f, monkeypatch)
    assert_same(fast, general)


def test_elbo_fast_path_takes_strided_views(rng):
    """mu and logvar sliced from one (B, 2D) encoder output, a transposed dec: the one-call path
    copies them (as the general path does) instead of handing the call on."""
    cpu_elbo = pytest.importorskip("pygenmod._cpu_elbo")  # (loaded on first use: not an attribute before)
    x, dec, mu, lv = _elbo_inputs(rng, 3, 4, 5, 0, np.float64, "gaussian")
    h = np.concatenate([mu, lv], 1)
    decT = np.ascontiguousarray(dec.T).T
    assert cpu_elbo.elbo_fast(x, decT, h[:, :4], h[:, 4:], "gaussian", 1.0) is not None
    g = np.repeat(np.ones(3), 2)[::2]
    assert cpu_elbo.elbo_backward_fast(x, decT, h[:, :4], h[:, 4:], "gaussian", 1.0, g, None, None) is not None


def test_elbo_unit_variance_row_matches_a_zero_logvar(rng):
    """The unit-variance rows (no decoder scale) against the general Gaussian row with
    dec_logvar=0: the same values within rounding, forward and backward."""
    x, dec, mu, lv = _elbo_inputs(rng, 5, 3, 257, 2, np.float64, "gaussian")
    a = elbo.elbo_terms(x, dec, mu, lv)
    b = elbo.elbo_terms(x, dec, mu, lv, dec_logvar=0.0)
    np.testing.assert_allclose(a.log_lik, b.log_lik, rtol=1e-13)
    ga = elbo.elbo_backward(x, dec, mu, lv, grad_elbo=np.ones(5))
    gb = elbo.elbo_backward(x, dec, mu, lv, grad_elbo=np.ones(5), dec_logvar=0.0)
    np.testing.assert_allclose(ga.dec, gb.dec, rtol=1e-14)


def test_fast_paths_skip_other_options(monkeypatch):
    """Options outside the fast paths (array gamma, policies, masks, cov, clamp) still work."""
    rng = np.random.default_rng(0)
    P, R, V = _mdp(rng, (), 4, 2, np.float64)
    fast, general = both(lambda: mdp.bellman_backup(P, R, V, np.float64(0.9)), monkeypatch)
    assert_same(fast, general)
    x = rng.standard_normal((1, 2, 3, 3))
    fast, general = both(lambda: spatial.spatial_softmax(x, 1.0, return_cov=True), monkeypatch)
    assert_same(fast, general)
    mu = rng.standard_normal((2, 3))
    fast, general = both(lambda: sampling.rsample_normal(mu, mu, seed=1, clamp=(-1, 1)), monkeypatch)
    assert_same(fast, general)
