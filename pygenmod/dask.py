"""Batch-axis pygenmod on Dask: the batched entry points over ``dask.array`` chunks.

Every function here takes ``dask.array`` inputs (NumPy chunks; CuPy chunks go to the CUDA
backend through the usual dispatch) chunked along the **batch axis**, runs the single-process
pygenmod function once per chunk, and returns the same result type with **lazy** ``dask.array``
fields (compute them together, e.g. ``dask.compute(result)``, so each chunk runs once).

Rules (docs/dask.md):

- **Exact and chunking-invariant.** Every batch row's computation is independent of the other
  rows, and random draws are keyed by the *global* batch index: ``seed=None`` is resolved once,
  on the client, to one 64-bit key; the chunk starting at global row ``g`` passes
  ``stream=stream + g``. The result equals the single-process call bitwise for any chunking,
  worker count and thread count.
- **Non-batch axes** are rechunked to one chunk (no error); the batched arguments of a call
  are rechunked to the first argument's batch chunks.
- **Threads.** Each task sets pygenmod's thread count (the CPU pool and numba)
  for its duration: ``threads=None`` gives it the Dask worker's ``nthreads`` divided by the
  tasks executing on that worker when it starts (at least 1), so workers sharing a machine do
  not oversubscribe it; an integer forces it; outside a distributed worker (local schedulers)
  the current setting is kept.
- ``backend=`` ("cpu", "numba", "cuda" or None) forces a backend inside the tasks (None: the
  worker's own choice, e.g. ``PYGENMOD_BACKEND`` in its environment).
"""

from __future__ import annotations

import contextlib
import functools
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _validate as val
from . import gmm as _gmm
from ._seed import resolve_seed
from ._typing import Array, ArrayLike, CovarianceType, MctsPolicy, SeedLike
from .cem import CEMResult
from .mcts import PolicyOutput, Root, TabularModel
from .mdp import CSR, Evaluation, Solution
from .returns import GAE
from .sampling import Head, Sample

__all__ = [
    "BatchGaussianMixture",
    "cem_optimize",
    "fit",
    "gae",
    "gumbel_muzero_policy",
    "lambda_returns",
    "modified_policy_iteration",
    "muzero_policy",
    "normal_head",
    "policy_evaluation",
    "policy_iteration",
    "rsample_mvn",
    "rsample_normal",
    "search",
    "solve",
    "uct_policy",
    "value_iteration",
]


def _da():
    try:
        import dask.array as da
    except ImportError as e:  # pragma: no cover - exercised only without dask
        raise ImportError('pygenmod.dask needs Dask: pip install "pygenmod[dask]" (dask[array] and distributed)') from e
    return da


# ------------------------------------------------------------------------------ threads
def _worker_budget():
    """The thread budget of a task running on a distributed worker, or None elsewhere."""
    try:
        from distributed import get_worker

        w = get_worker()
    except (ImportError, ValueError):
        return None
    state = getattr(w, "state", w)
    nthreads = int(getattr(state, "nthreads", getattr(w, "nthreads", 1)) or 1)
    executing = getattr(state, "executing_count", None)
    if executing is None:
        executing = len(getattr(state, "executing", ())) or 1
    return max(1, nthreads // max(1, int(executing)))


@contextlib.contextmanager
def _thread_budget(threads):
    """pygenmod's threads (the CPU pool and numba) for one task."""
    import sys

    from ._backend import (
        get_num_threads,
        is_available,
        requested_backend,
        set_num_threads,
    )

    n = _worker_budget() if threads is None else threads
    if n is None:
        yield
        return
    if requested_backend() == "numba" or not is_available("cpu"):
        import numba  # noqa: F401 - loaded now, so that set_num_threads reaches it too
    nb = sys.modules.get("numba")
    old, old_nb = get_num_threads(), (nb.get_num_threads() if nb is not None else None)
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(old)
        if nb is not None:
            nb.set_num_threads(old_nb)


def _probe_threads(threads=None, backend=None):
    """(pool threads inside a task's budget, after it, numba threads inside or None): for tests."""
    import sys

    from ._backend import get_num_threads, use_backend

    with use_backend(backend), _thread_budget(threads):
        inside = get_num_threads()
        nb = sys.modules.get("numba")
        inside_nb = nb.get_num_threads() if nb is not None else None
    return inside, get_num_threads(), inside_nb


# ------------------------------------------------------------------------------ the map
def _empty_like_block(block, shape, dtype):
    if hasattr(block, "__cuda_array_interface__"):
        import cupy

        return cupy.empty(shape, dtype)
    return np.empty(shape, dtype)


class _Literal:
    """A per-chunk argument built on the client (a CSR slice), opaque to Dask's graph traversal."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _run_chunk(fn, outs, threads, backend, names, offset, n, *blocks):
    """One task: ``fn(offset, **blocks)`` under the thread budget and backend; a flat tuple."""
    kw = dict(zip(names, (b.value if isinstance(b, _Literal) else b for b in blocks)))
    if n == 0:  # an empty chunk: empty outputs of the right shapes, no kernel call
        ref = blocks[0]
        return tuple(None if o is None else _empty_like_block(ref, _shape(o[0], 0), o[1]) for o in outs)
    from ._backend import use_backend

    # the backend first: the thread budget loads numba when it is the one that will run
    with use_backend(backend) if backend is not None else contextlib.nullcontext(), _thread_budget(threads):
        res = fn(offset, **kw)
    return tuple(None if o is None else r for o, r in zip(outs, res))


def _shape(template, n):
    return tuple(n if s is None else s for s in template)


def _batched(da, x, axis, name):
    """x as a dask array with its non-batch axes in one chunk."""
    if not isinstance(x, da.Array):
        x = da.asarray(x)
    if not 0 <= axis < x.ndim:
        raise ValueError(f"{name}: expected a batch axis {axis}, got an array of {x.ndim} dimensions")
    return x.rechunk({a: -1 for a in range(x.ndim) if a != axis})


def _map(fn, label, args, outs, *, threads=None, backend=None, split=None):
    """Run ``fn(offset, **chunks)`` over the batch chunks of ``args`` (name -> (array, axis)).

    split: name -> ``f(start, stop)`` building that argument of the chunk of rows
    [start, stop) on the client (sparse transitions), for arguments that are not arrays.
    outs: one ``(shape template with None at the batch axis, dtype)`` per output, or None for
    an output that is None. Returns a list of dask arrays (None where an output is None).
    """
    da = _da()
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    if threads is not None:
        threads = val.positive_int(threads, "threads")
    if backend is not None:
        from ._backend import _check_name

        backend = _check_name(backend)
    names = [k for k, v in args.items() if v is not None]
    arrs, axes = [], []
    for k in names:
        x, ax = args[k]
        arrs.append(_batched(da, x, ax, k))
        axes.append(ax)
    first, ax0 = arrs[0], axes[0]
    B = first.shape[ax0]
    chunks = first.chunks[ax0]
    for k, x, ax in zip(names, arrs, axes):
        if x.shape[ax] != B:
            raise ValueError(f"{k}: batch axis has length {x.shape[ax]}, expected {B} (as {names[0]})")
    arrs = [x if x.chunks[ax] == chunks else x.rechunk({ax: chunks}) for x, ax in zip(arrs, axes)]
    offsets = np.concatenate([[0], np.cumsum(chunks)[:-1]]).astype(int).tolist()

    split = split or {}
    # the split inputs (partials over NumPy arrays) are hashed by content, like the rest
    name = f"pygenmod-{label}-" + tokenize(fn, [x.name for x in arrs], outs, threads, backend, list(split.items()))
    # the static arguments travel in a partial, opaque to Dask's graph traversal
    task = functools.partial(_run_chunk, fn, outs, threads, backend, names + list(split))
    layer = {}
    for i, (off, n) in enumerate(zip(offsets, chunks)):
        keys = [(x.name,) + tuple(i if a == ax else 0 for a in range(x.ndim)) for x, ax in zip(arrs, axes)]
        lits = [_Literal(f(off, off + n)) for f in split.values()]
        layer[(name, i)] = (task, off, n, *keys, *lits)
    main = HighLevelGraph.from_collections(name, layer, dependencies=arrs)
    meta_ref = first._meta
    results = []
    for j, o in enumerate(outs):
        if o is None:
            results.append(None)
            continue
        template, dtype = o
        bax = template.index(None)
        oname = f"{name}-{j}"
        olayer = {
            (oname,) + tuple(i if a == bax else 0 for a in range(len(template))): (operator.getitem, (name, i), j)
            for i in range(len(chunks))
        }
        layers = dict(main.layers)
        layers[oname] = olayer
        deps = dict(main.dependencies)
        deps[oname] = {name}
        ochunks = tuple(chunks if s is None else (s,) for s in template)
        meta = da.utils.meta_from_array(meta_ref, ndim=len(template), dtype=dtype)
        results.append(da.Array(HighLevelGraph(layers, deps), oname, ochunks, meta=meta))
    return results


def _fdtype(x):
    dt = np.dtype(x.dtype)
    return dt if dt in (np.float32, np.float64) else np.dtype(np.float64)


def _per_batch(v, axis=0):
    """A per-batch argument (array with >= 1 dimension) as (v, axis), or None for a scalar."""
    return None if v is None or np.ndim(v) == 0 else (v, axis)


# ------------------------------------------------------------------------------ gmm
def _fit_chunk(offset, *, seed, stream, kw, **arrays):
    from . import gmm

    r = gmm.fit(**arrays, **kw, seed=seed, stream=stream + offset)
    p = r.params
    return (p.weights, p.means, p.covariances, p.precisions_cholesky, r.lower_bound, r.n_iter, r.converged, r.flags)


def fit(
    X: ArrayLike,
    n_components: int,
    sample_weight: ArrayLike | None = None,
    *,
    covariance_type: CovarianceType = "full",
    reg_covar: float = 1e-6,
    weights_init: ArrayLike | None = None,
    means_init: ArrayLike | None = None,
    precisions_init: ArrayLike | None = None,
    resp_init: ArrayLike | None = None,
    lower_bound_init: ArrayLike | None = None,
    seed: SeedLike = None,
    stream: int = 0,
    threads: int | None = None,
    backend: str | None = None,
    **kwargs,
) -> _gmm.FitResult:
    """:func:`pygenmod.gmm.fit` over the chunks of X (B, N, D) along B; a lazy FitResult.

    Equal bitwise to ``gmm.fit`` on the whole batch with the same integer ``seed`` (``None`` is
    resolved once here). ``reg_covar``, ``sample_weight`` and the ``*_init`` arrays may be per set
    (chunked with X). ``lower_bounds`` / ``callback`` / ``init_params`` are not supported
    (their shapes or side effects are not per chunk); the other ``gmm.fit`` keywords pass through.
    """
    from . import gmm

    for k in ("lower_bounds", "callback", "init_params", "random_state"):
        if kwargs.get(k) not in (None, False):
            raise ValueError(f"{k}: not supported by pygenmod.dask.fit")
        kwargs.pop(k, None)
    if getattr(X, "ndim", None) != 3:
        raise ValueError("X: expected a (B, N, D) dask array (batch axis 0)")
    _B, _N, D = X.shape
    K = val.positive_int(n_components, "n_components")
    ct = val.choice(covariance_type, "covariance_type", gmm.COVARIANCE_TYPES)
    dt = _fdtype(X)
    kw = dict(n_components=K, covariance_type=ct, **kwargs)
    if np.ndim(reg_covar) == 0:
        kw["reg_covar"] = reg_covar
    args = {
        "X": (X, 0),
        "sample_weight": _per_batch(sample_weight),
        "reg_covar": _per_batch(reg_covar),
        "weights_init": _per_batch(weights_init),
        "means_init": _per_batch(means_init),
        "precisions_init": _per_batch(precisions_init),
        "resp_init": _per_batch(resp_init),
        "lower_bound_init": _per_batch(lower_bound_init),
    }
    cov = (None,) + gmm.cov_shape(ct, None, K, D)
    outs = [
        ((None, K), dt),
        ((None, K, D), dt),
        (cov, dt),
        (cov, dt),
        ((None,), dt),
        ((None,), np.int64),
        ((None,), np.bool_),
        ((None, K), np.uint8),
    ]
    fn = functools.partial(_fit_chunk, seed=resolve_seed(seed), stream=val.seed_int(stream, "stream"), kw=kw)
    w, m, c, pc, lb, it, conv, flags = _map(fn, "gmm-fit", args, outs, threads=threads, backend=backend)
    return gmm.FitResult(gmm.GMMParams(w, m, c, pc, ct), lb, it, conv, flags)


class BatchGaussianMixture(_gmm.BatchGaussianMixture):
    """:class:`pygenmod.gmm.BatchGaussianMixture` whose ``fit`` runs on Dask (:func:`fit`).

    X: a (B, N, D) dask array chunked along B, or a NumPy array (chunked along B by Dask's
    "auto" rule). The fitted attributes are computed (NumPy) arrays, bitwise equal to the
    single-process estimator's with the same ``random_state``; the query methods (predict,
    score, ...) then run locally as usual. Not on Dask: ``verbose``, ``record_lower_bounds``
    and ``warm_start`` refits (ValueError); the convergence warning is not raised (read
    ``converged_`` and ``flags_``).
    """

    def fit(self, X: ArrayLike, y: object = None, sample_weight: ArrayLike | None = None) -> BatchGaussianMixture:
        import dask

        from ._gmm_estimator import _seed

        da = _da()
        self._check_params()
        if self.verbose or self.record_lower_bounds:
            raise ValueError("verbose / record_lower_bounds: not supported by pygenmod.dask.BatchGaussianMixture")
        if self.warm_start and hasattr(self, "converged_"):
            raise ValueError("warm_start: a refit is not supported by pygenmod.dask.BatchGaussianMixture")
        if not isinstance(X, da.Array):
            X = da.from_array(val.float_array(X, "X", ndim=3), chunks={0: "auto", 1: -1, 2: -1})
        elif X.ndim != 3:
            raise ValueError(f"X: expected a (B, N, D) array, got {X.ndim} dimensions")
        self.n_sets_, self.n_features_in_ = X.shape[0], X.shape[2]
        lazy = fit(
            X,
            self.n_components,
            sample_weight,
            covariance_type=self.covariance_type,
            tol=self.tol,
            reg_covar=self.reg_covar,
            max_iter=self.max_iter,
            n_init=self.n_init,
            init=self.init_params,
            weights_init=self.weights_init,
            means_init=self.means_init,
            precisions_init=self.precisions_init,
            seed=_seed(self.random_state),
            warn=False,
        )
        (res,) = dask.compute(lazy)
        self._set_fitted(res)
        return self


# ------------------------------------------------------------------------------ mdp
def _mdp_chunk(offset, *, fname, kw, **arrays):
    from . import mdp

    if isinstance(kw.get("initial_policy"), str):  # "random": MDP b draws from stream + b (global b)
        kw = dict(kw, stream=kw.get("stream", 0) + offset)
    return tuple(getattr(mdp, fname)(**arrays, **kw))


def _csr_rows(c, start, stop):
    """MDPs [start, stop) of a CSR batch, as a CSR of their own (indptr rebased to 0)."""
    from . import mdp

    _, S, A = c.shape
    ip = c.indptr[start * S * A : stop * S * A + 1]
    lo, hi = int(ip[0]), int(ip[-1])
    return mdp.CSR(c.data[lo:hi], c.indices[lo:hi], ip - lo, (stop - start, S, A))


def _mdp_args(P, R, gamma, V0=None, policy=None):
    """(array args, split args, S, A, dtype) of a batched MDP call."""
    from . import mdp

    if getattr(R, "ndim", None) not in (3, 4):
        raise ValueError("R: expected a (B, S, A) or (B, S, A, S) array (batch axis 0)")
    args = {"R": (R, 0), "gamma": _per_batch(gamma), "V0": _per_batch(V0), "policy": _per_batch(policy)}
    if isinstance(P, mdp.CSR):
        c = mdp.as_csr(P)  # validated, NumPy; the chunks follow R's batch chunks
        if c.shape[0] != R.shape[0]:
            raise ValueError(f"P: {c.shape[0]} MDPs, R has {R.shape[0]}")
        return args, {"P": functools.partial(_csr_rows, c)}, c.shape[1], c.shape[2], _fdtype(c.data)
    if getattr(P, "ndim", None) != 4:
        raise ValueError("P: expected a dense (B, S, A, S) array (batch axis 0) or a pygenmod.mdp.CSR")
    return {"P": (P, 0), **args}, None, P.shape[1], P.shape[2], _fdtype(P)


def _solution_map(fname, P, R, gamma, threads, backend, V0=None, **kw):
    init = kw.get("initial_policy")
    per_row_init = init is not None and not isinstance(init, str)
    args, split, S, A, dt = _mdp_args(P, R, gamma, V0, kw.pop("initial_policy") if per_row_init else None)
    args["initial_policy"] = args.pop("policy")
    if isinstance(init, str):
        from ._seed import resolve_seed

        kw["seed"] = resolve_seed(kw.get("seed"))  # once for all chunks
    if np.ndim(gamma) == 0:
        kw["gamma"] = gamma
    outs = [
        ((None, S), dt),
        ((None, S), np.int64),
        ((None, S, A), dt),
        ((None,), np.int64),
        ((None,), np.float64),
        ((None,), np.bool_),
        ((None,), np.int64),
    ]
    fn = functools.partial(_mdp_chunk, fname=fname, kw=kw)
    from . import mdp

    return mdp.Solution(*_map(fn, fname, args, outs, threads=threads, backend=backend, split=split))


def modified_policy_iteration(
    P: ArrayLike | CSR,
    R: ArrayLike,
    gamma: ArrayLike,
    *,
    V0: ArrayLike | None = None,
    threads: int | None = None,
    backend: str | None = None,
    **kwargs,
) -> Solution:
    """:func:`pygenmod.mdp.modified_policy_iteration` (= ``mdp.solve``) over the chunks of the
    batch axis of dense P (B, S, A, S); a :class:`pygenmod.mdp.CSR` P (NumPy) is split on the
    client along R's batch chunks (each task gets its MDPs' rows). gamma and V0 may be per
    MDP. A lazy Solution."""
    return _solution_map("modified_policy_iteration", P, R, gamma, threads, backend, V0=V0, **kwargs)


solve = modified_policy_iteration


def value_iteration(
    P: ArrayLike | CSR,
    R: ArrayLike,
    gamma: ArrayLike,
    *,
    V0: ArrayLike | None = None,
    threads: int | None = None,
    backend: str | None = None,
    **kwargs,
) -> Solution:
    """:func:`pygenmod.mdp.value_iteration` over batch chunks (see :func:`solve`)."""
    return _solution_map("value_iteration", P, R, gamma, threads, backend, V0=V0, **kwargs)


def policy_iteration(
    P: ArrayLike | CSR,
    R: ArrayLike,
    gamma: ArrayLike,
    *,
    threads: int | None = None,
    backend: str | None = None,
    **kwargs,
) -> Solution:
    """:func:`pygenmod.mdp.policy_iteration` over batch chunks (see :func:`solve`); an
    ``initial_policy`` array (B, S) is chunked with R, and ``"random"`` draws MDP b's start from
    stream ``stream + b`` (global b), so the result does not depend on the chunking."""
    return _solution_map("policy_iteration", P, R, gamma, threads, backend, **kwargs)


def policy_evaluation(
    P: ArrayLike | CSR,
    R: ArrayLike,
    gamma: ArrayLike,
    policy: ArrayLike,
    *,
    V0: ArrayLike | None = None,
    threads: int | None = None,
    backend: str | None = None,
    **kwargs,
) -> Evaluation:
    """:func:`pygenmod.mdp.policy_evaluation` over batch chunks; ``policy`` (B, S) or (B, S, A)."""
    from . import mdp

    args, split, S, _, dt = _mdp_args(P, R, gamma, V0, policy)
    kw = dict(kwargs, gamma=gamma) if np.ndim(gamma) == 0 else dict(kwargs)
    outs = [((None, S), dt), ((None,), np.int64), ((None,), np.float64), ((None,), np.bool_)]
    fn = functools.partial(_mdp_chunk, fname="policy_evaluation", kw=kw)
    if args["policy"] is None:
        raise ValueError("policy: expected a (B, S) or (B, S, A) array")
    return mdp.Evaluation(*_map(fn, "policy_evaluation", args, outs, threads=threads, backend=backend, split=split))


# ------------------------------------------------------------------------------ returns
def _gae_chunk(offset, *, kw, **arrays):
    from . import returns

    return tuple(returns.gae(**arrays, **kw))


def gae(
    rewards: ArrayLike,
    values: ArrayLike,
    *,
    gamma: ArrayLike = 0.99,
    lam: ArrayLike = 0.95,
    terminated: ArrayLike | None = None,
    truncated: ArrayLike | None = None,
    next_values: ArrayLike | None = None,
    bootstrap_value: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    time_axis: int = 0,
    compute_returns: bool = True,
    threads: int | None = None,
    backend: str | None = None,
) -> GAE:
    """:func:`pygenmod.returns.gae` over the chunks of the environment axis (axis 1 of the
    time-major (T, B) arrays; axis 0 with ``time_axis=1``); the time axis is one chunk. gamma,
    lam and bootstrap_value may be per environment (B,). A lazy GAE."""
    from . import returns

    if time_axis not in (0, 1):
        raise ValueError(f"time_axis: must be 0 or 1, got {time_axis}")
    if getattr(rewards, "ndim", None) != 2:
        raise ValueError("rewards: expected a 2-D (T, B) array")
    bax = 1 - time_axis
    args = {"rewards": (rewards, bax), "values": (values, bax)}
    for k, v in (("terminated", terminated), ("truncated", truncated), ("next_values", next_values), ("mask", mask)):
        args[k] = None if v is None else (v, bax)
    args.update(gamma=_per_batch(gamma), lam=_per_batch(lam), bootstrap_value=_per_batch(bootstrap_value))
    kw = {"time_axis": time_axis, "compute_returns": bool(compute_returns)}
    kw.update(
        {
            k: v
            for k, v in (("gamma", gamma), ("lam", lam), ("bootstrap_value", bootstrap_value))
            if np.ndim(v) == 0 and v is not None
        }
    )
    T = rewards.shape[time_axis]
    tmpl = (T, None) if time_axis == 0 else (None, T)
    dt = _fdtype(rewards)
    outs = [(tmpl, dt), (tmpl, dt) if compute_returns else None]
    adv, ret = _map(functools.partial(_gae_chunk, kw=kw), "gae", args, outs, threads=threads, backend=backend)
    return returns.GAE(adv, ret)


def lambda_returns(rewards: ArrayLike, values: ArrayLike, **kwargs) -> Array:
    """:func:`pygenmod.returns.lambda_returns` over environment chunks (see :func:`gae`)."""
    return gae(rewards, values, **kwargs).returns


# ------------------------------------------------------------------------------ sampling
def _head_chunk(offset, *, fname, seed, stream, kw, **arrays):
    from . import sampling

    r = getattr(sampling, fname)(**arrays, **kw, seed=seed, stream=stream + offset)
    if fname == "normal_head":
        return tuple(r)
    return tuple(r) if kw.get("return_eps") else (r,)


def _sampling(fname, mu, scales, *, seed, stream, n_samples, kw, threads, backend, head=False):
    from . import sampling

    if getattr(mu, "ndim", None) != 2:
        raise ValueError("mu: expected a (B, D) array (batch axis 0)")
    _B, D = mu.shape
    dt = _fdtype(mu) if np.dtype(mu.dtype) != np.float16 else np.dtype(np.float16)
    args = {"mu": (mu, 0)}
    for k, (v, nd) in scales.items():
        if v is not None and np.ndim(v) == nd:
            args[k] = (v, 0)
        elif v is not None:
            kw[k] = v  # a scalar / shared argument: the same in every chunk
    kw["n_samples"] = n_samples
    zt = (None, D) if n_samples is None else (n_samples, None, D)
    ret_eps = bool(kw.get("return_eps"))
    if head:
        lq = None if not kw.get("log_q") else ((None,) if n_samples is None else (n_samples, None))
        outs = [(zt, dt), ((None,), dt), None if lq is None else (lq, dt), (zt, dt) if ret_eps else None]
    else:
        outs = [(zt, dt)] + ([(zt, dt)] if ret_eps else [])
    fn = functools.partial(
        _head_chunk, fname=fname, seed=resolve_seed(seed), stream=val.seed_int(stream, "stream"), kw=kw
    )
    res = _map(fn, fname, args, outs, threads=threads, backend=backend)
    if head:
        return sampling.Head(*res)
    return sampling.Sample(*res) if ret_eps else res[0]


def rsample_normal(
    mu: ArrayLike,
    logvar: ArrayLike | None = None,
    *,
    log_std: ArrayLike | None = None,
    std: ArrayLike | None = None,
    seed: SeedLike = None,
    n_samples: int | None = None,
    stream: int = 0,
    offset: int = 0,
    clamp: tuple[float | None, float | None] | None = None,
    return_eps: bool = False,
    threads: int | None = None,
    backend: str | None = None,
) -> Array | Sample:
    """:func:`pygenmod.sampling.rsample_normal` over the row chunks of mu (B, D): row b draws
    from stream ``stream + b`` whatever its chunk. The scale (B, D) is chunked with mu."""
    kw = {"offset": offset, "clamp": clamp, "return_eps": return_eps}
    return _sampling(
        "rsample_normal",
        mu,
        {"logvar": (logvar, 2), "log_std": (log_std, 2), "std": (std, 2)},
        seed=seed,
        stream=stream,
        n_samples=n_samples,
        kw=kw,
        threads=threads,
        backend=backend,
    )


def normal_head(
    mu: ArrayLike,
    logvar: ArrayLike | None = None,
    *,
    log_std: ArrayLike | None = None,
    std: ArrayLike | None = None,
    seed: SeedLike = None,
    n_samples: int | None = None,
    stream: int = 0,
    offset: int = 0,
    clamp: tuple[float | None, float | None] | None = None,
    log_q: bool = False,
    return_eps: bool = False,
    threads: int | None = None,
    backend: str | None = None,
) -> Head:
    """:func:`pygenmod.sampling.normal_head` over row chunks (see :func:`rsample_normal`); a lazy Head."""
    kw = {"offset": offset, "clamp": clamp, "log_q": log_q, "return_eps": return_eps}
    return _sampling(
        "normal_head",
        mu,
        {"logvar": (logvar, 2), "log_std": (log_std, 2), "std": (std, 2)},
        seed=seed,
        stream=stream,
        n_samples=n_samples,
        kw=kw,
        threads=threads,
        backend=backend,
        head=True,
    )


def rsample_mvn(
    mu: ArrayLike,
    scale_tril: ArrayLike,
    *,
    seed: SeedLike = None,
    n_samples: int | None = None,
    stream: int = 0,
    offset: int = 0,
    return_eps: bool = False,
    check: bool = True,
    threads: int | None = None,
    backend: str | None = None,
) -> Array | Sample:
    """:func:`pygenmod.sampling.rsample_mvn` over row chunks; scale_tril (B, D, D) is chunked
    with mu, a shared (D, D) one goes to every chunk."""
    kw = {"offset": offset, "return_eps": return_eps, "check": check}
    if np.ndim(scale_tril) == 2:
        scale_tril = np.asarray(scale_tril.compute() if hasattr(scale_tril, "compute") else scale_tril)
    return _sampling(
        "rsample_mvn",
        mu,
        {"scale_tril": (scale_tril, 3)},
        seed=seed,
        stream=stream,
        n_samples=n_samples,
        kw=kw,
        threads=threads,
        backend=backend,
    )


# ------------------------------------------------------------------------------ cem
def _cem_chunk(offset, *, objective, seed, stream, kw, **arrays):
    from . import cem

    return tuple(cem.cem_optimize(objective, arrays["mean"], arrays["scale"], **kw, seed=seed, stream=stream + offset))


def cem_optimize(
    objective: Callable[[Array], Any],
    mean: ArrayLike,
    scale: ArrayLike,
    *,
    n_samples: int,
    n_elite: int,
    n_iter: int,
    seed: SeedLike = None,
    stream: int = 0,
    threads: int | None = None,
    backend: str | None = None,
    **kwargs,
) -> CEMResult:
    """:func:`pygenmod.cem.cem_optimize` over the row chunks of mean (B, D) and scale.

    ``objective`` must be *vectorised per problem*: row b of its (B, N) output depends only on
    row b of its (B, N, D) input (it is called on each chunk's rows), and it must pickle
    (a module-level function; cloudpickle ships closures and lambdas too). A lazy CEMResult.
    """
    from . import cem

    if getattr(mean, "ndim", None) != 2:
        raise ValueError("mean: expected a (B, D) array (batch axis 0)")
    _B, D = mean.shape
    dt = _fdtype(mean)
    T = val.positive_int(n_iter, "n_iter")
    st = (None, D) if kwargs.get("covariance", "diag") == "diag" else (None, D, D)
    outs = [((None, D), dt), (st, dt), ((None, D), dt), ((None,), dt), ((T, None), dt)]
    kw = dict(kwargs, n_samples=n_samples, n_elite=n_elite, n_iter=T)
    fn = functools.partial(
        _cem_chunk, objective=objective, seed=resolve_seed(seed), stream=val.seed_int(stream, "stream"), kw=kw
    )
    return cem.CEMResult(
        *_map(fn, "cem", {"mean": (mean, 0), "scale": (scale, 0)}, outs, threads=threads, backend=backend)
    )


# ------------------------------------------------------------------------------ mcts
def _mcts_chunk(offset, *, fname, model, num_simulations, seed, stream, kw, **arrays):
    from . import mcts

    out = getattr(mcts, fname)(
        arrays.pop("roots"), model, num_simulations, **arrays, **kw, seed=seed, stream=stream + offset
    )
    return out.action, out.action_weights, out.visit_counts, out.value


def _mcts_map(fname, roots, model, num_simulations, seed, stream, threads, backend, batched, kw):
    from . import mcts

    if not isinstance(model, mcts.TabularModel):
        raise TypeError(
            "model: expected a pygenmod.mcts.TabularModel (tabular_model / stochastic_tabular_model / "
            "mdp_model); callback searches are not distributed"
        )
    for k in ("tree", "root"):
        if kw.get(k) is not None:
            raise ValueError(f"{k}: not supported by pygenmod.dask (each task builds its chunk's trees)")
        kw.pop(k, None)
    if getattr(roots, "ndim", None) != 1:
        raise ValueError("roots: expected a (B,) array of root states (batch axis 0)")
    A = int(model.logits.shape[1])
    dt = np.dtype(model.logits.dtype)
    args = {"roots": (roots, 0)}
    for k, (v, nd) in batched.items():
        if v is not None and np.ndim(v) == nd:
            args[k] = (v, 0)
        elif v is not None:
            kw[k] = v  # a scalar argument: the same in every chunk
    outs = [((None,), np.int64), ((None, A), dt), ((None, A), np.int32), ((None,), dt)]
    fn = functools.partial(
        _mcts_chunk,
        fname=fname,
        model=model,
        num_simulations=num_simulations,
        seed=resolve_seed(seed),
        stream=val.seed_int(stream, "stream"),
        kw=kw,
    )
    return mcts.PolicyOutput(*_map(fn, f"mcts-{fname}", args, outs, threads=threads, backend=backend), None)


def muzero_policy(
    roots: Root,
    model: Callable[..., Any] | TabularModel,
    num_simulations: int,
    *,
    seed: SeedLike = None,
    stream: int = 0,
    invalid_actions: ArrayLike | None = None,
    temperature: ArrayLike = 1.0,
    threads: int | None = None,
    backend: str | None = None,
    **kwargs,
) -> PolicyOutput:
    """:func:`pygenmod.mcts.muzero_policy` on a tabular model over the chunks of ``roots`` (B,).

    Tree b draws its noise, sampled transitions and action as tree ``stream + b`` whatever its
    chunk, so the result equals the single-process search bitwise with the same integer ``seed``
    (``None`` is resolved once here). ``invalid_actions`` (B, A) and ``temperature`` (B,) may be
    per tree (chunked with roots); the model goes to every task. A lazy PolicyOutput whose
    ``tree`` is None (the trees stay on the workers); ``tree=`` continuation is not supported.
    """
    return _mcts_map(
        "muzero_policy",
        roots,
        model,
        num_simulations,
        seed,
        stream,
        threads,
        backend,
        {"invalid_actions": (invalid_actions, 2), "temperature": (temperature, 1)},
        dict(kwargs),
    )


def gumbel_muzero_policy(
    roots: Root,
    model: Callable[..., Any] | TabularModel,
    num_simulations: int,
    *,
    seed: SeedLike = None,
    stream: int = 0,
    invalid_actions: ArrayLike | None = None,
    gumbel: ArrayLike | None = None,
    threads: int | None = None,
    backend: str | None = None,
    **kwargs,
) -> PolicyOutput:
    """:func:`pygenmod.mcts.gumbel_muzero_policy` on a tabular model over the chunks of
    ``roots`` (see :func:`muzero_policy`); ``gumbel`` (B, A) is chunked with roots."""
    return _mcts_map(
        "gumbel_muzero_policy",
        roots,
        model,
        num_simulations,
        seed,
        stream,
        threads,
        backend,
        {"invalid_actions": (invalid_actions, 2), "gumbel": (gumbel, 2)},
        dict(kwargs),
    )


def uct_policy(
    roots: Root,
    model: Callable[..., Any] | TabularModel,
    num_simulations: int,
    *,
    seed: SeedLike = None,
    stream: int = 0,
    invalid_actions: ArrayLike | None = None,
    temperature: ArrayLike = 0.0,
    threads: int | None = None,
    backend: str | None = None,
    **kwargs,
) -> PolicyOutput:
    """:func:`pygenmod.mcts.uct_policy` on a tabular model over the chunks of ``roots`` (see
    :func:`muzero_policy`; the rollouts are keyed by the global tree index too)."""
    return _mcts_map(
        "uct_policy",
        roots,
        model,
        num_simulations,
        seed,
        stream,
        threads,
        backend,
        {"invalid_actions": (invalid_actions, 2), "temperature": (temperature, 1)},
        dict(kwargs),
    )


def search(
    roots: Root,
    model: Callable[..., Any] | TabularModel,
    num_simulations: int,
    *,
    policy: MctsPolicy = "muzero",
    **kwargs,
) -> PolicyOutput:
    """:func:`muzero_policy` (policy="muzero"), :func:`gumbel_muzero_policy` ("gumbel") or
    :func:`uct_policy` ("uct")."""
    val.choice(policy, "policy", ("muzero", "gumbel", "uct"))
    fn = {"muzero": muzero_policy, "gumbel": gumbel_muzero_policy, "uct": uct_policy}[policy]
    return fn(roots, model, num_simulations, **kwargs)
