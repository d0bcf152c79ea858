"""Workloads W1 (many small GMM fits) and W2 (one large fit, per EM iteration) of WORKLOADS.md.

Every candidate starts from the same initial parameters (K points drawn from each set,
pygenmod's 'random_from_data' + one M-step), runs a fixed number of EM iterations (tol=0).
W1 times whole fits (100 iterations); W2 times one EM iteration: pygenmod's public
``gmm.em_step`` (input validation included) against scikit-learn's E-step + M-step methods
(its validation excluded). Data is built lazily inside setups.
"""
from __future__ import annotations

import functools
import os
import warnings

import numpy as np

from .runner import Candidate, Missing, Workload


@functools.lru_cache(maxsize=2)
def _w1_data(B, N=256, D=3, K=4, seed=0):
    from pygenmod import gmm

    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4, size=(B, K, D))
    A = rng.normal(size=(B, K, D, D)) * 0.5
    lab = rng.integers(0, K, size=(B, N))
    z = rng.normal(size=(B, N, D))
    X = means[np.arange(B)[:, None], lab] + np.einsum("bnij,bnj->bni", A[np.arange(B)[:, None], lab], z)
    p0 = gmm.fit(X, K, init="random_from_data", max_iter=0, random_state=seed, warn=False).params
    return X, p0


@functools.lru_cache(maxsize=4)
def _w2_data(ct, dtype, N=200_000, D=16, K=16, seed=0):
    from pygenmod import gmm

    rng = np.random.default_rng(seed)
    C = rng.normal(scale=3, size=(K, D))
    X = (C[rng.integers(0, K, N)] + rng.normal(size=(N, D)) * rng.uniform(0.5, 1.5, D)).astype(dtype)
    p0 = gmm.fit(X, K, covariance_type=ct, init="random_from_data", max_iter=0, random_state=seed,
                 warn=False).params
    return X, p0


def _sklearn():
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError as exc:
        raise Missing("scikit-learn is not installed") from exc
    return GaussianMixture


def _sk_model(GaussianMixture, p, ct, **kw):
    from pygenmod import gmm

    return GaussianMixture(len(p.weights), covariance_type=ct, weights_init=p.weights, means_init=p.means,
                           precisions_init=gmm.precisions(p), **kw)


def _w1(B):
    iters = 100

    def ours(backend):
        def setup():
            import pygenmod
            from pygenmod import gmm

            if not pygenmod.backends()[backend]["available"]:
                raise Missing(pygenmod.backends()[backend]["reason"])
            X, p0 = _w1_data(B)

            def run():
                with pygenmod.use_backend(backend):
                    return gmm.fit(X, 4, max_iter=iters, tol=0, init_params=p0, warn=False)
            return run
        return setup

    def sk_loop():
        GM = _sklearn()
        from pygenmod import gmm

        X, p0 = _w1_data(B)
        models = [_sk_model(GM, gmm.GMMParams(*(a[b] for a in p0[:4]), "full"), "full", max_iter=iters, tol=0)
                  for b in range(B)]

        try:  # 256 x 3 matrices: BLAS threads only add contention
            from threadpoolctl import threadpool_limits
        except ImportError:
            import contextlib

            def threadpool_limits(limits):
                return contextlib.nullcontext()

        def run():
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore")
                for b in range(B):
                    models[b].fit(X[b])
        return run

    return Workload("W1", f"{B} GMM fits (N=256, D=3, K=4, full, f64), {iters} EM iterations each",
                    [Candidate("pygenmod cpu", ours("cpu"), is_ours=True),
                     Candidate("pygenmod numba", ours("numba"), is_ours=True),
                     Candidate(f"scikit-learn loop ({B} fits)", sk_loop, note="BLAS threads=1")],
                    unit=f"{B} fits", repeats=3)


def _w2(ct, dtype, N):
    tag = "f64" if dtype == np.float64 else "f32"
    D = K = 16
    # E-step and covariance accumulation: N K D^2 multiply-adds each (WORKLOADS.md's count)
    flops = 2 * 2 * N * K * D * D if ct == "full" else None

    def ours():
        from pygenmod import gmm

        X, p0 = _w2_data(ct, dtype, N)
        return lambda: gmm.em_step(X, p0)

    def sk_numpy():
        GM = _sklearn()
        X, p0 = _w2_data(ct, dtype, N)
        g = _sk_model(GM, p0, ct, max_iter=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g.fit(X)

        def run():
            _, log_resp = g._e_step(X)
            g._m_step(X, log_resp)
        return run

    def sk_torch():
        if os.environ.get("SCIPY_ARRAY_API") != "1":
            raise Missing("set SCIPY_ARRAY_API=1 (before scipy is imported) for sklearn's array-API path")
        try:
            import array_api_compat  # noqa: F401
            import torch
            from sklearn import config_context
        except ImportError as exc:
            raise Missing(f"needs torch and array-api-compat ({exc})") from exc
        GM = _sklearn()
        X, p0 = _w2_data(ct, dtype, N)
        Xt = torch.asarray(X)
        with config_context(array_api_dispatch=True):
            g = GM(K, covariance_type=ct, weights_init=torch.asarray(p0.weights), means_init=torch.asarray(p0.means),
                   precisions_init=torch.asarray(np.asarray(__import__("pygenmod").gmm.precisions(p0))),
                   max_iter=1, init_params="random_from_data")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g.fit(Xt)

        def run():
            with config_context(array_api_dispatch=True):
                _, log_resp = g._e_step(Xt)
                g._m_step(Xt, log_resp)
        return run

    def pomegranate():
        try:
            import pomegranate  # noqa: F401
        except ImportError as exc:
            raise Missing("pomegranate is not installed") from exc
        raise Missing("pomegranate is installed but not wired into this workload")

    return Workload(f"W2-{ct}-{tag}", f"one EM iteration, N={N}, D=16, K=16, {ct}, {tag}",
                    [Candidate("pygenmod cpu (em_step)", ours, is_ours=True),
                     Candidate("scikit-learn numpy", sk_numpy),
                     Candidate("scikit-learn torch array-API", sk_torch),
                     Candidate("pomegranate", pomegranate)],
                    flops=flops, unit="EM iteration")


def workloads(quick: bool = False):
    B = 16 if quick else 512
    N = 20_000 if quick else 200_000
    return [_w1(B)] + [_w2(ct, dt, N) for ct in ("full", "diag") for dt in (np.float64, np.float32)]
