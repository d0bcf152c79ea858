"""Adversarial objectives from discriminator outputs, with their gradients.

Every loss is computed from logits with log-sigmoid forms (no log(0), finite for logits of
any size) and returned with its gradient with respect to the discriminator outputs, so that
a training loop in any framework can use it without autograd. Inputs are arrays of shape
(..., N): the last axis holds the N samples of one problem, leading axes are a batch of
independent problems. ``reduction`` is applied over the last axis: ``"mean"`` (default),
``"sum"`` or ``"none"`` (elementwise losses; gradients are then the elementwise derivatives).

Conventions:
- ``D = sigmoid(logit)`` is the discriminator's probability that a sample is *real*
  (data for GANs, expert for GAIL).
- GAN value V(D, G) = E[log D(x)] + E[log(1 - D(G(z)))]; the discriminator minimises -V,
  the minimax generator minimises E[log(1 - D(G(z)))], the non-saturating generator
  minimises -E[log D(G(z))].
- LSGAN losses act on raw discriminator outputs (no sigmoid), with targets a (fake),
  b (real) and c (what the generator wants D to say): defaults a=-1, b=1, c=0 as in the goal
  GAN of Florensa et al. (2018). No factor 1/2.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from . import _fast
from . import _validate as val
from ._arrays import _same, returner, xp_of
from ._backend import BackendError
from ._dispatch import get_kernel
from ._typing import Array, ArrayLike, GailRewardKind, Reduction

REDUCTIONS = ("mean", "sum", "none")


class LossGrad(NamedTuple):
    #: (...) reduced loss; with reduction="none", the elementwise terms of the first argument
    loss: object
    grad: object  #: d loss / d first argument (same shape as it)
    grad_other: object = None  #: d loss / d second argument, for two-argument losses
    loss_other: object = None  #: with reduction="none": the elementwise terms of the second argument


def _softplus_and_sigmoid(xp, y):
    """softplus(y) = log(1 + e^y) = -log sigmoid(-y), finite for any y, and sigmoid(y) =
    exp(y - softplus(y)): three array passes for both (logaddexp, subtract, exp; the exponent is
    <= 0, so no overflow). sigmoid keeps its tiny tail values, which 0.5 (1 + tanh(y / 2))
    rounded to 0; near 1 its relative error is up to ~|y| eps / 2 (the subtraction's rounding)."""
    sp = xp.logaddexp(0, y)
    return sp, xp.exp(y - sp)


def _reduce(elem, reduction):
    """(the reduced loss, the gradient's scale 1/n for a mean). sum / n: numpy.mean's own
    arithmetic, without its Python overhead (a third of a tiny call)."""
    if reduction == "none":
        return elem, 1.0
    total = elem.sum(-1)
    if reduction == "sum":
        return total, 1.0
    n = elem.shape[-1]
    return total / n, 1.0 / n


#: Entries per slice of the large float64 sums of squares: a 64 KiB temporary, below glibc's
#: mmap threshold (128 KiB).
SQ_CHUNK = 8192


def _sq_chunk(d, reduction) -> int:
    """How _sq_reduce slices the rows of d: SQ_CHUNK for reduced float64 arrays of 128 KiB or
    more, else 0 (whole rows). A fresh d * d of that size costs a page fault per 4 KiB whenever
    glibc has just handed the last one back to the OS, more than the arithmetic
    (docs/conventions.md); float32 keeps whole rows (sum's pairwise order over the row)."""
    return SQ_CHUNK if reduction != "none" and d.dtype == np.float64 and d.size >= 16384 else 0


def _sq_reduce(d, reduction):
    """_reduce(d * d, reduction), the row sums in _sq_chunk's slices: per row, each slice's
    pairwise sum (numpy's), the slices added left to right (the one-call path's order too,
    loss_rows.hpp)."""
    chunk = _sq_chunk(d, reduction)
    if chunk == 0 or xp_of(d) is not np:
        return _reduce(d * d, reduction)
    n = d.shape[-1]
    rows = d.reshape(-1, n)
    total = np.empty(rows.shape[0], d.dtype)
    per_block = max(1, chunk // n)  # rows per slice
    for r in range(0, rows.shape[0], per_block):
        block = rows[r : r + per_block]
        acc = None
        for c in range(0, n, chunk):
            part = block[:, c : c + chunk]
            s = (part * part).sum(-1)
            acc = s if acc is None else acc + s
        total[r : r + per_block] = acc
    total = total.reshape(d.shape[:-1])[()]
    if reduction == "sum":
        return total, 1.0
    return total / n, 1.0 / n


_REDUCE_CODE = {"none": 0, "sum": 1, "mean": 2}  # loss_rows.hpp's Reduce


@functools.cache
def numpy_sum_chunk():
    """The slices in which numpy.add.reduce sums a contiguous row: 0 (whole rows, NumPy 2.3 and
    later) or 8192 (older releases' buffer), found once by comparing the compiled rows
    (numpy_sum.hpp) with NumPy on rows where the orders differ. None (the one-call rows then
    stay off) where neither matches, where the extension is missing, and before NumPy 2, whose
    scalar promotion gave the general path other result dtypes (float64 means of float32 rows)."""
    if np.lib.NumpyVersion(np.__version__) < "2.0.0":
        return None
    try:
        rows = get_kernel("categorical", "square_rows_fast", "cpu")
    except BackendError:
        return None
    rng = np.random.default_rng(20261206)
    samples = [
        (rng.standard_normal(shape) * 10.0 ** rng.uniform(-4, 4, shape)).astype(dt)
        for dt in (np.float32, np.float64)
        for shape in ((2, 3 * SQ_CHUNK + 77), (SQ_CHUNK + 900,))
    ]
    for chunk in (0, SQ_CHUNK):
        if all(rows(x, 0.0, 1, chunk, 1.0)[0].tobytes() == np.asarray((x * x).sum(-1)).tobytes() for x in samples):
            return chunk
    return None


def _fast_rows(reduction, first, second=None):
    """The one-call rows' reduction code for plain NumPy arrays of one dtype and rank (>= 1) with
    the same leading axes, else None (the compiled call checks the rest: pygenmod._fast)."""
    if type(first) is not np.ndarray or type(reduction) is not str or first.ndim == 0:
        return None
    if numpy_sum_chunk() is None:
        return None
    if second is not None and (
        type(second) is not np.ndarray
        or second.dtype != first.dtype
        or second.shape[:-1] != first.shape[:-1]
        or second.ndim != first.ndim
    ):
        return None
    return _REDUCE_CODE.get(reduction)


def _grad_scale(x, code):
    """_reduce's gradient scale for x's rows: 1 / n for a mean (of n >= 1 entries), else 1."""
    return 1.0 / x.shape[-1] if code == 2 and x.shape[-1] else 1.0


def _softplus_fast(x, s, code, out_sign, grad_scale):
    """(terms, gradient) of the logistic rows of x in one compiled call plus NumPy's exp (the
    general path's sigmoid, so its bits), or None. terms: out_sign softplus(s x) per entry or
    reduced; gradient: sigmoid(s x) * grad_scale."""
    fast = _fast.cpu_kernel("categorical", "softplus_rows_fast")
    res = None if fast is None else fast(x, s, code, numpy_sum_chunk(), out_sign)
    if res is None:
        return None
    terms, t = res
    np.exp(t, out=t)
    np.multiply(t, grad_scale, out=t)
    return terms, t


def _square_fast(x, target, code, reduction):
    """(terms, gradient) of the least-squares rows of x (d = x - target: d * d reduced, and
    2 d / n for a mean) in one compiled call, or None."""
    if not (type(target) is float or (type(target) is int and -(2**24) <= target <= 2**24)):
        return None  # (a Python int's cast to float32 would differ through float64 beyond 2**24)
    fast = _fast.cpu_kernel("categorical", "square_rows_fast")
    if fast is None:
        return None
    chunk = _sq_chunk(x, reduction) or numpy_sum_chunk()  # _sq_reduce's slices, or NumPy's own
    return fast(x, float(target), code, chunk, 2 * _grad_scale(x, code))


def _pair(back, l_first, l_second, g_first, g_second, reduction) -> LossGrad:
    if reduction == "none":
        return LossGrad(back(l_first), back(g_first), back(g_second), back(l_second))
    return LossGrad(back(l_first + l_second), back(g_first), back(g_second))


def _inputs(first, name_first, second=None, name_second=None, reduction="mean"):
    val.choice(reduction, "reduction", REDUCTIONS)
    a = val.float_array(first, name_first)
    if a.ndim == 0:
        raise ValueError(f"{name_first}: expected shape (..., N) with a samples axis, got a scalar")
    if a.shape[-1] == 0 and reduction == "mean":
        raise ValueError(f"{name_first}: the last axis (samples) is empty; mean is undefined")
    if second is None:
        return a, None
    b = val.float_array(second, name_second, ndim=a.ndim, dtype=a.dtype, xp=xp_of(a))
    if b.shape[:-1] != a.shape[:-1]:
        raise ValueError(
            f"{name_second}: leading (batch) axes {b.shape[:-1]} differ from {name_first}'s {a.shape[:-1]}"
        )
    if b.shape[-1] == 0 and reduction == "mean":
        raise ValueError(f"{name_second}: the last axis (samples) is empty; mean is undefined")
    return a, b


def _bce(real_logits, fake_logits, reduction, sign):
    """sign = 1: the discriminator's loss -V = E[softplus(-r)] + E[softplus(f)], gradients
    -sigmoid(-r) / n and sigmoid(f) / n; sign = -1: the value V (every output negated)."""
    code = _fast_rows(reduction, real_logits, fake_logits)
    if code is not None:  # one compiled call per argument (pygenmod._fast)
        real = _softplus_fast(real_logits, -1, code, sign, -sign * _grad_scale(real_logits, code))
        fake = (
            None if real is None else _softplus_fast(fake_logits, 1, code, sign, sign * _grad_scale(fake_logits, code))
        )
        if fake is not None:
            return _pair(_same, real[0], fake[0], real[1], fake[1], reduction)
    back = returner(real_logits)
    r, f = _inputs(real_logits, "real_logits", fake_logits, "fake_logits", reduction)
    xp = xp_of(r)
    nr = -r
    sp_r, sig_nr = _softplus_and_sigmoid(xp, nr)  # softplus(-r) = -log D(x); sigmoid(-r) = 1 - D(x)
    sp_f, sig_f = _softplus_and_sigmoid(xp, f)  # softplus(f) = -log(1 - D(G(z))); sigmoid(f) = D(G(z))
    if sign < 0:
        sp_r, sp_f = -sp_r, -sp_f
    lr, sr = _reduce(sp_r, reduction)
    lf, sf = _reduce(sp_f, reduction)
    return _pair(back, lr, lf, sig_nr * (-sign * sr), sig_f * (sign * sf), reduction)


def gan_value(real_logits: ArrayLike, fake_logits: ArrayLike, reduction: Reduction = "mean") -> LossGrad:
    """The minimax value E[log D(x)] + E[log(1 - D(G(z)))] and its gradients w.r.t. both logits."""
    return _bce(real_logits, fake_logits, reduction, -1)


def gan_discriminator_loss(real_logits: ArrayLike, fake_logits: ArrayLike, reduction: Reduction = "mean") -> LossGrad:
    """-V(D, G): binary cross-entropy of real vs fake samples, from logits."""
    return _bce(real_logits, fake_logits, reduction, 1)


def gan_generator_loss(fake_logits: ArrayLike, non_saturating: bool = True, reduction: Reduction = "mean") -> LossGrad:
    """Generator loss from the discriminator's logits on generated samples.

    non_saturating=True: -E[log D(G(z))] (strong gradients early in training);
    False: the minimax form E[log(1 - D(G(z)))].
    """
    code = _fast_rows(reduction, fake_logits)
    if code is not None:  # one compiled call (pygenmod._fast)
        s = -1 if non_saturating else 1  # softplus(-f) or -softplus(f); gradient -sigmoid(s f)
        res = _softplus_fast(fake_logits, s, code, -s, -_grad_scale(fake_logits, code))
        if res is not None:
            return LossGrad(res[0][()], res[1])
    back = returner(fake_logits)
    f, _ = _inputs(fake_logits, "fake_logits", reduction=reduction)
    xp = xp_of(f)
    if non_saturating:  # softplus(-f) = -log D(G(z)); gradient -sigmoid(-f)
        sp, sig = _softplus_and_sigmoid(xp, -f)
        loss, s = _reduce(sp, reduction)
    else:  # -softplus(f) = log(1 - D(G(z))); gradient -sigmoid(f)
        sp, sig = _softplus_and_sigmoid(xp, f)
        loss, s = _reduce(-sp, reduction)
    return LossGrad(back(loss), back(sig * -s))


def lsgan_discriminator_loss(
    real_out: ArrayLike,
    fake_out: ArrayLike,
    a: float = -1.0,
    b: float = 1.0,
    labels: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> LossGrad:
    """Least-squares discriminator loss E[(D(x) - b)^2] + E[(D(G(z)) - a)^2].

    With ``labels`` y (same shape as real_out, values in [0, 1]) the labelled goal-GAN form
    E[y (D(g) - b)^2 + (1 - y)(D(g) - a)^2] + E[(D(G(z)) - a)^2] is used: goals labelled 0 are
    pushed towards the fake target a.
    """
    code = _fast_rows(reduction, real_out, fake_out) if labels is None else None
    if code is not None:  # one compiled call per argument (pygenmod._fast)
        real = _square_fast(real_out, b, code, reduction)
        fake = None if real is None else _square_fast(fake_out, a, code, reduction)
        if fake is not None:
            return _pair(_same, real[0], fake[0], real[1], fake[1], reduction)
    back = returner(real_out)
    r, f = _inputs(real_out, "real_out", fake_out, "fake_out", reduction)
    xp = xp_of(r)
    if labels is None:  # every real sample towards b
        g_real = r - b
        lr, sr = _sq_reduce(g_real, reduction)
        g_real *= 2 * sr  # (this call's own array: the gradient in place)
    else:
        y = val.float_array(labels, "labels", ndim=r.ndim, dtype=r.dtype, xp=xp)
        val.check_shape(y, "labels", r.shape)
        if bool(((y < 0) | (y > 1)).any()):
            raise ValueError("labels: must lie in [0, 1]")
        lr, sr = _reduce(y * (r - b) ** 2 + (1 - y) * (r - a) ** 2, reduction)
        g_real = 2 * (y * (r - b) + (1 - y) * (r - a)) * sr
    g_fake = f - a
    lf, sf = _sq_reduce(g_fake, reduction)
    g_fake *= 2 * sf
    return _pair(back, lr, lf, g_real, g_fake, reduction)


def lsgan_generator_loss(fake_out: ArrayLike, c: float = 0.0, reduction: Reduction = "mean") -> LossGrad:
    """Least-squares generator loss E[(D(G(z)) - c)^2]."""
    code = _fast_rows(reduction, fake_out)
    res = None if code is None else _square_fast(fake_out, c, code, reduction)  # one compiled call
    if res is not None:
        return LossGrad(res[0][()], res[1])
    back = returner(fake_out)
    f, _ = _inputs(fake_out, "fake_out", reduction=reduction)
    grad = f - c
    loss, s = _sq_reduce(grad, reduction)
    grad *= 2 * s  # (this call's own array)
    return LossGrad(back(loss), back(grad))


def gail_discriminator_loss(
    expert_logits: ArrayLike, policy_logits: ArrayLike, reduction: Reduction = "mean"
) -> LossGrad:
    """GAIL discriminator loss -E_expert[log D] - E_policy[log(1 - D)], D = P(expert | s, a)."""
    return gan_discriminator_loss(expert_logits, policy_logits, reduction)


def gail_reward(policy_logits: ArrayLike, kind: GailRewardKind = "log_d") -> Array:
    """The policy's surrogate reward per (s, a), from the discriminator's logits.

    kind="log_d": log D(s, a) (always <= 0; survival-neutral tasks);
    kind="neg_log_one_minus_d": -log(1 - D(s, a)) (always >= 0, i.e. softplus(logit)).
    Elementwise; any shape.
    """
    if type(policy_logits) is np.ndarray and policy_logits.ndim and kind in ("log_d", "neg_log_one_minus_d"):
        fast = _fast.cpu_kernel("categorical", "softplus_fast")  # one compiled call (pygenmod._fast)
        out = None if fast is None else fast(policy_logits, -1 if kind == "log_d" else 1)
        if out is not None:
            return out
    back = returner(policy_logits)
    val.choice(kind, "kind", ("log_d", "neg_log_one_minus_d"))
    x = val.float_array(policy_logits, "policy_logits")
    xp = xp_of(x)
    return back(-xp.logaddexp(0, -x) if kind == "log_d" else xp.logaddexp(0, x))  # log sigmoid(x); softplus(x)


def label_goals(success_rates: ArrayLike, r_min: float = 0.1, r_max: float = 0.9) -> Array:
    """Goals of intermediate difficulty: 1.0 where r_min <= success rate <= r_max, else 0.0.

    success_rates: any shape, values in [0, 1]; returns labels in its dtype, ready to be the
    ``labels`` of :func:`lsgan_discriminator_loss`.
    """
    back = returner(success_rates)
    r = val.float_array(success_rates, "success_rates")
    if not 0.0 <= r_min <= r_max <= 1.0:
        raise ValueError(f"need 0 <= r_min <= r_max <= 1, got r_min={r_min}, r_max={r_max}")
    if bool(((r < 0) | (r > 1)).any()):
        raise ValueError("success_rates: must lie in [0, 1]")
    return back(((r >= r_min) & (r <= r_max)).astype(r.dtype))


__all__ = [
    "LossGrad",
    "REDUCTIONS",
    "gail_discriminator_loss",
    "gail_reward",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "gan_value",
    "label_goals",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
]
