"""pygenmod.jax's MDP solvers (policy_evaluation, policy_iteration, solve) under jax.jit / vmap.

The iterative solvers run the NumPy API's compiled loops behind FFI targets: every field of the
result (V, policy, Q, iteration counts, residual, converged) is compared bitwise with
pygenmod.mdp; the exact (linear-solve) paths to a stated tolerance. float64 with jax x64.
"""

import _jax_common  # first: skips this module without JAX or a compiled build
import jax.numpy as jnp
import numpy as np
import pytest
from _jax_common import jax

import pygenmod.jax as pj
from pygenmod import mdp

dtype, x64 = _jax_common.dtype, _jax_common.x64  # the shared fixtures


# rtol of the exact (linear-solve) paths: XLA's LU against LAPACK's, float32 solves without x64
EXACT_RTOL = {np.float32: 2e-5, np.float64: 1e-12}


def _ints(a):
    return np.asarray(a).astype(np.int64)


def check_solution(got, ref, dtype, exact=False):
    """Every field of a pygenmod.mdp.Solution; bitwise unless ``exact`` (V, Q to EXACT_RTOL)."""
    V, pi, Q, its, res, conv, evs = (np.asarray(x) for x in got)
    int_dt = np.int64 if dtype == np.float64 else np.int32
    assert V.dtype == dtype and Q.dtype == dtype and pi.dtype == int_dt and its.dtype == int_dt
    if exact:
        scale = max(1.0, float(np.abs(ref.V).max()))
        np.testing.assert_allclose(V, ref.V, rtol=EXACT_RTOL[dtype], atol=EXACT_RTOL[dtype] * scale)
        np.testing.assert_allclose(Q, ref.Q, rtol=EXACT_RTOL[dtype], atol=EXACT_RTOL[dtype] * scale)
    else:
        np.testing.assert_array_equal(V, ref.V)
        np.testing.assert_array_equal(Q, ref.Q)
    np.testing.assert_array_equal(_ints(pi), ref.policy)
    np.testing.assert_array_equal(_ints(its), ref.iterations)
    np.testing.assert_array_equal(_ints(evs), ref.eval_sweeps)
    np.testing.assert_array_equal(conv, ref.converged)
    # residual: float64 under x64 (bitwise), float32 without (the float64 value rounded)
    np.testing.assert_array_equal(res, np.asarray(ref.residual).astype(res.dtype))


def _mdps(dtype, B=3, S=17, A=4, seed=0):
    P, R = mdp.random_mdp(S, A, batch=B, seed=seed, dtype=dtype)
    return P, R


# ============================================================================ solve
@pytest.mark.parametrize("stop", ["span", "sup"])
@pytest.mark.parametrize("m", [None, 0, 3])
def test_solve_bitwise(dtype, stop, m):
    P, R = _mdps(dtype)
    gamma = np.array([0.9, 0.95, 0.5], dtype)
    ref = mdp.solve(P, R, gamma, m=m, stop=stop, epsilon=1e-5)
    got = jax.jit(lambda P, R: pj.solve(P, R, gamma, m=m, stop=stop, epsilon=1e-5))(P, R)
    check_solution(got, ref, dtype)
    assert pj.modified_policy_iteration is pj.solve


def test_solve_m0_is_value_iteration(dtype):
    P, R = _mdps(dtype, B=2, S=12, A=3, seed=10)
    ref = mdp.value_iteration(P, R, 0.95)
    check_solution(jax.jit(lambda P, R: pj.solve(P, R, 0.95, m=0, max_iter=100_000))(P, R), ref, dtype)


def test_solve_options_bitwise(dtype):
    """tol=, max_iter (not converged), V0, a single MDP, a traced gamma."""
    P, R = _mdps(dtype, B=2, S=9, A=3, seed=1)
    V0 = np.random.default_rng(2).normal(size=(2, 9)).astype(dtype)
    ref = mdp.solve(P, R, 0.97, tol=1e-4, stop="sup", V0=V0)
    check_solution(jax.jit(lambda V0: pj.solve(P, R, 0.97, tol=1e-4, stop="sup", V0=V0))(V0), ref, dtype)
    ref = mdp.solve(P, R, 0.99, max_iter=2, m=1)
    got = pj.solve(P, R, 0.99, max_iter=2, m=1)
    check_solution(got, ref, dtype)
    assert not np.asarray(got.converged).any()
    # one MDP: no batch axis, 0-d stats (Python scalars in the NumPy API)
    ref = mdp.solve(P[0], R[0], 0.9)
    got = jax.jit(lambda P, R: pj.solve(P, R, 0.9))(P[0], R[0])
    assert got.V.shape == (9,) and got.iterations.shape == ()
    assert int(got.iterations) == ref.iterations and bool(got.converged) == ref.converged
    np.testing.assert_array_equal(np.asarray(got.V), ref.V)
    # a traced gamma: the threshold is computed in jnp (float64 under x64: the NumPy floats)
    g = np.array([0.9, 0.8], dtype)
    got = jax.jit(lambda g: pj.solve(P, R, g))(g)
    ref = mdp.solve(P, R, g)
    if dtype == np.float64:
        check_solution(got, ref, dtype)
    else:  # float32 threshold: the same answer on these MDPs
        np.testing.assert_array_equal(_ints(got.iterations), ref.iterations)
        np.testing.assert_array_equal(np.asarray(got.V), ref.V)


def test_solve_vmap_is_one_folded_call():
    P, R = _mdps(np.float32, B=6, S=8, A=3, seed=3)
    Pn, Rn = P.reshape(2, 3, 8, 3, 8), R.reshape(2, 3, 8, 3)
    f = jax.vmap(lambda P, R: pj.solve(P, R, 0.9))
    got = jax.jit(f)(Pn, Rn)
    ref = mdp.solve(P, R, 0.9)
    np.testing.assert_array_equal(np.asarray(got.V).reshape(6, 8), ref.V)
    np.testing.assert_array_equal(_ints(got.iterations).reshape(6), ref.iterations)
    assert str(jax.make_jaxpr(f)(Pn, Rn)).count("pygenmod_mdp_solve_dense") == 1


# ============================================================================ policy evaluation
@pytest.mark.parametrize("stochastic", [False, True])
def test_policy_evaluation(dtype, stochastic):
    P, R = _mdps(dtype, seed=4)
    rng = np.random.default_rng(5)
    if stochastic:
        pol = rng.random((3, 17, 4)).astype(dtype)
        pol /= pol.sum(-1, keepdims=True)
    else:
        pol = rng.integers(0, 4, (3, 17))
    it_ref = mdp.policy_evaluation(P, R, 0.9, pol, evaluation="iterative", epsilon=1e-6)
    it = jax.jit(lambda P, R, p: pj.policy_evaluation(P, R, 0.9, p, evaluation="iterative", epsilon=1e-6))(P, R, pol)
    np.testing.assert_array_equal(np.asarray(it.V), it_ref.V)
    np.testing.assert_array_equal(_ints(it.iterations), it_ref.iterations)
    np.testing.assert_array_equal(np.asarray(it.converged), it_ref.converged)
    np.testing.assert_array_equal(np.asarray(it.residual), it_ref.residual.astype(np.asarray(it.residual).dtype))
    ex_ref = mdp.policy_evaluation(P, R, 0.9, pol)
    ex = jax.jit(lambda P, R, p: pj.policy_evaluation(P, R, 0.9, p))(P, R, pol)
    np.testing.assert_allclose(np.asarray(ex.V), ex_ref.V, rtol=EXACT_RTOL[dtype], atol=EXACT_RTOL[dtype] * 10)
    assert np.asarray(ex.converged).all() and not np.asarray(ex.iterations).any()
    # an independent float64 reference: V = (I - g P_pi)^-1 r_pi
    P64, R64 = P.astype(np.float64), R.astype(np.float64)
    w = pol if stochastic else np.eye(4)[pol]
    Vr = np.linalg.solve(
        np.eye(17) - 0.9 * np.einsum("bsa,bsat->bst", w, P64), np.einsum("bsa,bsa->bs", w, R64)[..., None]
    )[..., 0]
    np.testing.assert_allclose(np.asarray(ex.V), Vr, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-4)


# ============================================================================ policy iteration
@pytest.mark.parametrize("evaluation", ["iterative", "exact"])
@pytest.mark.parametrize("start", ["greedy", "given", "random"])
def test_policy_iteration(dtype, evaluation, start):
    P, R = _mdps(dtype, seed=6)
    kw = {}
    if start == "given":
        kw = dict(initial_policy=np.random.default_rng(7).integers(0, 4, (3, 17)))
    elif start == "random":
        kw = dict(initial_policy="random", seed=11, stream=2)
    ref = mdp.policy_iteration(P, R, 0.95, evaluation=evaluation, **kw)
    got = jax.jit(lambda P, R: pj.policy_iteration(P, R, 0.95, evaluation=evaluation, **kw))(P, R)
    check_solution(got, ref, dtype, exact=evaluation == "exact")


@pytest.mark.parametrize("evaluation", ["iterative", "exact"])
def test_policy_iteration_gridworld(dtype, evaluation):
    P, R, _ = mdp.gridworld(dtype=dtype)
    ref = mdp.policy_iteration(P, R, 0.9, evaluation=evaluation)
    got = jax.jit(lambda P, R: pj.policy_iteration(P, R, 0.9, evaluation=evaluation))(P, R)
    assert got.V.shape == (12,) and got.iterations.shape == ()
    np.testing.assert_array_equal(_ints(got.policy), ref.policy)
    assert int(got.iterations) == ref.iterations and bool(got.converged) == ref.converged
    if evaluation == "iterative":
        np.testing.assert_array_equal(np.asarray(got.V), ref.V)
    else:
        np.testing.assert_allclose(np.asarray(got.V), ref.V, rtol=EXACT_RTOL[dtype], atol=EXACT_RTOL[dtype])


def test_policy_iteration_exact_max_iter_and_vmap():
    P, R = _mdps(np.float32, B=4, S=10, A=3, seed=8)
    ref = mdp.policy_iteration(P, R, 0.99, evaluation="exact", max_iter=1)
    got = pj.policy_iteration(P, R, 0.99, evaluation="exact", max_iter=1)
    np.testing.assert_array_equal(_ints(got.iterations), ref.iterations)
    np.testing.assert_array_equal(np.asarray(got.converged), ref.converged)
    np.testing.assert_array_equal(_ints(got.policy), ref.policy)
    # vmap: a while_loop over the batch; the backup in its body is one folded kernel call
    f = jax.vmap(lambda P, R: pj.policy_iteration(P, R, 0.9, evaluation="exact"))
    Pn, Rn = P.reshape(2, 2, 10, 3, 10), R.reshape(2, 2, 10, 3)
    got = jax.jit(f)(Pn, Rn)
    ref = mdp.policy_iteration(P, R, 0.9, evaluation="exact")
    np.testing.assert_array_equal(_ints(got.policy).reshape(4, 10), ref.policy)
    np.testing.assert_array_equal(_ints(got.iterations).reshape(4), ref.iterations)
    assert str(jax.make_jaxpr(f)(Pn, Rn)).count("pygenmod_backup_dense") == 2  # the first greedy + the loop body
    g = jax.vmap(lambda P, R: pj.policy_iteration(P, R, 0.9))
    assert str(jax.make_jaxpr(g)(Pn, Rn)).count("pygenmod_mdp_solve_dense") == 1
    # iterative, from a vmapped initial policy: evaluation and solve both folded
    pol0 = np.random.default_rng(9).integers(0, 3, (4, 10))
    h = jax.vmap(lambda P, R, p: pj.policy_iteration(P, R, 0.9, initial_policy=p))
    got = jax.jit(h)(Pn, Rn, pol0.reshape(2, 2, 10))
    ref = mdp.policy_iteration(P, R, 0.9, initial_policy=pol0)
    np.testing.assert_array_equal(np.asarray(got.V).reshape(4, 10), ref.V)
    np.testing.assert_array_equal(_ints(got.eval_sweeps).reshape(4), ref.eval_sweeps)


# ============================================================================ errors
def test_not_differentiable():
    P, R = _mdps(np.float32, B=1, S=5, A=2)
    for f in (
        lambda R: pj.solve(P, R, 0.9).V.sum(),
        lambda R: pj.policy_iteration(P, R, 0.9).V.sum(),
        lambda R: pj.policy_evaluation(P, R, 0.9, np.zeros((1, 5), int), evaluation="iterative").V.sum(),
    ):
        with pytest.raises(TypeError, match="not differentiable"):
            jax.grad(f)(R)


def test_bad_input():
    P, R = _mdps(np.float32, B=2, S=5, A=2)
    with pytest.raises(ValueError, match="P: expected"):
        pj.solve(P[..., :4], R, 0.9)
    with pytest.raises(ValueError, match="R: expected"):
        pj.solve(P, np.zeros((2, 5, 2, 5), np.float32), 0.9)
    with pytest.raises(TypeError, match="R"):
        pj.solve(P, R.astype(np.complex64), 0.9)
    with pytest.raises(ValueError, match="gamma"):
        pj.solve(P, R, 1.0)
    with pytest.raises(ValueError, match="stop"):
        pj.solve(P, R, 0.9, stop="max")
    with pytest.raises(ValueError, match="max_iter"):
        pj.policy_iteration(P, R, 0.9, max_iter=0)
    with pytest.raises(ValueError, match="evaluation"):
        pj.policy_evaluation(P, R, 0.9, np.zeros((2, 5), int), evaluation="lu")
    with pytest.raises(ValueError, match="policy: actions"):
        pj.policy_evaluation(P, R, 0.9, np.full((2, 5), 2))
    with pytest.raises(ValueError, match="epsilon"):
        pj.solve(P, R, 0.9, epsilon=0)
    bad = P.copy()
    bad[0, 0, 0] *= 2
    with pytest.raises(ValueError, match="must sum to 1"):
        pj.solve(bad, R, 0.9)
    pj.solve(bad, R, 0.9, check=False)  # unchecked: runs
    # a traced P is checked inside the kernel: the error surfaces when the result is computed
    with pytest.raises(Exception, match="must sum to 1"):
        jax.block_until_ready(jax.jit(lambda P: pj.solve(P, R, 0.9).V)(bad))
    with pytest.raises(Exception, match="must sum to 1"):
        jax.block_until_ready(
            jax.jit(lambda P: pj.policy_evaluation(P, R, 0.9, np.zeros((2, 5), int), evaluation="iterative").V)(bad)
        )
    with pytest.raises(Exception, match="action out of range"):  # a traced policy: checked by the kernel
        jax.block_until_ready(
            jax.jit(lambda p: pj.policy_evaluation(P, R, 0.9, p, evaluation="iterative").V)(np.full((2, 5), 2))
        )
    neg = P.copy()
    neg[1, 2, 1, :2] = [-0.5, 1.5 - neg[1, 2, 1, 2:].sum()]
    with pytest.raises(ValueError, match=">= 0"):
        pj.solve(neg, R, 0.9)
    # initial policies
    with pytest.raises(ValueError, match="seed, stream"):
        pj.policy_iteration(P, R, 0.9, seed=1)
    with pytest.raises(TypeError, match="explicit seed"):
        pj.policy_iteration(P, R, 0.9, initial_policy="random")
    with pytest.raises(TypeError, match="concrete seed"):
        jax.jit(lambda k: pj.policy_iteration(P, R, 0.9, initial_policy="random", seed=k).V)(jax.random.key(0))
    with pytest.raises(TypeError, match="initial_policy"):
        pj.policy_iteration(P, R, 0.9, initial_policy=np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="initial_policy: actions"):
        pj.policy_iteration(P, R, 0.9, initial_policy=np.full((2, 5), -1))
    with pytest.raises(ValueError, match="initial_policy"):
        pj.policy_iteration(P, R, 0.9, initial_policy="zeros", seed=1)


def test_concrete_key_initial_policy():
    """A concrete JAX key draws the NumPy API's random initial policy."""
    P, R = _mdps(np.float32, B=2, S=6, A=3, seed=9)
    key = jax.random.key(4)
    ref = mdp.policy_iteration(P, R, 0.9, initial_policy="random", seed=key, evaluation="exact")
    got = pj.policy_iteration(P, R, 0.9, initial_policy="random", seed=key, evaluation="exact")
    np.testing.assert_array_equal(_ints(got.policy), ref.policy)
    np.testing.assert_array_equal(_ints(got.iterations), ref.iterations)
    assert jnp.asarray(got.V).dtype == np.float32
