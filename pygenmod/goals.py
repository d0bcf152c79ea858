"""Goal-conditioned rewards: Goal-GAN's indicator reward and per-goal returns, and RIG's latent
Mahalanobis reward.

Goal-GAN (Florensa et al. 2018; the thesis's §4): a goal g is reached at step t when the goal
coordinates of the state are within ε of it, ``r^g_t = 1{ ||f(s_t) - g||_2 < ε }``; the return of
a goal under the policy, ``R^g(π)``, is the probability that a rollout reaches the goal at some
step, estimated as the fraction of rollouts that do. :func:`goal_labels` then labels goals of
intermediate difficulty (``r_min <= R^g <= r_max``, :func:`pygenmod.adversarial.label_goals`),
the labelled data of the goal GAN's LSGAN objective (eq. 4.4,
:func:`pygenmod.adversarial.lsgan_discriminator_loss` with ``labels=``).

Layout (batch first): ``states`` is ``(..., R, T, S)`` — R rollouts of T steps of an S-dimensional
state per goal — and ``goals`` is ``(..., D)`` with the same leading axes (``...``, e.g. G goals).
``f`` is the coordinate projection ``dims``: the indices of the state coordinates that a goal
specifies (``f(s) = s[..., dims]``, D of them); ``dims=None`` means the whole state (D = S).
``mask`` (optional, ``(..., R, T)``, True = a real step) excludes padding after an episode ended.

RIG (Nair et al. 2018): with an encoder e and a goal image's latent z_g, the reward is the
negative Mahalanobis distance ``r(s, g) = -||e(s) - z_g||_A`` with A the encoder's posterior
precision; built on :func:`pygenmod.sampling.mahalanobis`.

These are compositions in NumPy / CuPy (elementwise work and reductions), not kernels.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from . import _fast
from . import _validate as val
from . import sampling as _sampling
from ._arrays import returner, xp_of
from ._typing import Array, ArrayLike
from .adversarial import label_goals, numpy_sum_chunk


class GoalLabels(NamedTuple):
    returns: object  #: (...) R^g(π): fraction of rollouts that reached each goal
    labels: object  #: (...) 1.0 for goals of intermediate difficulty, else 0.0


def _project(states, dims, xp):
    """f(s): the goal coordinates of the states (a gather over the last axis)."""
    if dims is None:
        return states
    if isinstance(dims, slice):
        return states[..., dims]
    idx = np.asarray(dims)
    if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
        raise TypeError(f"dims: expected a non-empty sequence of integer indices or a slice, got {dims!r}")
    S = states.shape[-1]
    if bool(((idx < -S) | (idx >= S)).any()):
        raise ValueError(f"dims: indices must lie in [-{S}, {S}) (the state has {S} coordinates), got {dims!r}")
    return states[..., xp.asarray(idx)]


def _reached(states, goals, epsilon, dims, mask):
    """(reached (..., R, T) bool, back, dtype) with the checks shared by the public functions."""
    back = returner(goals)
    g = val.float_array(goals, "goals")
    xp = xp_of(g)
    s = val.float_array(states, "states", dtype=g.dtype, xp=xp)
    if g.ndim < 1:
        raise ValueError("goals: expected shape (..., D), got a scalar")
    if s.ndim < 3:
        raise ValueError(f"states: expected shape (..., R, T, S) (rollouts, steps, state), got {s.shape}")
    if not isinstance(epsilon, numbers.Real) or isinstance(epsilon, bool) or not 0 < float(epsilon) < np.inf:
        raise ValueError(f"epsilon: must be a finite number > 0, got {epsilon!r}")
    fs = _project(s, dims, xp)
    if fs.shape[-1] != g.shape[-1]:
        raise ValueError(
            f"goals: expected D = {fs.shape[-1]} goal coordinates (f(s) has {fs.shape[-1]}), got {g.shape[-1]}"
        )
    if s.shape[:-3] != g.shape[:-1]:
        raise ValueError(
            f"goals: leading axes {g.shape[:-1]} differ from states' {s.shape[:-3]} "
            "(states are (..., R, T, S) for goals (..., D))"
        )
    d2 = ((fs - g[..., None, None, :]) ** 2).sum(-1)  # (..., R, T)
    hit = d2 < float(epsilon) ** 2
    if mask is not None:
        m = val.bool_mask(mask, "mask", xp=xp)
        val.check_shape(m, "mask", hit.shape)
        hit &= m
    return hit, back, g.dtype


def goal_reward(
    states: ArrayLike,
    goals: ArrayLike,
    *,
    epsilon: float,
    dims: Sequence[int] | ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> Array:
    """Goal-GAN's reward ``1{ ||f(s_t) - g|| < ε }`` per step: (..., R, T) in the goals' dtype
    (0 at masked steps)."""
    hit, back, dt = _reached(states, goals, epsilon, dims, mask)
    return back(hit.astype(dt))


def goal_success(
    states: ArrayLike,
    goals: ArrayLike,
    *,
    epsilon: float,
    dims: Sequence[int] | ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> Array:
    """Whether each rollout reached its goal at any step: (..., R) in the goals' dtype (0 / 1)."""
    hit, back, dt = _reached(states, goals, epsilon, dims, mask)
    return back(hit.any(-1).astype(dt))


def goal_returns(
    states: ArrayLike,
    goals: ArrayLike,
    *,
    epsilon: float,
    dims: Sequence[int] | ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> Array:
    """``R^g(π)`` per goal: the fraction of its R rollouts that reached it at some step, (...)."""
    hit, back, dt = _reached(states, goals, epsilon, dims, mask)
    if hit.shape[-2] == 0:
        raise ValueError("states: no rollouts (R = 0); the return of a goal is undefined")
    return back(hit.any(-1).mean(-1).astype(dt))


def goal_labels(
    states: ArrayLike,
    goals: ArrayLike,
    *,
    epsilon: float,
    dims: Sequence[int] | ArrayLike | None = None,
    mask: ArrayLike | None = None,
    r_min: float = 0.1,
    r_max: float = 0.9,
) -> GoalLabels:
    """``R^g(π)`` from rollouts and the goal labels of eq. 4.4: 1 where ``r_min <= R^g <= r_max``
    (goals of intermediate difficulty). Pass ``labels`` to
    :func:`pygenmod.adversarial.lsgan_discriminator_loss` with the discriminator's outputs on
    these goals as ``real_out``."""
    r = goal_returns(states, goals, epsilon=epsilon, dims=dims, mask=mask)
    return GoalLabels(r, label_goals(r, r_min, r_max))


# ------------------------------------------------------------------------------------ RIG
def rig_reward(
    z: ArrayLike,
    z_goal: ArrayLike,
    scale_tril: ArrayLike | None = None,
    *,
    precision_tril: ArrayLike | None = None,
    squared: bool = False,
) -> Array:
    """RIG's reward ``-||z - z_goal||_A``: the negative Mahalanobis distance between encoded
    states z and goal latents z_goal, both (B, D) (z may be (S, B, D)), with
    ``A = (L L^T)^{-1}`` from a covariance Cholesky factor ``scale_tril`` or ``A = U U^T`` from a
    precision factor ``precision_tril`` ((B, D, D) per row or (D, D) shared); neither: the
    Euclidean distance (A = I). ``squared=True`` returns ``-(z - z_goal)^T A (z - z_goal)``.
    Always <= 0; 0 at the goal."""
    if scale_tril is None and precision_tril is None:
        if type(z) is np.ndarray and type(z_goal) is np.ndarray and z.dtype == z_goal.dtype and type(squared) is bool:
            chunk = numpy_sum_chunk()  # NumPy's summation slices (None: no one-call path)
            fast = None if chunk is None else _fast.cpu_kernel("categorical", "neg_distance_fast")
            out = None if fast is None else fast(z, z_goal, chunk, squared)  # one compiled call (pygenmod._fast)
            if out is not None:
                return out[()]
        back = returner(z_goal)
        zg = val.float_array(z_goal, "z_goal", ndim=(1, 2))
        zz = val.float_array(z, "z", dtype=zg.dtype, xp=xp_of(zg))
        if zz.shape[-zg.ndim :] != zg.shape:
            raise ValueError(f"z: expected shape (..., {', '.join(map(str, zg.shape))}), got {zz.shape}")
        d2 = ((zz - zg) ** 2).sum(-1)
        return back(-(d2 if squared else xp_of(d2).sqrt(d2)))
    d = _sampling.mahalanobis(z, z_goal, scale_tril, precision_tril=precision_tril, squared=squared)
    return -d


def rig_posterior_reward(
    mu: ArrayLike,
    z_goal: ArrayLike,
    scale_tril: ArrayLike | None = None,
    *,
    logvar: ArrayLike | None = None,
    squared: bool = False,
) -> Array:
    """The latent-posterior variant of RIG's reward: ``-||z_goal - mu||_{Σ^{-1}}`` with the
    encoder's posterior ``q(z | s) = N(mu, Σ)`` at the current state, given by its Cholesky factor
    ``scale_tril`` (B, D, D) or by a diagonal ``logvar`` (B, D) (Σ = diag(exp(logvar))).

    This is RIG's choice of A (the precision of the encoder's posterior): up to constants,
    ``-squared distance / 2 = log q(z_goal | s) + 1/2 log det(2π Σ)``, so the reward grows with the
    likelihood of the goal latent under the state's posterior."""
    if (scale_tril is None) == (logvar is None):
        raise TypeError("give exactly one of scale_tril or logvar")
    if logvar is not None:
        m = val.float_array(mu, "mu", ndim=(1, 2))
        xp = xp_of(m)
        lv = val.float_array(logvar, "logvar", dtype=m.dtype, xp=xp)
        val.check_shape(lv, "logvar", m.shape)
        std = xp.exp(0.5 * lv)
        eye = xp.eye(m.shape[-1], dtype=m.dtype)
        scale_tril = std[..., :, None] * eye  # diag(std), (B, D, D)
    return rig_reward(z_goal, mu, scale_tril, squared=squared)


__all__ = [
    "GoalLabels",
    "goal_labels",
    "goal_returns",
    "goal_reward",
    "goal_success",
    "rig_posterior_reward",
    "rig_reward",
]
