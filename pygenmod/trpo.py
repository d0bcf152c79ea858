"""TRPO's machinery, batched over B independent problems: conjugate gradient on a
Fisher-vector product, the natural-gradient step size for a KL limit, and the backtracking
line search (Schulman et al. 2015, appendix C).

A TRPO step with policy parameters ``theta`` (B, n), the surrogate's gradient ``g`` (B, n),
``fvp(v) = F v`` (a callable on (B, n) arrays, e.g. :func:`pygenmod.torch.fisher_vector_product`)::

    cg = conjugate_gradient(fvp, g, damping=0.1)            # x ~ F^-1 g
    beta = natural_step_size(cg.x, fvp(cg.x) + 0.1 * cg.x, max_kl)
    ls = line_search(surrogate, kl, theta, beta[:, None] * cg.x, max_kl=max_kl,
                     expected_improve=(g * cg.x).sum(-1) * beta)

or :func:`trpo_step` for all three. Everything here is a composition of array operations in
the namespace of the inputs (NumPy, CuPy or torch: no copies between them, results in the
caller's array type): the work of a step is in the user's ``fvp`` and surrogate, which
dominate the handful of vector operations per CG iteration, so no compiled kernel is used.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ._arrays import xp_of
from ._typing import Array, ArrayLike

#: Per-problem status codes of :class:`CGResult` (``CG_STATUS[code]`` is the name).
CG_CONVERGED, CG_MAX_ITER, CG_BREAKDOWN = 0, 1, 2
CG_STATUS = ("converged", "max_iter", "breakdown")


class CGResult(NamedTuple):
    """Conjugate gradient on B problems ``(F + damping I) x = g``.

    status: ``CG_CONVERGED`` (residual at or below ``max(tol * ||g||, atol)``),
    ``CG_MAX_ITER`` (``max_iter`` iterations without converging) or ``CG_BREAKDOWN``
    (a search direction with ``p^T (F + damping I) p <= 0`` or not finite: the matrix is not
    positive definite; ``x`` is the last iterate before that direction).
    """

    x: object  #: (B, n) solution (the last iterate where not converged)
    status: object  #: (B,) int64 status code, see CG_STATUS
    iterations: object  #: (B,) int64 CG iterations (updates of x) done
    residual: object  #: (B,) norm of the (recursively updated) residual g - (F + damping I) x

    @property
    def converged(self) -> Array | bool:
        """(B,) bool: status == CG_CONVERGED."""
        return self.status == CG_CONVERGED


class LineSearchResult(NamedTuple):
    x: object  #: (B, n) accepted parameters (the start ``x0`` where no step was accepted)
    accepted: object  #: (B,) bool, a step was accepted
    step_frac: object  #: (B,) fraction of the full step accepted (``backtrack_ratio**k``; 0 if none)
    backtracks: object  #: (B,) int64 step fractions rejected before the accepted one
    improvement: object  #: (B,) surrogate(x) - surrogate(x0) (0 where no step was accepted)
    kl: object  #: (B,) KL at the accepted x (0 where no step was accepted)


class TRPOStep(NamedTuple):
    x: object  #: (B, n) new parameters
    search: LineSearchResult  #: the line search (accepted, step_frac, improvement, kl)
    cg: CGResult  #: the conjugate-gradient solve of F x = g
    step_size: object  #: (B,) natural-gradient step size sqrt(2 max_kl / x^T F x)


# ============================================================================ namespaces
class _Ops:
    """The few array operations this module needs, for NumPy, CuPy and torch arrays alike
    (torch spells copy/astype/where-with-scalars differently)."""

    def __init__(self, like, name):
        self.torch = type(like).__module__.split(".")[0] == "torch"
        if self.torch:
            import torch

            self.xp = torch
            if not like.dtype.is_floating_point or like.dtype not in (torch.float32, torch.float64):
                raise TypeError(f"{name}: expected a float32 or float64 tensor, got dtype {like.dtype}")
            self.device = like.device
        else:
            if not hasattr(like, "dtype"):
                raise TypeError(f"{name}: expected a NumPy, CuPy or torch array, got {type(like).__name__}")
            self.xp = xp_of(like)
            if np.dtype(like.dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
                raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {like.dtype}")
        self.dtype = like.dtype

    def copy(self, a):
        return a.detach().clone() if self.torch else a.copy()

    def zeros(self, n, kind):
        if self.torch:
            t = {"bool": self.xp.bool, "int": self.xp.int64, "float": self.dtype}[kind]
            return self.xp.zeros(n, dtype=t, device=self.device)
        t = {"bool": bool, "int": np.int64, "float": self.dtype}[kind]
        return self.xp.zeros(n, dtype=t)

    def full(self, n, value):
        if self.torch:
            return self.xp.full((n,), float(value), dtype=self.dtype, device=self.device)
        return self.xp.full((n,), value, dtype=self.dtype)

    def asarray(self, a):
        """A float array in this namespace and dtype (scalars and host arrays are moved)."""
        if self.torch:
            return self.xp.as_tensor(
                np.asarray(a) if not isinstance(a, self.xp.Tensor) else a, dtype=self.dtype, device=self.device
            )
        return self.xp.asarray(a, dtype=self.dtype)

    def where(self, c, a, b):
        return self.xp.where(c, a, b)

    def dot(self, a, b):
        return (a * b).sum(-1)

    def any(self, a) -> bool:
        return bool(a.any())

    def all_finite(self, a) -> bool:
        return bool(self.xp.isfinite(a).all())

    def as_int(self, a):
        return a.to(self.xp.int64) if self.torch else a.astype(np.int64)


def _problems(g, name, ops):
    """(B, n) view of g and whether the input was a single (n,) problem."""
    if g.ndim == 1:
        return g[None], True
    if g.ndim != 2:
        raise ValueError(f"{name}: expected shape (B, n) or (n,), got {tuple(g.shape)}")
    return g, False


def _like(a, name, ops, shape, single):
    """An extra (B, n) argument: same namespace, cast to the call's dtype, shape checked."""
    if not ops.torch and type(a).__module__.split(".")[0] == "torch":
        raise TypeError(f"{name}: expected the same array type as the first argument, got a torch tensor")
    a = ops.asarray(a)
    if single and a.ndim == 1:
        a = a[None]
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(a.shape)}")
    if not ops.all_finite(a):
        raise ValueError(f"{name}: contains NaN or infinity")
    return a


def _per_problem(value, name, B, ops, *, positive=False, lo=None):
    """A scalar or (B,) float option as a (B,) array of the call's dtype."""
    if isinstance(value, numbers.Real):
        v = float(value)
        if not math.isfinite(v) or (positive and not v > 0) or (lo is not None and v < lo):
            want = "a finite number > 0" if positive else f"a finite number >= {lo}"
            raise ValueError(f"{name}: must be {want}, got {value}")
        return ops.full(B, v)
    a = ops.asarray(value)
    if tuple(a.shape) != (B,):
        raise ValueError(f"{name}: expected a scalar or shape ({B},), got {tuple(a.shape)}")
    if not ops.all_finite(a) or (positive and ops.any(a <= 0)) or (lo is not None and ops.any(a < lo)):
        want = "> 0" if positive else f">= {lo}"
        raise ValueError(f"{name}: every value must be finite and {want}")
    return a


def _call(fn, x, name, shape, ops):
    """Call a user callable on (B, n) and check it returned an array of ``shape``."""
    y = fn(x)
    if not hasattr(y, "shape") or tuple(y.shape) != tuple(shape):
        got = tuple(y.shape) if hasattr(y, "shape") else type(y).__name__
        raise ValueError(f"{name}: must return an array of shape {tuple(shape)}, got {got}")
    is_torch = type(y).__module__.split(".")[0] == "torch"
    if is_torch != ops.torch or (not is_torch and xp_of(y) is not ops.xp):
        raise TypeError(
            f"{name}: must return the array type of the inputs ({ops.xp.__name__}), "
            f"got {type(y).__module__}.{type(y).__name__}"
        )
    return y.detach().to(ops.dtype) if ops.torch else y.astype(ops.dtype, copy=False)


def _out(single, *arrays):
    return tuple(a[0] if single else a for a in arrays)


# ============================================================================ conjugate gradient
def conjugate_gradient(
    fvp: Callable[[Array], Any],
    g: ArrayLike,
    *,
    damping: float | ArrayLike = 0.0,
    tol: float = 1e-10,
    atol: float = 0.0,
    max_iter: int = 10,
    x0: ArrayLike | None = None,
) -> CGResult:
    """Solve ``(F + damping I) x = g`` for B problems at once by conjugate gradient.

    fvp: a callable taking a (B, n) array ``v`` and returning ``F v`` (B, n), in the array type
    of ``g`` (NumPy, CuPy or torch). g: (B, n) right-hand sides (or (n,) for one problem,
    returned without the batch axis). damping: >= 0, scalar or (B,). A problem stops when its
    residual norm is at most ``max(tol * ||g||, atol)`` (scipy's ``cg`` rule with
    ``rtol=tol``), after ``max_iter`` iterations (TRPO implementations use 10), or at a
    breakdown (``p^T (F + damping I) p <= 0``: F is not positive definite). Stopped problems
    keep their values while the others iterate; ``fvp`` is always called on the whole (B, n)
    batch (the directions of stopped problems are left as they were).

    Returns :class:`CGResult` (x, status, iterations, residual), arrays in g's type.
    """
    ops = _Ops(g, "g")
    g, single = _problems(g.detach() if ops.torch else g, "g", ops)
    if not ops.all_finite(g):
        raise ValueError("g: contains NaN or infinity")
    B, n = g.shape
    if not callable(fvp):
        raise TypeError(f"fvp: expected a callable v -> F v, got {type(fvp).__name__}")
    lam = _per_problem(damping, "damping", B, ops, lo=0.0)[:, None]
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 0:
        raise ValueError(f"max_iter: must be an integer >= 0, got {max_iter!r}")
    for v, nm in ((tol, "tol"), (atol, "atol")):
        if not (isinstance(v, numbers.Real) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{nm}: must be a finite number >= 0, got {v!r}")

    def A(v):
        return _call(fvp, v, "fvp", (B, n), ops) + lam * v

    if x0 is None:
        x = ops.zeros((B, n), "float")
        r = ops.copy(g)
    else:
        x = ops.copy(_like(x0, "x0", ops, (B, n), single))
        r = g - A(x)
    p = ops.copy(r)
    rr = ops.dot(r, r)
    gnorm = ops.dot(g, g) ** 0.5
    thresh = ops.where(gnorm * tol > atol, gnorm * tol, ops.full(B, atol))
    status = ops.as_int(ops.zeros(B, "int") + CG_MAX_ITER)
    its = ops.zeros(B, "int")
    done = rr**0.5 <= thresh
    status = ops.where(done, status * 0 + CG_CONVERGED, status)
    active = ~done
    one = ops.full(B, 1.0)
    for _ in range(max_iter):
        if not ops.any(active):
            break
        Ap = A(p)
        pAp = ops.dot(p, Ap)
        bad = active & ~(pAp > 0)  # also catches NaN
        status = ops.where(bad, status * 0 + CG_BREAKDOWN, status)
        active = active & ~bad
        alpha = ops.where(active, rr / ops.where(active, pAp, one), 0 * one)[:, None]
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = ops.where(active, ops.dot(r, r), rr)
        its = its + ops.as_int(active)
        conv = active & (rr_new**0.5 <= thresh)
        status = ops.where(conv, status * 0 + CG_CONVERGED, status)
        active = active & ~conv
        beta = ops.where(active, rr_new / ops.where(rr > 0, rr, one), 0 * one)[:, None]
        p = ops.where(active[:, None], r + beta * p, p)
        rr = rr_new
    res = rr**0.5
    return CGResult(*_out(single, x, status, its, res))


# ============================================================================ step size
def natural_step_size(x: ArrayLike, Fx: ArrayLike, max_kl: float | ArrayLike) -> Array | float:
    """The natural-gradient step size ``beta = sqrt(2 max_kl / x^T F x)`` per problem.

    x: (B, n) search directions (e.g. ``conjugate_gradient(...).x``); Fx: (B, n) their
    Fisher-vector products ``F x`` (with the same damping as the solve, as TRPO
    implementations do); max_kl: the KL limit delta > 0, scalar or (B,). The step
    ``beta * x`` has quadratic KL ``0.5 beta^2 x^T F x = max_kl``. A problem with
    ``x^T F x <= 0`` (a zero direction, or F not positive definite along x) has no step size:
    ``ValueError`` naming the problems.
    """
    ops = _Ops(x, "x")
    x, single = _problems(x.detach() if ops.torch else x, "x", ops)
    if not ops.all_finite(x):
        raise ValueError("x: contains NaN or infinity")
    B, n = x.shape
    Fx = _like(Fx.detach() if ops.torch and hasattr(Fx, "detach") else Fx, "Fx", ops, (B, n), single)
    delta = _per_problem(max_kl, "max_kl", B, ops, positive=True)
    xFx = ops.dot(x, Fx)
    bad = ~(xFx > 0)
    if ops.any(bad):
        idx = [
            int(i)
            for i in np.flatnonzero(np.asarray(bad.cpu() if ops.torch else (bad.get() if hasattr(bad, "get") else bad)))
        ]
        raise ValueError(
            f"Fx: x^T F x must be > 0 for a step size (zero direction or F not positive "
            f"definite along x); problems {idx[:10]}{' ...' if len(idx) > 10 else ''} have x^T F x <= 0"
        )
    beta = (2 * delta / xFx) ** 0.5
    return beta[0] if single else beta


# ============================================================================ line search
def line_search(
    surrogate: Callable[[Array], Any],
    kl: Callable[[Array], Any],
    x0: ArrayLike,
    fullstep: ArrayLike,
    *,
    max_kl: float | ArrayLike,
    expected_improve: ArrayLike | None = None,
    accept_ratio: float = 0.1,
    backtrack_ratio: float = 0.5,
    max_backtracks: int = 10,
) -> LineSearchResult:
    """Backtracking line search of TRPO on B problems: try ``x0 + f * fullstep`` for
    ``f = backtrack_ratio**k``, k = 0 .. max_backtracks - 1, and accept the first step whose

    - surrogate improves: ``surrogate(x) - surrogate(x0) > 0`` and, when ``expected_improve``
      (the linear prediction at the full step, ``g^T fullstep``, (B,)) is given,
      ``improvement >= accept_ratio * f * expected_improve``;
    - mean KL stays under the limit: ``kl(x) <= max_kl``.

    surrogate, kl: callables on (B, n) parameters returning (B,) values (surrogate: higher is
    better; kl: the mean KL between the old policy and the one at x). Every call gets the
    whole batch; problems that accepted a step keep their accepted values. max_kl: scalar or
    (B,). Problems with no accepted step keep ``x0`` (``accepted`` False).
    """
    ops = _Ops(x0, "x0")
    x0, single = _problems(x0.detach() if ops.torch else x0, "x0", ops)
    if not ops.all_finite(x0):
        raise ValueError("x0: contains NaN or infinity")
    B, n = x0.shape
    step = _like(
        fullstep.detach() if ops.torch and hasattr(fullstep, "detach") else fullstep, "fullstep", ops, (B, n), single
    )
    delta = _per_problem(max_kl, "max_kl", B, ops, positive=True)
    expected = None if expected_improve is None else _per_problem(expected_improve, "expected_improve", B, ops)
    if not (isinstance(accept_ratio, numbers.Real) and 0 <= accept_ratio < 1):
        raise ValueError(f"accept_ratio: must lie in [0, 1), got {accept_ratio!r}")
    if not (isinstance(backtrack_ratio, numbers.Real) and 0 < backtrack_ratio < 1):
        raise ValueError(f"backtrack_ratio: must lie in (0, 1), got {backtrack_ratio!r}")
    if isinstance(max_backtracks, bool) or not isinstance(max_backtracks, numbers.Integral) or max_backtracks < 1:
        raise ValueError(f"max_backtracks: must be an integer >= 1, got {max_backtracks!r}")
    for fn, nm in ((surrogate, "surrogate"), (kl, "kl")):
        if not callable(fn):
            raise TypeError(f"{nm}: expected a callable on (B, n) parameters, got {type(fn).__name__}")

    f0 = _call(surrogate, x0, "surrogate", (B,), ops)
    x = ops.copy(x0)
    accepted = ops.zeros(B, "bool")
    frac = ops.zeros(B, "float")
    backtracks = ops.zeros(B, "int")
    improvement = ops.zeros(B, "float")
    kl_acc = ops.zeros(B, "float")
    for k in range(int(max_backtracks)):
        f = float(backtrack_ratio) ** k
        cand = ops.where(accepted[:, None], x, x0 + f * step)
        fval = _call(surrogate, cand, "surrogate", (B,), ops)
        klv = _call(kl, cand, "kl", (B,), ops)
        imp = fval - f0
        ok = imp > 0
        if expected is not None:
            ok = ok & (imp >= accept_ratio * f * expected)
        ok = ok & (klv <= delta) & ~accepted
        x = ops.where(ok[:, None], cand, x)
        frac = ops.where(ok, ops.full(B, f), frac)
        improvement = ops.where(ok, imp, improvement)
        kl_acc = ops.where(ok, klv, kl_acc)
        backtracks = backtracks + ops.as_int(~accepted & ~ok)
        accepted = accepted | ok
        if not ops.any(~accepted):
            break
    return LineSearchResult(*_out(single, x, accepted, frac, backtracks, improvement, kl_acc))


# ============================================================================ one TRPO step
def trpo_step(
    x0: ArrayLike,
    g: ArrayLike,
    fvp: Callable[[Array], Any],
    surrogate: Callable[[Array], Any],
    kl: Callable[[Array], Any],
    *,
    max_kl: float = 0.01,
    damping: float = 0.1,
    cg_iters: int = 10,
    cg_tol: float = 1e-10,
    accept_ratio: float = 0.1,
    backtrack_ratio: float = 0.5,
    max_backtracks: int = 10,
) -> TRPOStep:
    """One TRPO update of B problems: solve ``(F + damping I) x = g`` by
    :func:`conjugate_gradient`, scale by :func:`natural_step_size` (with ``(F + damping I) x``,
    as the reference implementations), then :func:`line_search` from ``x0`` along the full step
    with the expected improvement ``g^T fullstep``.

    x0: (B, n) current parameters; g: (B, n) gradient of the surrogate at x0; fvp, surrogate,
    kl: callables as in the functions above (always called with (B, n) arrays; B = 1 when
    x0 and g are a single (n,) problem, whose results come back without the batch axis). A problem whose CG direction has no step size
    (``x^T F x <= 0``, e.g. g = 0) keeps x0 (``search.accepted`` False).
    """
    ops = _Ops(g, "g")
    gg, single = _problems(g.detach() if ops.torch else g, "g", ops)
    B, n = gg.shape
    x0n = _like(x0.detach() if ops.torch and hasattr(x0, "detach") else x0, "x0", ops, (B, n), single)
    cg = conjugate_gradient(fvp, gg, damping=damping, tol=cg_tol, max_iter=cg_iters)
    lam = _per_problem(damping, "damping", B, ops, lo=0.0)[:, None]
    Fx = _call(fvp, cg.x, "fvp", (B, n), ops) + lam * cg.x
    xFx = ops.dot(cg.x, Fx)
    usable = xFx > 0
    delta = _per_problem(max_kl, "max_kl", B, ops, positive=True)
    beta = ops.where(usable, (2 * delta / ops.where(usable, xFx, ops.full(B, 1.0))) ** 0.5, 0 * delta)
    full = beta[:, None] * cg.x
    ls = line_search(
        surrogate,
        kl,
        x0n,
        full,
        max_kl=delta,
        expected_improve=ops.dot(gg, full),
        accept_ratio=accept_ratio,
        backtrack_ratio=backtrack_ratio,
        max_backtracks=max_backtracks,
    )
    # a zero step "improves" nothing, so unusable problems were never accepted
    if single:
        return TRPOStep(ls.x[0], LineSearchResult(*(a[0] for a in ls)), CGResult(*(a[0] for a in cg)), beta[0])
    return TRPOStep(ls.x, ls, cg, beta)


__all__ = [
    "CGResult",
    "CG_BREAKDOWN",
    "CG_CONVERGED",
    "CG_MAX_ITER",
    "CG_STATUS",
    "LineSearchResult",
    "TRPOStep",
    "conjugate_gradient",
    "line_search",
    "natural_step_size",
    "trpo_step",
]
