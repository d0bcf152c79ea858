"""Cross-entropy method, batched over B independent optimisations.

CEM keeps a Gaussian over parameters (or actions), samples a population, keeps the
elites with the highest returns and refits the Gaussian to them. The pieces are the
package's kernels: batched top-k for elite selection (this module's kernel), the
reparameterized samplers on the counter-based RNG, and the weighted GMM M-step with K=1.
"""
from __future__ import annotations

from . import _validate as val
from ._arrays import is_device, returner, xp_of
from ._dispatch import kernel


def top_k(x, k: int):
    """Indices (int64) of the k largest entries of each row of x (..., N), largest first.

    Ties go to the lower index, so the result is deterministic on every backend. NaN is
    rejected (a NaN return has no rank).
    """
    back = returner(x)
    x = val.float_array(x, "x")
    if x.ndim == 0:
        raise ValueError("x: expected shape (..., N), got a scalar")
    k = val.positive_int(k, "k", minimum=0)
    if k > x.shape[-1]:
        raise ValueError(f"k: must be <= N = {x.shape[-1]}, got {k}")
    xp = xp_of(x)
    rows = x.reshape(-1, x.shape[-1])
    idx = xp.empty((rows.shape[0], k), xp.int64)
    _, fn = kernel("cem", "top_k", is_device(x))
    fn(rows, idx)
    return back(idx.reshape(x.shape[:-1] + (k,)))
