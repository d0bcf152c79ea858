"""Bellman backups and dynamic programming over batches of MDPs.

Layout (see docs/mdp.md):

- transitions ``P[b, s, a, s']`` dense (each (s, a) row contiguous), or sparse as a
  :class:`CSR` whose row ``(b*S + s)*A + a`` is ``P(. | s, a)`` of MDP ``b`` (a
  ``scipy.sparse`` matrix of shape ``(S*A, S)`` or ``(B*S*A, S)`` is accepted anywhere);
- rewards ``R[b, s, a]`` (expected reward) or ``R[b, s, a, s']`` (reduced to the expected
  reward ``sum_s' P R`` once, up front);
- values ``V[b, s]``; policies ``pi[b, s]`` (int64 action) or ``pi[b, s, a]`` (probabilities).

A single MDP may be given without the batch axis; results then come back without it.
Discount ``gamma`` is a scalar or one value per MDP, in [0, 1).

Input checks (``check=True``): every row of P sums to 1 within :data:`ROW_SUM_TOL` (1e-6 for
float64, 1e-4 for float32), has no negative entry and no NaN/inf.

Stopping rules of the solvers (``epsilon``: the wanted sup-norm error of V):

- ``stop="span"`` (default): stop when ``span(T v - v) < epsilon (1-g)/g`` and return
  ``V = T v + g/(1-g) * midrange(T v - v)`` (MacQueen's bounds): ``||V - V*|| <= epsilon/2`` and
  the greedy policy is epsilon-optimal. pymdptoolbox uses the same test but returns ``T v``
  uncorrected, whose error is a constant offset up to ``g/(1-g) * max|T v - v|``.
- ``stop="sup"``: stop when ``||T v - v||_inf < epsilon (1-g)/(2g)``; return ``V = T v``:
  ``||V - V*|| <= epsilon/2``, greedy policy epsilon-optimal (Puterman Thm 6.3.1).
- ``tol=``: a raw threshold on the chosen residual instead (e.g. ``tol=1e-8, stop="sup"`` is
  "stop when the sup-norm change is below 1e-8"); bounds then follow from the formulas above.

Per-MDP convergence: every MDP of a batch iterates until its own test passes (or max_iter);
a converged MDP costs no further work. Every backend runs the whole loop in compiled code:
CPU and CUDA share one loop (the C++ ``LoopControl``); on CUDA one call queues the sweeps with
all state on the device and synchronises only every 16 sweeps and once at the end.
"""

from __future__ import annotations

from ._examples import GRID_ACTIONS, GRID_ARROWS, GRID_REWARD_ON, forest, gridworld, random_mdp
from ._interop import from_mdptoolbox, from_quantecon, to_mdptoolbox, to_quantecon
from ._model import CSR, ROW_SUM_TOL, Backup, Evaluation, Solution, as_csr
from ._solvers import (
    bellman_backup,
    modified_policy_iteration,
    policy_evaluation,
    policy_iteration,
    solve,
    value_iteration,
)

__all__ = [
    "Backup",
    "CSR",
    "Evaluation",
    "GRID_ACTIONS",
    "GRID_ARROWS",
    "GRID_REWARD_ON",
    "ROW_SUM_TOL",
    "Solution",
    "as_csr",
    "bellman_backup",
    "forest",
    "from_mdptoolbox",
    "from_quantecon",
    "gridworld",
    "modified_policy_iteration",
    "policy_evaluation",
    "policy_iteration",
    "random_mdp",
    "solve",
    "to_mdptoolbox",
    "to_quantecon",
    "value_iteration",
]
