"""Categorical distributions from logits: log-probability, entropy, KL, with masks and gradients;
the policy-gradient pieces built on them (GAIL's entropy-regularised surrogate, SI-GARL's
policy-improvement target).

Conventions (docs/categorical.md):

- ``logits`` is ``(..., K)``: the last axis holds the K actions of one distribution, leading
  axes are a batch (a single ``(K,)`` row gives scalar results). float32 / float64; other float
  arguments are cast to the logits' dtype. Results are ``logits.shape[:-1]``.
- ``mask`` (optional, bool or 0/1 integers): True where the action is **allowed**; shape
  ``logits.shape`` or ``(K,)`` (one mask for every row). A masked action has probability 0 and
  its logit is never read (it may hold anything, -inf or NaN included); its gradient is 0.
  (MCTS's ``invalid_actions`` is the complement: pass ``mask=~invalid``.)
- The log-softmax is stable (shifted by the row maximum over allowed actions): logits of any
  finite size are fine. A NaN or infinite logit at an allowed action, or a row that masks every
  action, raises ``ValueError`` naming the argument and the row.
- Infinite values are honest: ``log_prob`` of a masked action is ``-inf``; ``KL(p || q)`` is
  ``+inf`` where p puts mass on an action q masks. Their gradients are NaN (they do not exist).
- Backward functions take the forward's arguments and the upstream gradient ``grad_<output>``
  and return a tuple of the gradients of the differentiable inputs (the logits), computed by
  one fused kernel per row. They check shapes and dtypes; they assume the forward succeeded.
"""

from __future__ import annotations

import numpy as np

from . import _fast
from . import _validate as val
from ._arrays import is_device, output_like, returner, xp_of
from ._dispatch import kernel
from ._status import Status, input_error
from ._typing import Array, ArrayLike, QIs, Reduction
from .adversarial import REDUCTIONS, LossGrad, _fast_rows, _grad_scale, numpy_sum_chunk

# Per-row status codes of the kernels (categorical.hpp's enum, exported by _cpu_categorical as
# STATUS; tests/test_contracts.py checks this copy, which the numba backend uses).
_STATUS = {"OK": 0, "P_ALL_MASKED": 1, "P_NONFINITE": 2, "Q_ALL_MASKED": 3, "Q_NONFINITE": 4, "BAD_ACTION": 5}
_P_ALL_MASKED, _P_NONFINITE, _Q_ALL_MASKED, _Q_NONFINITE, _BAD_ACTION = (
    _STATUS[k] for k in ("P_ALL_MASKED", "P_NONFINITE", "Q_ALL_MASKED", "Q_NONFINITE", "BAD_ACTION")
)


class _Rows:
    """Logits as (N, K) rows plus what is needed to shape results and name errors."""

    def __init__(self, logits, name, dtype=None, xp=None):
        self.back = returner(logits)
        a = val.float_array(logits, name, finite=False, dtype=dtype, xp=xp)  # the kernels flag NaN/inf
        if a.ndim == 0:
            raise ValueError(f"{name}: expected shape (..., K) with an actions axis, got a scalar")
        self.name, self.lead, self.K = name, a.shape[:-1], a.shape[-1]
        if self.K == 0:
            raise ValueError(f"{name}: the actions axis is empty (K = 0)")
        self.x = a.reshape(-1, self.K)
        self.xp = xp_of(a)
        self.dtype = a.dtype

    def mask(self, mask, name):
        """A (N, K) or shared (1, K) uint8 mask, or None."""
        if mask is None:
            return None
        m = val.bool_mask(mask, name, xp=self.xp)
        if m.shape == (self.K,):
            return m.reshape(1, self.K).view(np.uint8)
        if m.shape != self.lead + (self.K,):
            val.check_shape(m, name, self.lead + (self.K,))
        return m.reshape(-1, self.K).view(np.uint8)

    def like(self, x, name):
        """Another (..., K) float argument of the same shape, as (N, K) rows of this dtype."""
        a = val.float_array(x, name, finite=False, dtype=self.dtype, xp=self.xp)
        val.check_shape(a, name, self.lead + (self.K,))
        return a.reshape(-1, self.K)

    def per_row(self, g, name):
        """An upstream gradient of shape ``lead`` as (N,) of this dtype."""
        a = val.float_array(g, name, dtype=self.dtype, xp=self.xp, finite=False)
        if a.shape != self.lead:
            a = self.xp.broadcast_to(a, self.lead) if a.ndim == 0 else a
            val.check_shape(a, name, self.lead)
        return self.xp.ascontiguousarray(a.reshape(-1))

    def result(self, y):
        return self.back(y.reshape(self.lead))

    def grad(self, g):
        return self.back(g.reshape(self.lead + (self.K,)))


def _run(family_fn, *args):
    return kernel("categorical", family_fn, is_device(args[0]))[1](*args)


def _raise_status(status, names, actions=None, K=None):
    """ValueError for the first bad row (names: p logits, p mask, q logits, q mask)."""
    st = status.get() if hasattr(status, "get") else status
    bad = np.flatnonzero(st)
    if not bad.size:
        return
    r = int(bad[0])
    code = int(st[r])
    p_logits, p_mask, q_logits, q_mask = names
    # ValueErrors carrying the per-row pygenmod.Status (.status): NONFINITE_INPUT, DEGENERATE
    nonfinite = (st == _P_NONFINITE) | (st == _Q_NONFINITE)
    masked = (st == _P_ALL_MASKED) | (st == _Q_ALL_MASKED)
    if code in (_P_ALL_MASKED, _Q_ALL_MASKED):
        name = p_mask if code == _P_ALL_MASKED else q_mask
        raise input_error(
            f"{name}: row {r} masks every action (a distribution needs at least one)", masked, Status.DEGENERATE
        )
    if code in (_P_NONFINITE, _Q_NONFINITE):
        name = p_logits if code == _P_NONFINITE else q_logits
        raise input_error(
            f"{name}: row {r} has a NaN or infinite logit at an allowed action (mask the action instead)", nonfinite
        )
    a = actions.reshape(-1)[r]
    raise ValueError(f"actions: row {r} selects action {int(a)}, outside [0, {K})")


def _actions(actions, rows):
    a = val.int_array(actions, "actions", xp=rows.xp)
    if a.shape != rows.lead:
        val.check_shape(a, "actions", rows.lead)
    return a.reshape(-1)


_NAMES = ("logits", "mask", None, None)


def _host_mask(mask) -> bool:
    """Whether a mask can go to a one-call path: None or a NumPy array (the path takes bool
    arrays of the logits' shape or (K,) and declines the rest, which the general path converts
    or rejects)."""
    return mask is None or type(mask) is np.ndarray


# ------------------------------------------------------------------------------- log-probability
def log_prob(logits: ArrayLike, actions: ArrayLike, *, mask: ArrayLike | None = None) -> Array:
    """``log p(a)`` per row: ``logits[..., a] - logsumexp(logits over allowed actions)``.

    logits (..., K); actions (...) integers in [0, K); -inf where the action is masked.
    """
    if type(logits) is np.ndarray and type(actions) is np.ndarray and _host_mask(mask):
        fast = _fast.cpu_kernel("categorical", "log_prob_fast")  # one compiled call (pygenmod._fast)
        out = None if fast is None else fast(logits, actions, mask)
        if out is not None:
            return out
    rows = _Rows(logits, "logits")
    m, a = rows.mask(mask, "mask"), _actions(actions, rows)
    xp, N = rows.xp, rows.x.shape[0]
    out, status = xp.empty(N, rows.dtype), xp.zeros(N, xp.int32)
    _run("log_prob", rows.x, m, a, out, status)
    _raise_status(status, _NAMES, a, rows.K)
    return rows.result(out)


def log_prob_backward(
    logits: ArrayLike, actions: ArrayLike, *, grad_log_prob: ArrayLike, mask: ArrayLike | None = None
) -> Array:
    """VJP of :func:`log_prob`: ``grad_logits`` (its one differentiable input),
    ``grad_logits[j] = g (1{j = a} - p_j)``
    (0 at masked actions; NaN on rows whose action is masked)."""
    if type(logits) is type(actions) is type(grad_log_prob) is np.ndarray and _host_mask(mask):
        fast = _fast.cpu_kernel("categorical", "log_prob_backward_fast")  # one compiled call (pygenmod._fast)
        out = None if fast is None else fast(logits, actions, grad_log_prob, mask)
        if out is not None:
            return out
    rows = _Rows(logits, "logits")
    m, a = rows.mask(mask, "mask"), _actions(actions, rows)
    g = rows.per_row(grad_log_prob, "grad_log_prob")
    dx = output_like(rows.x)
    _run("log_prob_backward", rows.x, m, a, g, dx)
    return rows.grad(dx)


# ------------------------------------------------------------------------------- entropy
def entropy(logits: ArrayLike, *, mask: ArrayLike | None = None) -> Array:
    """``H(p) = -sum_j p_j log p_j`` per row (nats; masked actions excluded, 0 log 0 = 0)."""
    if type(logits) is np.ndarray and _host_mask(mask):
        fast = _fast.cpu_kernel("categorical", "entropy_fast")  # one compiled call (pygenmod._fast)
        out = None if fast is None else fast(logits, mask)
        if out is not None:
            return out
    rows = _Rows(logits, "logits")
    m = rows.mask(mask, "mask")
    xp, N = rows.xp, rows.x.shape[0]
    out, status = xp.empty(N, rows.dtype), xp.zeros(N, xp.int32)
    _run("entropy", rows.x, m, out, status)
    _raise_status(status, _NAMES)
    return rows.result(out)


def entropy_backward(logits: ArrayLike, *, grad_entropy: ArrayLike, mask: ArrayLike | None = None) -> Array:
    """VJP of :func:`entropy`: ``grad_logits``, ``dH/dx_j = -p_j (log p_j + H)``."""
    if type(logits) is type(grad_entropy) is np.ndarray and _host_mask(mask):
        fast = _fast.cpu_kernel("categorical", "entropy_backward_fast")  # one compiled call (pygenmod._fast)
        out = None if fast is None else fast(logits, grad_entropy, mask)
        if out is not None:
            return out
    rows = _Rows(logits, "logits")
    m = rows.mask(mask, "mask")
    g = rows.per_row(grad_entropy, "grad_entropy")
    dx = output_like(rows.x)
    _run("entropy_backward", rows.x, m, g, dx)
    return rows.grad(dx)


# ------------------------------------------------------------------------------- KL(p || q)
def _kl_args(p_logits, q_logits, mask, q_mask):
    rows = _Rows(q_logits, "q_logits")
    p = rows.like(p_logits, "p_logits")
    mp = rows.mask(mask, "mask")
    mq = mp if q_mask is None else rows.mask(q_mask, "q_mask")
    return rows, p, mp, mq


def kl(
    p_logits: ArrayLike, q_logits: ArrayLike, *, mask: ArrayLike | None = None, q_mask: ArrayLike | None = None
) -> Array:
    """``KL(p || q) = sum_j p_j (log p_j - log q_j)`` per row, both from logits (..., K).

    mask: the actions p allows (and q too, unless ``q_mask`` is given); q_mask: q's own mask.
    ``+inf`` on rows where p allows an action that q masks. The dtype is q_logits'.
    """
    if q_mask is None and type(p_logits) is type(q_logits) is np.ndarray and _host_mask(mask):
        fast = _fast.cpu_kernel("categorical", "kl_fast")  # one compiled call (pygenmod._fast)
        out = None if fast is None else fast(p_logits, q_logits, mask)
        if out is not None:
            return out
    rows, p, mp, mq = _kl_args(p_logits, q_logits, mask, q_mask)
    xp, N = rows.xp, rows.x.shape[0]
    out, status = xp.empty(N, rows.dtype), xp.zeros(N, xp.int32)
    _run("kl", p, rows.x, mp, mq, False, out, status)
    _raise_status(status, ("p_logits", "mask", "q_logits", "q_mask" if q_mask is not None else "mask"))
    return rows.result(out)


def kl_backward(
    p_logits: ArrayLike,
    q_logits: ArrayLike,
    *,
    grad_kl: ArrayLike,
    mask: ArrayLike | None = None,
    q_mask: ArrayLike | None = None,
) -> tuple[Array, Array]:
    """VJP of :func:`kl`: ``(grad_p_logits, grad_q_logits)`` with
    ``dKL/dp_j = p_j (log p_j - log q_j - KL)`` and ``dKL/dq_j = q_j - p_j``."""
    if q_mask is None and type(p_logits) is type(q_logits) is type(grad_kl) is np.ndarray and _host_mask(mask):
        fast = _fast.cpu_kernel("categorical", "kl_backward_fast")  # one compiled call (pygenmod._fast)
        out = None if fast is None else fast(p_logits, q_logits, grad_kl, mask)
        if out is not None:
            return out
    rows, p, mp, mq = _kl_args(p_logits, q_logits, mask, q_mask)
    g = rows.per_row(grad_kl, "grad_kl")
    dp, dq = output_like(rows.x), output_like(rows.x)
    _run("kl_backward", p, rows.x, mp, mq, False, g, dp, dq)
    return rows.grad(dp), rows.grad(dq)


# ------------------------------------------------------------------------------- SI-GARL target
def _target_args(weights, logits, mask):
    rows = _Rows(logits, "logits")
    w = rows.like(weights, "weights")
    xp = rows.xp
    if w.size and not val._all_finite(w):
        raise ValueError("weights: contains NaN or infinity")
    if bool((w < 0).any()):
        raise ValueError("weights: must be >= 0")
    s = w.sum(-1, keepdims=True)
    if bool((s <= 0).any()):
        r = int(xp.flatnonzero(s[:, 0] <= 0)[0])
        raise ValueError(f"weights: row {r} sums to 0 (an improved policy needs some mass)")
    return rows, xp.ascontiguousarray(w / s), rows.mask(mask, "mask")


def _policy_target_fast(weights, logits, mask, grad):
    """policy_target_kl (grad None) or its backward pass in one compiled call, or None."""
    if not (type(weights) is type(logits) is np.ndarray and _host_mask(mask)):
        return None
    fast = _fast.cpu_kernel("categorical", "policy_target_kl_fast")  # one compiled call (pygenmod._fast)
    chunk = None if fast is None else numpy_sum_chunk()  # the weights' row sums, in NumPy's slices
    return None if chunk is None else fast(weights, logits, mask, chunk, grad)


def policy_target_kl(weights: ArrayLike, logits: ArrayLike, *, mask: ArrayLike | None = None) -> Array:
    """SI-GARL's policy update target ``KL(pi_improved || pi_theta)`` per row.

    weights (..., K): the improved policy as non-negative weights (MCTS ``action_weights``,
    visit counts, CEM elite frequencies), normalised per row here; zero weights contribute
    nothing (0 log 0 = 0). logits (..., K): the network policy ``pi_theta`` (``mask``: its
    allowed actions). ``+inf`` on rows that put weight on an action the mask excludes.
    Minimising it over theta is minimising the cross-entropy ``-sum_j w_j log pi_theta(j)``
    (AlphaZero's policy loss): they differ by the weights' entropy, a constant.
    """
    out = _policy_target_fast(weights, logits, mask, None)
    if out is not None:
        return out
    rows, w, m = _target_args(weights, logits, mask)
    xp, N = rows.xp, rows.x.shape[0]
    out, status = xp.empty(N, rows.dtype), xp.zeros(N, xp.int32)
    _run("kl", w, rows.x, None, m, True, out, status)
    _raise_status(status, ("weights", "weights", "logits", "mask"))
    return rows.result(out)


def policy_target_kl_backward(
    weights: ArrayLike, logits: ArrayLike, *, grad_kl: ArrayLike, mask: ArrayLike | None = None
) -> Array:
    """VJP of :func:`policy_target_kl` w.r.t. the logits: ``grad_logits``,
    ``g (pi_theta(j) - w_j)`` with w normalised (the weights are a fixed target)."""
    if type(grad_kl) is np.ndarray:
        dq = _policy_target_fast(weights, logits, mask, grad_kl)
        if dq is not None:
            return dq
    rows, w, m = _target_args(weights, logits, mask)
    g = rows.per_row(grad_kl, "grad_kl")
    dq = output_like(rows.x)
    _run("kl_backward", w, rows.x, None, m, True, g, None, dq)
    return rows.grad(dq)


# ------------------------------------------------------------------------------- GAIL's policy step
def pg_loss(
    log_probs: ArrayLike,
    q_values: ArrayLike,
    entropy: ArrayLike | None = None,
    *,
    lam: float = 0.0,
    q_is: QIs = "reward",
    reduction: Reduction = "mean",
) -> LossGrad:
    """The entropy-regularised policy-gradient surrogate of GAIL (Ho & Ermon 2016, eq. 18; the
    thesis's eq. 4.5), as a loss to minimise, with its gradients.

    log_probs (..., N): ``log pi_theta(a|s)`` of the N sampled (s, a) pairs of a problem;
    q_values (..., N): ``Q(s, a)`` or advantages (a fixed weight: no gradient flows into it);
    entropy (..., N), optional: ``H(pi_theta(.|s))`` at the sampled states; lam: λ >= 0.

    - ``q_is="reward"`` (higher is better; the sign of :func:`pygenmod.adversarial.gail_reward`
      and of advantages): ``loss = -E[log pi Q] - λ E[H]``;
    - ``q_is="cost"`` (GAIL's Q, the expected ``log D`` of a discriminator that says 1 on policy
      samples): ``loss = E[log pi Q] - λ E[H]``.

    Its gradient w.r.t. theta is the policy-gradient estimate of GAIL's eq. 18, ``E[grad log pi Q]
    - λ grad H`` for costs (the entropy bonus is always maximised). E is the ``reduction`` over
    the last axis (``"mean"``, ``"sum"`` or ``"none"``). Returns ``LossGrad(loss, grad, grad_other)``:
    ``grad`` = d loss / d log_probs, ``grad_other`` = d loss / d entropy (None without entropy).
    """
    code = _fast_rows(reduction, log_probs, q_values)
    if (
        code is not None
        and (entropy is None or type(entropy) is np.ndarray)
        and type(lam) in (float, int)
        and q_is in ("reward", "cost")
    ):
        fast = _fast.cpu_kernel("categorical", "pg_rows_fast")  # one compiled call (pygenmod._fast)
        sign, scale = (-1 if q_is == "reward" else 1), _grad_scale(log_probs, code)
        res = None if fast is None else fast(log_probs, q_values, entropy, sign, lam, code, numpy_sum_chunk(), scale)
        if res is not None:
            g_h = None if entropy is None else np.full(log_probs.shape, -float(lam) * scale, dtype=log_probs.dtype)
            return LossGrad(res[0][()], res[1], g_h)
    val.choice(reduction, "reduction", REDUCTIONS)
    val.choice(q_is, "q_is", ("reward", "cost"))
    back = returner(log_probs)
    lp = val.float_array(log_probs, "log_probs")
    if lp.ndim == 0:
        raise ValueError("log_probs: expected shape (..., N) with a samples axis, got a scalar")
    xp = xp_of(lp)
    n = lp.shape[-1]
    if n == 0 and reduction == "mean":
        raise ValueError("log_probs: the last axis (samples) is empty; mean is undefined")
    q = val.float_array(q_values, "q_values", dtype=lp.dtype, xp=xp)
    val.check_shape(q, "q_values", lp.shape)
    lam = float(lam)
    if not lam >= 0 or lam == float("inf"):
        raise ValueError(f"lam: must be a finite number >= 0, got {lam}")
    sign = -1.0 if q_is == "reward" else 1.0
    scale = 1.0 / n if reduction == "mean" else 1.0
    elem = sign * lp * q
    g_lp = sign * q * scale
    g_h = None
    if entropy is not None:
        h = val.float_array(entropy, "entropy", dtype=lp.dtype, xp=xp)
        val.check_shape(h, "entropy", lp.shape)
        elem = elem - lam * h
        g_h = xp.full(lp.shape, -lam * scale, dtype=lp.dtype)
    elif lam != 0:
        raise ValueError("entropy: required when lam != 0")
    loss = elem if reduction == "none" else (elem.sum(-1) if reduction == "sum" else elem.mean(-1))
    return LossGrad(back(loss), back(g_lp), None if g_h is None else back(g_h))


__all__ = [
    "entropy",
    "entropy_backward",
    "kl",
    "kl_backward",
    "log_prob",
    "log_prob_backward",
    "pg_loss",
    "policy_target_kl",
    "policy_target_kl_backward",
]
