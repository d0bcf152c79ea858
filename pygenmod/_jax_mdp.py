"""pygenmod.jax's MDP solvers (re-exported there): policy evaluation, policy iteration and the
modified-policy-iteration ``solve`` of :mod:`pygenmod.mdp`, inside ``jax.jit`` / ``jax.vmap``.

The iterative solvers call the compiled loops of ``mdp.hpp`` (FFI targets
``pygenmod_mdp_solve_dense`` / ``pygenmod_mdp_evaluate_dense``, csrc/jax/mdp.cpp): the very
kernels of the NumPy API, so values, policies, iteration counts and converged flags equal it.
Exact evaluation is a linear solve in ``jnp`` (to rounding, not bitwise: XLA's LU, not
LAPACK's), and exact policy iteration a ``jax.lax.while_loop`` of those solves and the backup
kernel. Dense P only. docs/jax.md has the details.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .jax import (
    _backup_op,
    _batch_first,
    _concrete,
    _empty,
    _float,
    _int_dtype,
    _not_differentiable,
    _per_batch,
    _shape,
)
from .mdp import ROW_SUM_TOL, Evaluation, Solution


def _wide():
    """The dtype of thresholds and residuals: float64 under jax_enable_x64, else float32."""
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


class _M:
    """Shape-checked P (B, S, A, S), R (B, S, A) and gamma (B,) of a batch of MDPs."""

    def __init__(self, P, R, gamma, check):
        P = _float(P, "P", ndim=(3, 4))
        self.single = P.ndim == 3
        self.P = P[None] if self.single else P
        self.B, self.S, self.A, S2 = self.P.shape
        if S2 != self.S:
            raise ValueError(f"P: expected shape (B, S, A, S) or (S, A, S), got {tuple(P.shape)}")
        if self.B == 0:
            raise ValueError("P: empty batch (B = 0)")
        if self.A == 0:
            raise ValueError("P: the MDP has no actions (A = 0)")
        self.lead = () if self.single else (self.B,)
        self.dtype = P.dtype
        R = _float(R, "R", dtype=P.dtype)
        if tuple(R.shape) != self.lead + (self.S, self.A):
            want = ", ".join(str(x) for x in self.lead + (self.S, self.A))
            raise ValueError(
                f"R: expected shape ({want}) (expected rewards; reduce R[..., s'] with P first), got {tuple(R.shape)}"
            )
        self.R = R.reshape(self.B, self.S, self.A)
        self.g = _per_batch(gamma, "gamma", self.B, P.dtype, lo=0.0, hi=1.0, hi_closed=False)
        self.tol = ROW_SUM_TOL[np.dtype(P.dtype)]
        # concrete P: checked here (ValueError now, as pygenmod.mdp); traced P: by the kernels
        self.kernel_check = bool(check) and self._check_concrete(check)

    def _check_concrete(self, check):
        """Checks a concrete P's rows (messages of pygenmod.mdp); True when P is traced."""
        c = _concrete(self.P)
        if c is None:
            return True
        if c.size:
            if not np.isfinite(c).all():
                raise ValueError("P: contains NaN or infinity")
            mn = float(c.min())
            if mn < 0:
                raise ValueError(f"P: transition probabilities must be >= 0, found {mn:.3g}")
            err = float(np.abs(c.sum(-1, dtype=np.float64) - 1).max())
            if err > self.tol:
                raise ValueError(
                    f"P: every row P[b, s, a, :] must sum to 1 (tolerance {self.tol:g}); worst row is off by {err:.3g}"
                )
        return False

    def row_tol(self):
        return self.tol if self.kernel_check else -1.0

    def values(self, V, name):
        if V is None:
            return jnp.zeros((self.B, self.S), self.dtype)
        V = _float(V, name, dtype=self.dtype)
        _shape(V, name, self.lead + (self.S,))
        return V.reshape(self.B, self.S)

    def policy(self, policy, name="policy"):
        """(det (B, S) int, None) or (None, stoch (B, S, A)), checked when concrete."""
        p = jnp.asarray(policy)
        if jnp.issubdtype(p.dtype, jnp.integer):
            _shape(p, name, self.lead + (self.S,))
            c = _concrete(p)
            if c is not None and c.size and (c.min() < 0 or c.max() >= self.A):
                raise ValueError(f"{name}: actions must lie in [0, {self.A})")
            return p.reshape(self.B, self.S).astype(_int_dtype()), None
        if not jnp.issubdtype(p.dtype, jnp.floating):
            raise TypeError(f"{name}: expected int actions or float probabilities, got dtype {p.dtype}")
        p = _float(p, name, dtype=self.dtype)
        _shape(p, name, self.lead + (self.S, self.A))
        c = _concrete(p)
        if c is not None and c.size:
            if c.min() < 0:
                raise ValueError(f"{name}: probabilities must be >= 0")
            err = float(np.abs(c.sum(-1, dtype=np.float64) - 1).max())
            if err > self.tol:
                raise ValueError(f"{name}: each pi[b, s, :] must sum to 1, worst row off by {err:.3g}")
        return None, p.reshape(self.B, self.S, self.A)

    def thresholds(self, epsilon, tol, stop):
        """The stopping threshold per MDP (pygenmod.mdp's rule): in NumPy float64 for a
        concrete gamma (bitwise the NumPy API's), else in jnp (float64 under x64)."""
        if tol is not None:
            t = float(tol)
            if not t >= 0:
                raise ValueError(f"tol: must be >= 0, got {tol}")
            return jnp.full((self.B,), t, _wide())
        eps = float(epsilon)
        if not eps > 0 or not math.isfinite(eps):
            raise ValueError(f"epsilon: must be a finite number > 0, got {epsilon}")
        c = _concrete(self.g)
        if c is not None:
            g = c.astype(np.float64)
            with np.errstate(divide="ignore"):
                th = np.where(g > 0, eps * (1 - g) / g, np.inf)
            return jnp.asarray(th / 2 if stop == "sup" else th, _wide())
        g = self.g.astype(_wide())
        th = jnp.where(g > 0, eps * (1 - g) / jnp.where(g > 0, g, 1), jnp.inf)
        return th / 2 if stop == "sup" else th

    def out(self, x):
        return x[0] if self.single else x


def _choice(x, name, options):
    if x not in options:
        raise ValueError(f"{name}: expected one of {options}, got {x!r}")
    return x


def _pos_int(x, name, minimum=1):
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {x!r}")
    return int(x)


# ============================================================================ kernels
@functools.lru_cache(maxsize=None)
def _solve_op(max_iter: int, span: bool, eval_max: int, eval_rel: float, row_tol: float, elim_tau: float):
    def call(P, R, V0, g, th):
        B, S, A = R.shape
        dt, it = P.dtype, _int_dtype()
        shapes = (
            jax.ShapeDtypeStruct((B, S), dt),
            jax.ShapeDtypeStruct((B, S, A), dt),
            jax.ShapeDtypeStruct((B, S), it),
            jax.ShapeDtypeStruct((B,), it),
            jax.ShapeDtypeStruct((B,), it),
            jax.ShapeDtypeStruct((B,), th.dtype),
            jax.ShapeDtypeStruct((B,), jnp.uint8),
        )
        return tuple(
            jax.ffi.ffi_call("pygenmod_mdp_solve_dense", shapes, vmap_method="sequential")(
                P,
                R,
                V0,
                g,
                th,
                max_iter=np.int64(max_iter),
                span=bool(span),
                eval_max=np.int64(eval_max),
                eval_rel=np.float64(eval_rel),
                row_tol=np.float64(row_tol),
                elim_tau=np.float64(elim_tau),
            )
        )

    return _not_differentiable("solve", _batch_first(call, (0,) * 5, (0,) * 7))


@functools.lru_cache(maxsize=None)
def _evaluate_op(max_iter: int, span: bool, row_tol: float):
    def call(P, R, V0, g, th, det, stoch):
        B, S, _ = R.shape
        dt = P.dtype
        shapes = (
            jax.ShapeDtypeStruct((B, S), dt),
            jax.ShapeDtypeStruct((B,), _int_dtype()),
            jax.ShapeDtypeStruct((B,), th.dtype),
            jax.ShapeDtypeStruct((B,), jnp.uint8),
        )
        return tuple(
            jax.ffi.ffi_call("pygenmod_mdp_evaluate_dense", shapes, vmap_method="sequential")(
                P,
                R,
                V0,
                g,
                th,
                _empty(_int_dtype()) if det is None else det,
                _empty(dt) if stoch is None else stoch,
                max_iter=np.int64(max_iter),
                span=bool(span),
                row_tol=np.float64(row_tol),
            )
        )

    return _not_differentiable("policy_evaluation", _batch_first(call, (0,) * 7, (0,) * 4))


def _solution(m, V, pi, Q, its, res, conv, evs):
    return Solution(*(m.out(x) for x in (V, pi, Q, its, res, conv.astype(bool), evs)))


def _mpi(m, *, epsilon, tol, stop, max_iter, V0, eval_max, eval_rel, check_rows=True):
    stop = _choice(stop, "stop", ("span", "sup"))
    max_iter = _pos_int(max_iter, "max_iter")
    th = m.thresholds(epsilon, tol, stop)
    op = _solve_op(
        max_iter,
        stop == "span",
        int(eval_max),
        float(eval_rel),
        m.row_tol() if check_rows else -1.0,
        float(m.tol),  # action elimination, as pygenmod.mdp (same floats as full sweeps)
    )
    V, Q, pi, its, evs, res, conv = op(m.P, m.R, V0, m.g, th)
    return V, pi, Q, its, res, conv, evs


# ============================================================================ public functions
def modified_policy_iteration(
    P,
    R,
    gamma,
    *,
    m: int | None = None,
    epsilon: float = 1e-6,
    tol: float | None = None,
    stop: str = "span",
    max_iter: int = 10_000,
    max_eval: int = 500,
    eval_rel: float = 0.0,
    V0=None,
    check: bool = True,
) -> Solution:
    """:func:`pygenmod.mdp.modified_policy_iteration` (= :func:`pygenmod.mdp.solve`) for JAX
    arrays (dense P), inside ``jit`` / ``vmap`` (not ``grad``): the NumPy API's compiled loop
    (per-MDP stopping, span rule, action elimination), so V, the policy, Q, iteration counts,
    residuals and converged flags equal it (see docs/jax.md for the threshold without x64).

    Returns :class:`pygenmod.mdp.Solution` of JAX arrays (0-d arrays for one MDP where the NumPy
    API returns Python scalars; integers int64 under x64, else int32; residual float64 under
    x64, else float32). ``check``: a concrete P's rows are checked now (ValueError), a traced
    P's inside the kernel (the error surfaces when the result is computed).
    """
    if m is None:
        eval_max = _pos_int(max_eval, "max_eval")
        eval_rel = float(eval_rel)
        if not eval_rel >= 0:
            raise ValueError(f"eval_rel: must be >= 0, got {eval_rel}")
    else:
        eval_max, eval_rel = _pos_int(m, "m", minimum=0), -1.0
    md = _M(P, R, gamma, check)
    out = _mpi(
        md,
        epsilon=epsilon,
        tol=tol,
        stop=stop,
        max_iter=max_iter,
        V0=md.values(V0, "V0"),
        eval_max=eval_max,
        eval_rel=eval_rel,
    )
    return _solution(md, *out)


solve = modified_policy_iteration


def _exact_values(m, det, stoch):
    """V^pi from (I - g P_pi) V = r_pi (float64 under x64, as pygenmod.mdp; else float32)."""
    wide = _wide()
    if det is not None:
        r_pi = jnp.take_along_axis(m.R, det[..., None], -1)[..., 0]
        P_pi = jnp.take_along_axis(m.P, det[..., None, None], 2)[:, :, 0, :]
    else:
        r_pi = (stoch * m.R).sum(-1)
        P_pi = jnp.einsum("bsa,bsat->bst", stoch, m.P)
    M = jnp.eye(m.S, dtype=wide)[None] - m.g.astype(wide)[:, None, None] * P_pi.astype(wide)
    return jnp.linalg.solve(M, r_pi.astype(wide)[..., None])[..., 0].astype(m.dtype)


def policy_evaluation(
    P,
    R,
    gamma,
    policy,
    *,
    evaluation: str = "exact",
    epsilon: float = 1e-6,
    tol: float | None = None,
    stop: str = "span",
    max_iter: int = 100_000,
    V0=None,
    check: bool = True,
) -> Evaluation:
    """:func:`pygenmod.mdp.policy_evaluation` for JAX arrays (dense P), inside ``jit`` /
    ``vmap`` (not ``grad``): the value of a deterministic (B, S) int or stochastic (B, S, A)
    policy. ``evaluation="iterative"``: the NumPy API's compiled sweeps (equal results);
    ``"exact"``: ``jnp.linalg.solve`` of ``(I - gamma P_pi) V = r_pi`` (float64 under x64, else
    float32; equal to the NumPy API to rounding). Returns :class:`pygenmod.mdp.Evaluation`.
    """
    evaluation = _choice(evaluation, "evaluation", ("exact", "iterative"))
    m = _M(P, R, gamma, check)
    det, stoch = m.policy(policy)
    if evaluation == "exact":
        V = _exact_values(m, det, stoch)
        its = jnp.zeros((m.B,), _int_dtype())
        res = jnp.zeros((m.B,), _wide())
        conv = jnp.ones((m.B,), bool)
    else:
        stop = _choice(stop, "stop", ("span", "sup"))
        max_iter = _pos_int(max_iter, "max_iter")
        th = m.thresholds(epsilon, tol, stop)
        V, its, res, conv = _evaluate_op(max_iter, stop == "span", m.row_tol())(
            m.P, m.R, m.values(V0, "V0"), m.g, th, det, stoch
        )
    return Evaluation(*(m.out(x) for x in (V, its, res, conv.astype(bool))))


def _initial_policy(m, initial_policy, seed, stream):
    """The (B, S) starting policy (pygenmod.mdp's rule; "random" needs a concrete seed)."""
    if isinstance(initial_policy, str):
        _choice(initial_policy, "initial_policy", ("random",))
        if seed is None:
            raise TypeError(
                "seed: initial_policy='random' in pygenmod.jax needs an explicit seed (inside jit a "
                "default one would be drawn once, when tracing)"
            )
        from . import random as _random
        from ._seed import resolve_seed

        try:
            key = resolve_seed(seed)
        except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
            raise TypeError(
                "seed: initial_policy='random' needs a concrete seed (an int or a key that is not a traced "
                "argument of the jitted function); the policy is drawn when tracing"
            ) from None
        # uniform(0, 1) per (MDP, state), row b keyed by stream + b: pygenmod.mdp's policy
        u = _random.uniform(key, (m.B, m.S), stream=stream, dtype=np.float64)
        return jnp.asarray(np.minimum((u * m.A).astype(np.int64), m.A - 1), _int_dtype())
    if seed is not None or stream != 0:
        raise ValueError("seed, stream: only used with initial_policy='random'")
    if not jnp.issubdtype(jnp.asarray(initial_policy).dtype, jnp.integer):
        raise TypeError("initial_policy: expected int actions (B, S), 'random' or None")
    det, _ = m.policy(initial_policy, "initial_policy")
    return det


def policy_iteration(
    P,
    R,
    gamma,
    *,
    evaluation: str = "iterative",
    epsilon: float = 1e-6,
    stop: str = "span",
    max_iter: int = 1000,
    max_eval: int = 100_000,
    initial_policy=None,
    seed=None,
    stream: int = 0,
    check: bool = True,
) -> Solution:
    """:func:`pygenmod.mdp.policy_iteration` for JAX arrays (dense P), inside ``jit`` / ``vmap``
    (not ``grad``); same options and :class:`pygenmod.mdp.Solution` (as
    :func:`modified_policy_iteration` for the array types).

    ``evaluation="iterative"``: the NumPy API's compiled loop (equal results, iteration counts
    and flags). ``"exact"``: a ``jax.lax.while_loop`` of exact evaluations (``jnp.linalg.solve``)
    and greedy improvements (the backup kernel), keeping the current action on ties, until the
    policy repeats for every MDP (or ``max_iter``): the same policies and iteration counts as the
    NumPy API, V and Q to rounding. ``initial_policy="random"`` draws the NumPy API's policy
    when tracing, so its ``seed`` must be concrete (an int or a key outside ``jit``).
    """
    evaluation = _choice(evaluation, "evaluation", ("iterative", "exact"))
    if initial_policy is None and (seed is not None or stream != 0):
        raise ValueError("seed, stream: only used with initial_policy='random'")
    max_iter = _pos_int(max_iter, "max_iter")
    m = _M(P, R, gamma, check)
    pi0 = None if initial_policy is None else _initial_policy(m, initial_policy, seed, stream)
    if evaluation == "iterative":
        max_eval = _pos_int(max_eval, "max_eval")
        V0 = m.values(None, "V0")
        sweeps0 = 0
        if pi0 is not None:
            stop = _choice(stop, "stop", ("span", "sup"))
            th = m.thresholds(epsilon, None, stop)
            V0, sweeps0, _, _ = _evaluate_op(max_eval, stop == "span", m.row_tol())(m.P, m.R, V0, m.g, th, pi0, None)
        V, pi, Q, its, res, conv, evs = _mpi(
            m,
            epsilon=epsilon,
            tol=None,
            stop=stop,
            max_iter=max_iter,
            V0=V0,
            eval_max=max_eval,
            eval_rel=0.0,
            check_rows=pi0 is None,  # (the evaluation checked the rows)
        )
        return _solution(m, V, pi, Q, its, res, conv, evs + sweeps0)
    backup = _backup_op(0)
    I = _int_dtype()  # noqa: E741
    if pi0 is None:  # the greedy policy of V = 0
        pi0 = backup(m.P, m.R, jnp.zeros((m.B, m.S), m.dtype), m.g, None, None, None)[2]

    def cond(state):
        k, _, _, done, _, _ = state
        return (k < max_iter) & ~jnp.all(done)

    def body(state):
        k, pi, its, done, _, _ = state
        its = its + (~done).astype(I)
        V = _exact_values(m, pi, None)
        Q, _, new = backup(m.P, m.R, V, m.g, None, None, None)
        # keep the current action where it is still greedy (ties), so the loop terminates
        q_pi = jnp.take_along_axis(Q, pi[..., None], -1)[..., 0]
        q_new = jnp.take_along_axis(Q, new[..., None], -1)[..., 0]
        new = jnp.where(q_pi >= q_new, pi, new)
        done = done | jnp.all(new == pi, -1)
        return k + 1, new, its, done, V, Q

    init = (
        jnp.asarray(0, I),
        pi0,
        jnp.zeros((m.B,), I),
        jnp.zeros((m.B,), bool),
        jnp.zeros((m.B, m.S), m.dtype),
        jnp.zeros((m.B, m.S, m.A), m.dtype),
    )
    _, pi, its, done, V, Q = jax.lax.while_loop(cond, body, init)
    zeros = jnp.zeros((m.B,), I)
    return _solution(m, V, pi, Q, its, jnp.zeros((m.B,), _wide()), done, zeros)


__all__ = ["modified_policy_iteration", "policy_evaluation", "policy_iteration", "solve"]
