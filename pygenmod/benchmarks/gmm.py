"""Workloads W1 (many small GMM fits) and W2 (one large fit, per EM iteration) of WORKLOADS.md.

Every candidate starts from the same initial parameters (K points drawn from each set,
pygenmod's 'random_from_data' + one M-step), runs a fixed number of EM iterations (tol=0).
W1 times whole fits (100 iterations); W2 times one EM iteration: pygenmod's public
``gmm.em_step`` (input validation included) against scikit-learn's E-step + M-step methods
(its validation excluded) and pomegranate's summarize + from_summaries. Data is built lazily
inside setups.

scikit-learn's array-API path on torch needs ``SCIPY_ARRAY_API=1`` in the environment before
scipy is first imported; the bench process imports scipy early (other peers), so that
candidate runs in a child process started with the variable set (``runner.InSubprocess``),
which rebuilds the same data from the same seed and times the call under the same rule.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings

import numpy as np

from .runner import Candidate, InSubprocess, Missing, Workload


@functools.lru_cache(maxsize=2)
def _w1_data(B, N=256, D=3, K=4, seed=0):
    from pygenmod import gmm

    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4, size=(B, K, D))
    A = rng.normal(size=(B, K, D, D)) * 0.5
    lab = rng.integers(0, K, size=(B, N))
    z = rng.normal(size=(B, N, D))
    X = means[np.arange(B)[:, None], lab] + np.einsum("bnij,bnj->bni", A[np.arange(B)[:, None], lab], z)
    p0 = gmm.fit(X, K, init="random_from_data", max_iter=0, seed=seed, warn=False).params
    return X, p0


@functools.lru_cache(maxsize=4)
def _w2_data(ct, dtype, N=200_000, D=16, K=16, seed=0):
    from pygenmod import gmm

    rng = np.random.default_rng(seed)
    C = rng.normal(scale=3, size=(K, D))
    X = (C[rng.integers(0, K, N)] + rng.normal(size=(N, D)) * rng.uniform(0.5, 1.5, D)).astype(dtype)
    p0 = gmm.fit(X, K, covariance_type=ct, init="random_from_data", max_iter=0, seed=seed, warn=False).params
    return X, p0


def _sklearn():
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError as exc:
        raise Missing("scikit-learn is not installed") from exc
    return GaussianMixture


def _pomegranate():
    try:
        import torch
        from pomegranate.distributions import Normal
        from pomegranate.gmm import GeneralMixtureModel
    except ImportError as exc:
        raise Missing(f"pomegranate (>= 1.0) is not installed ({exc})") from exc
    return torch, Normal, GeneralMixtureModel


def _pg_model(p, ct, **kw):
    """pomegranate mixture with the initial parameters p (one set; 'full' or 'diag' only).

    pomegranate adds nothing to the covariance diagonal (no reg_covar; min_cov=None)."""
    torch, Normal, GMM = _pomegranate()
    names = {"full": "full", "diag": "diag", "spherical": "sphere"}
    if ct not in names:
        raise Missing(f"pomegranate has no {ct!r} covariance")
    t = torch.as_tensor
    comps = [
        Normal(means=t(np.array(p.means[k])), covs=t(np.array(p.covariances[k])), covariance_type=names[ct])
        for k in range(len(p.weights))
    ]
    return GMM(comps, priors=t(np.array(p.weights)), **kw)


def _sk_model(GaussianMixture, p, ct, **kw):
    from pygenmod import gmm

    return GaussianMixture(
        len(p.weights),
        covariance_type=ct,
        weights_init=p.weights,
        means_init=p.means,
        precisions_init=gmm.precisions(p),
        **kw,
    )


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
                    return gmm.fit(X, 4, max_iter=iters, tol=0, init=p0, warn=False)

            return run

        return setup

    def sk_loop():
        GM = _sklearn()
        from pygenmod import gmm

        X, p0 = _w1_data(B)
        models = [
            _sk_model(GM, gmm.GMMParams(*(a[b] for a in p0[:4]), "full"), "full", max_iter=iters, tol=0)
            for b in range(B)
        ]

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

    def pg_loop():
        from pygenmod import gmm

        torch, _, _ = _pomegranate()
        X, p0 = _w1_data(B)
        Xt = [torch.as_tensor(X[b]) for b in range(B)]
        sets = [gmm.GMMParams(*(a[b] for a in p0[:4]), "full") for b in range(B)]
        # tol=-inf: no early stop (pomegranate stops when the improvement < tol), max_iter
        # E+M steps. Models are rebuilt from the initial parameters inside the timed call (fit
        # changes them in place); building one costs well under 1% of its fit.
        # Without reg_covar some fits reach a singular covariance and pomegranate raises
        # (torch LinAlgError in its Cholesky): counted and reported in the note; the time spent
        # up to the error is included, so the loop's time is a lower bound for 512 full fits.
        _pg_model(sets[0], "full", max_iter=2, tol=-np.inf).fit(Xt[0])  # torch warm-up

        def run():
            failed = 0
            for b in range(B):
                try:
                    _pg_model(sets[b], "full", max_iter=iters, tol=-np.inf).fit(Xt[b])
                except RuntimeError:  # torch.linalg.LinAlgError
                    failed += 1
            pg.note = (
                f"1 timed run; {failed} of {B} fits raised (singular covariance, no reg_covar): a lower bound"
                if failed
                else "1 timed run; no reg_covar"
            )

        return run

    pg = Candidate(f"pomegranate loop ({B} fits)", pg_loop, max_repeats=1, warmup=0, note="1 timed run; no reg_covar")
    return Workload(
        "W1",
        f"{B} GMM fits (N=256, D=3, K=4, full, f64), {iters} EM iterations each",
        [
            Candidate("pygenmod cpu", ours("cpu"), is_ours=True),
            Candidate("pygenmod numba", ours("numba"), is_ours=True),
            Candidate(f"scikit-learn loop ({B} fits)", sk_loop, note="BLAS threads=1"),
            pg,
        ],
        unit=f"{B} fits",
        repeats=3,
    )


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
        missing = [m for m in ("torch", "array_api_compat") if importlib.util.find_spec(m) is None]
        if missing:
            raise Missing(f"needs {' and '.join(missing)}")
        return InSubprocess(f"{__name__}:_sk_torch_setup", (ct, tag, N), env={"SCIPY_ARRAY_API": "1"})

    def pomegranate():
        torch, _, _ = _pomegranate()
        X, p0 = _w2_data(ct, dtype, N)
        Xt = torch.as_tensor(X)
        model = _pg_model(p0, ct, max_iter=1)

        def run():  # what pomegranate's fit does per iteration
            model.summarize(Xt)
            model.from_summaries()

        return run

    return Workload(
        f"W2-{ct}-{tag}",
        f"one EM iteration, N={N}, D=16, K=16, {ct}, {tag}",
        [
            Candidate("pygenmod cpu (em_step)", ours, is_ours=True),
            Candidate("scikit-learn numpy", sk_numpy),
            Candidate("scikit-learn torch array-API", sk_torch),
            Candidate("pomegranate", pomegranate, note="no reg_covar"),
        ],
        flops=flops,
        unit="EM iteration",
    )


def _sk_torch_setup(ct, tag, N):
    """scikit-learn's E-step + M-step through its array-API path on torch CPU tensors.

    Runs in a child process started with SCIPY_ARRAY_API=1 (see the module doc)."""
    import os

    if os.environ.get("SCIPY_ARRAY_API") != "1":
        raise Missing("needs SCIPY_ARRAY_API=1 before scipy is imported")
    try:
        import array_api_compat  # noqa: F401
        import torch
        from sklearn import config_context
    except ImportError as exc:
        raise Missing(f"needs torch and array-api-compat ({exc})") from exc
    from pygenmod import gmm

    GM = _sklearn()
    dtype = np.float64 if tag == "f64" else np.float32
    X, p0 = _w2_data(ct, dtype, N)
    Xt = torch.asarray(X)
    K = len(p0.weights)
    with config_context(array_api_dispatch=True):
        g = GM(
            K,
            covariance_type=ct,
            weights_init=torch.asarray(p0.weights),
            means_init=torch.asarray(p0.means),
            precisions_init=torch.asarray(gmm.precisions(p0)),
            max_iter=1,
            init_params="random_from_data",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g.fit(Xt)

    def run():
        with config_context(array_api_dispatch=True):
            _, log_resp = g._e_step(Xt)
            g._m_step(Xt, log_resp)

    return run


def workloads(quick: bool = False):
    B = 16 if quick else 512
    N = 20_000 if quick else 200_000
    return [_w1(B)] + [_w2(ct, dt, N) for ct in ("full", "diag") for dt in (np.float64, np.float32)]
