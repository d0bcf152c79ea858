"""GPU rows of WORKLOADS.md: pygenmod's CUDA kernels against peers on the same GPU.

W2 (diag GMM, N=1M, D=64, K=64, 100 EM iterations; a torch EM), W3 (eager torch,
torch.compile), W4 (torch), W5 (mctx on JAX-CUDA; Gumbel MuZero at B=1024, A=225, 800
simulations), W6a/W6b (torch; W6b also jax.lax.scan), W7 (torch loop, jax.lax.scan). Each row
reports achieved bandwidth (bytes it must move) or FLOP rate against the device's measured copy
bandwidth and float32 matmul rate. Every timed call ends with a device synchronisation.

Guarded by device availability: without a usable CUDA backend :func:`workloads` is empty.
``python -m pygenmod.benchmarks.gpu --out DIR`` prints the table with the device, driver and
versions and writes DIR/gpu-bench.md and .json. ``--dry-run`` (no GPU) runs every row at a tiny
size on the host (NumPy arrays, CPU backend, torch on the CPU) to check the code, not to time it.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import io
import json
import os
import platform
import sys

import numpy as np

from .runner import Candidate, InSubprocess, Missing, Workload, run_table, time_call


class Device:
    """Where the rows run: CuPy + CUDA (real), or NumPy + CPU (dry run)."""

    def __init__(self, dry: bool):
        self.dry = dry
        if dry:
            self.xp, self.backend, self.torch_device = np, "cpu", "cpu"
        else:
            import cupy

            self.xp, self.backend, self.torch_device = cupy, "cuda", "cuda"

    def sync(self):
        if not self.dry:
            self.xp.cuda.get_current_stream().synchronize()

    def asarray(self, x):
        return self.xp.asarray(x)

    def timed(self, fn):
        """fn followed by a device sync: the time of the work, not of its launch."""

        def run():
            out = fn()
            self.sync()
            return out

        return run


def _torch(dev: Device):
    try:
        import torch
    except ImportError as exc:
        raise Missing("torch is not installed") from exc
    if not dev.dry and not torch.cuda.is_available():
        raise Missing("torch has no CUDA device")
    return torch


def _tsync(torch, dev):
    def f(fn):
        def run():
            out = fn()
            if not dev.dry:
                torch.cuda.synchronize()
            return out

        return run

    return f


def _jax(dev: Device):
    try:
        import jax
    except ImportError as exc:
        raise Missing("jax is not installed") from exc
    if not dev.dry and not any(d.platform == "gpu" for d in jax.devices()):
        raise Missing("jax has no GPU device")
    return jax


# ----------------------------------------------------------------------------- limits
def device_limits(dev: Device) -> dict:
    """Measured copy bandwidth (bytes read + written per second) and float32/float64 matmul rate."""
    xp = dev.xp
    n = (1 << 30) if not dev.dry else (1 << 22)
    src = xp.ones(n // 4, xp.float32)
    dst = xp.empty_like(src)
    copy = time_call(dev.timed(lambda: dst.__setitem__(Ellipsis, src)), repeats=5)
    m = 8192 if not dev.dry else 256
    out = dict(copy_bw=2 * n / copy)
    for name, dt in (("mm_f32", xp.float32), ("mm_f64", xp.float64)):
        a = xp.ones((m, m), dt)
        out[name] = 2 * m**3 / time_call(dev.timed(lambda a=a: a @ a), repeats=3)
    return out


def describe(dev: Device) -> str:
    import pygenmod

    lines = [f"pygenmod {pygenmod.__version__} GPU bench on {platform.node()}"]
    if dev.dry:
        lines.append("DRY RUN: host stand-ins at tiny sizes; the times mean nothing")
    else:
        import cupy

        rt = cupy.cuda.runtime
        p = rt.getDeviceProperties(cupy.cuda.Device().id)
        lines.append(
            f"device {p['name'].decode()} sm_{p['major']}{p['minor']}, {p['multiProcessorCount']} SMs, "
            f"driver {rt.driverGetVersion()}, runtime {rt.runtimeGetVersion()}, cupy {cupy.__version__}"
        )
    for mod in ("torch", "jax", "mctx", "numpy"):
        try:
            lines.append(f"{mod} {__import__(mod).__version__}")
        except Exception:
            lines.append(f"{mod} not installed")
    return "; ".join(lines)


# ----------------------------------------------------------------------------- rows
def _w3(dev: Device, size):
    from pygenmod import spatial

    from .spatial import _data, _eager

    B, C, H, W = size
    nbytes = B * C * H * W * 4

    def ours(backward):
        def setup():
            x0, g0 = _data(B, C, H, W)
            x, g = dev.asarray(x0), dev.asarray(g0)

            def run():
                if backward:
                    saved = spatial.spatial_softmax_forward(x, 1.0)
                    return spatial.spatial_softmax_backward(x, 1.0, grad_keypoints=g, saved=saved)
                return spatial.spatial_softmax(x, 1.0)

            return dev.timed(run)

        return setup

    def peer(compile_, backward):
        def setup():
            torch = _torch(dev)
            fn = _eager(torch)
            if compile_:
                if dev.dry:
                    raise Missing("dry run: torch.compile not exercised (minutes of CPU compile)")
                fn = torch.compile(fn)
            x0, g0 = _data(B, C, H, W)
            x = torch.from_numpy(x0).to(dev.torch_device).requires_grad_(backward)
            t = torch.tensor(1.0, device=dev.torch_device, requires_grad=backward)
            g = torch.from_numpy(g0).to(dev.torch_device)

            def run():
                if backward:
                    x.grad = t.grad = None
                    fn(x, t).backward(g)
                else:
                    with torch.no_grad():
                        fn(x, t)

            run = _tsync(torch, dev)(run)
            run()  # compile outside the timing
            return run

        return setup

    sz = f"B={B}, C={C}, H={H}, W={W} f32"
    return [
        Workload(
            "G-W3-fwd",
            f"spatial softmax forward, {sz}",
            [
                Candidate("pygenmod cuda", ours(False), is_ours=True),
                Candidate("torch eager", peer(False, False)),
                Candidate("torch.compile", peer(True, False), note="compile excluded"),
            ],
            bytes_moved=nbytes,
            repeats=11,
        ),
        Workload(
            "G-W3-fb",
            f"spatial softmax forward+backward, {sz}",
            [
                Candidate("pygenmod cuda (VJP)", ours(True), is_ours=True),
                Candidate("torch eager autograd", peer(False, True)),
                Candidate("torch.compile autograd", peer(True, True), note="compile excluded"),
            ],
            bytes_moved=3 * nbytes,
            repeats=11,
        ),
    ]


def _w4(dev: Device, B, D, Bm, Dm):
    from pygenmod import sampling

    def data(b, d):
        r = np.random.default_rng(0)
        return r.standard_normal((b, d)).astype(np.float32), (0.3 * r.standard_normal((b, d))).astype(np.float32)

    def ours():
        mu, lv = (dev.asarray(a) for a in data(B, D))
        return dev.timed(lambda: sampling.normal_head(mu, lv, seed=1))

    def ours_mvn():
        mu = dev.asarray(data(Bm, Dm)[0])
        L = dev.asarray(
            np.tril(np.random.default_rng(1).standard_normal((Bm, Dm, Dm)) * 0.1, -1).astype(np.float32)
            + np.eye(Dm, dtype=np.float32)
        )
        return dev.timed(lambda: sampling.mvn_head(mu, L, seed=1, check=False))

    def torch_normal():
        torch = _torch(dev)
        mu, lv = (torch.from_numpy(a).to(dev.torch_device) for a in data(B, D))

        def run():
            z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
            kl = 0.5 * (mu * mu + lv.exp() - 1 - lv).sum(-1)
            return z, kl

        return _tsync(torch, dev)(run)

    def torch_mvn():
        torch = _torch(dev)
        mu = torch.from_numpy(data(Bm, Dm)[0]).to(dev.torch_device)
        L = torch.tril(torch.randn(Bm, Dm, Dm, device=dev.torch_device) * 0.1, -1) + torch.eye(
            Dm, device=dev.torch_device
        )

        def run():
            e = torch.randn(Bm, Dm, 1, device=dev.torch_device)
            return mu + (L @ e)[..., 0]

        return _tsync(torch, dev)(run)

    return [
        Workload(
            "G-W4a",
            f"normal_head (sample + KL), B={B}, D={D} f32",
            [Candidate("pygenmod cuda", ours, is_ours=True), Candidate("torch", torch_normal)],
            bytes_moved=3 * B * D * 4,
            repeats=11,
        ),
        Workload(
            "G-W4b",
            f"mvn_head (sample + KL), B={Bm}, D={Dm} f32",
            [Candidate("pygenmod cuda", ours_mvn, is_ours=True), Candidate("torch (sample only)", torch_mvn)],
            bytes_moved=Bm * (Dm * Dm + 2 * Dm) * 4,
            repeats=11,
        ),
    ]


def _w5(dev: Device, B, sims, S=1024, A=16, policy="muzero"):
    from pygenmod import mcts

    from .mcts import GAMMA, random_tabular

    def ours():
        ns, R, L, V, roots = random_tabular(S=S, A=A, B=B)
        model = mcts.tabular_model(*(dev.asarray(a) for a in (ns, R, L, V)), GAMMA)
        r = dev.asarray(roots)
        kw = dict(dirichlet_fraction=0.0) if policy == "muzero" else {}
        return dev.timed(lambda: mcts.search(r, model, sims, policy=policy, **kw))

    def peer():
        jax = _jax(dev)
        try:
            import jax.numpy as jnp
            import mctx
        except ImportError as exc:
            raise Missing(f"mctx not installed ({exc})") from None
        ns, R, L, V, roots = (jnp.asarray(x) for x in random_tabular(S=S, A=A, B=B))
        root = mctx.RootFnOutput(prior_logits=L[roots], value=V[roots], embedding=roots)

        def recurrent_fn(params, rng_key, action, emb):  # the same tabular model as ours
            s2 = ns[emb, action]
            return mctx.RecurrentFnOutput(
                reward=R[emb, action], discount=jnp.full(emb.shape, GAMMA, jnp.float32), prior_logits=L[s2], value=V[s2]
            ), s2

        if policy == "muzero":
            fn = jax.jit(
                lambda key: (
                    mctx.muzero_policy(None, key, root, recurrent_fn, sims, dirichlet_fraction=0.0).action_weights
                )
            )
        else:
            fn = jax.jit(lambda key: mctx.gumbel_muzero_policy(None, key, root, recurrent_fn, sims).action_weights)
        key = jax.random.PRNGKey(0)
        fn(key).block_until_ready()  # compile outside the timing
        return lambda: fn(key).block_until_ready()

    return Workload(
        f"G-W5-{policy}",
        f"{policy} search, tabular S={S}, A={A}, B={B}, {sims} simulations (simulations/s = {B * sims} / time)",
        [Candidate("pygenmod cuda", ours, is_ours=True), Candidate("mctx (jit, JAX)", peer)],
        flops=None,
        unit="search",
        repeats=5,
    )


def _w5_mapping(dev: Device, B, sims, S=1024, A=225, policy="gumbel"):
    """The MCTS tabular search with a warp per tree against one thread per tree (the switch
    _cuda_mcts.set_mapping), to check where mcts::use_warp_per_tree puts the crossover."""
    from pygenmod import mcts

    from .mcts import GAMMA, random_tabular

    def with_mapping(name):
        def setup():
            ns, R, L, V, roots = random_tabular(S=S, A=A, B=B)
            model = mcts.tabular_model(*(dev.asarray(a) for a in (ns, R, L, V)), GAMMA)
            r = dev.asarray(roots)
            set_mapping = lambda m: None  # noqa: E731 (dry run: the CPU has one mapping)
            if not dev.dry:
                from pygenmod import _cuda_mcts

                set_mapping = _cuda_mcts.set_mapping

            def run():
                old = set_mapping(name)
                try:
                    return mcts.search(r, model, sims, policy=policy)
                finally:
                    set_mapping(old)

            return dev.timed(run)

        return setup

    return Workload(
        f"G-W5-mapping-B{B}",
        f"{policy} search, tabular S={S}, A={A}, B={B}, {sims} simulations: a warp vs a thread per tree",
        [
            Candidate("pygenmod cuda (warp per tree)", with_mapping("warp"), is_ours=True),
            Candidate("pygenmod cuda (thread per tree)", with_mapping("thread")),
        ],
        flops=None,
        unit="search",
        repeats=5,
    )


def _w6(dev: Device, S, A, Bb, Sb, Ab, sweeps):
    from pygenmod import mdp

    def ours_sweep():
        P, R = mdp.random_mdp(S, A, seed=0)
        P, R, V = dev.asarray(P), dev.asarray(R), dev.xp.zeros(S)
        return dev.timed(lambda: mdp.bellman_backup(P, R, V, 0.95, check=False))

    def torch_sweep():
        torch = _torch(dev)
        P, R = (torch.from_numpy(a).to(dev.torch_device) for a in mdp.random_mdp(S, A, seed=0))
        V = torch.zeros(S, dtype=P.dtype, device=dev.torch_device)
        return _tsync(torch, dev)(lambda: (R + 0.95 * torch.einsum("sat,t->sa", P, V)).max(-1))

    def ours_vi():
        P, R = mdp.random_mdp(Sb, Ab, Bb, seed=1)
        P, R = dev.asarray(P), dev.asarray(R)
        return dev.timed(lambda: mdp.value_iteration(P, R, 0.95, tol=0.0, max_iter=sweeps, check=False))

    def torch_vi():
        torch = _torch(dev)
        P, R = (torch.from_numpy(a).to(dev.torch_device) for a in mdp.random_mdp(Sb, Ab, Bb, seed=1))

        def run():
            V = torch.zeros(Bb, Sb, dtype=P.dtype, device=dev.torch_device)
            for _ in range(sweeps):
                V = (R + 0.95 * torch.einsum("bsat,bt->bsa", P, V)).amax(-1)
            return V

        return _tsync(torch, dev)(run)

    def jax_vi():
        jax = _jax(dev)
        import jax.numpy as jnp

        P, R = (jnp.asarray(a) for a in mdp.random_mdp(Sb, Ab, Bb, seed=1))

        @jax.jit
        def solve(P, R):
            def body(V, _):
                return (R + 0.95 * jnp.einsum("bsat,bt->bsa", P, V)).max(-1), None

            return jax.lax.scan(body, jnp.zeros((Bb, Sb), P.dtype), None, length=sweeps)[0]

        solve(P, R).block_until_ready()
        return lambda: solve(P, R).block_until_ready()

    return [
        Workload(
            "G-W6a",
            f"one dense optimality sweep, S={S}, A={A} f64",
            [Candidate("pygenmod cuda", ours_sweep, is_ours=True), Candidate("torch einsum", torch_sweep)],
            bytes_moved=S * A * S * 8,
            unit="sweep",
            repeats=11,
        ),
        Workload(
            "G-W6b",
            f"{sweeps} VI sweeps, B={Bb} MDPs, S={Sb}, A={Ab} f64",
            [
                Candidate(
                    "pygenmod cuda value_iteration",
                    ours_vi,
                    is_ours=True,
                    note="device-state loop, one sweep kernel per step",
                ),
                Candidate("torch loop", torch_vi),
                Candidate("jax.lax.scan (jit)", jax_vi),
            ],
            bytes_moved=sweeps * Bb * Sb * Ab * Sb * 8,
            unit="solve",
            repeats=3,
        ),
    ]


def _w7(dev: Device, T, B):
    from pygenmod import returns

    def data():
        r = np.random.default_rng(0)
        return (
            r.standard_normal((T, B)).astype(np.float32),
            r.standard_normal((T, B)).astype(np.float32),
            r.random((T, B)) < 0.01,
        )

    def ours():
        rew, val, done = (dev.asarray(a) for a in data())
        return dev.timed(lambda: returns.gae(rew, val, gamma=0.99, lam=0.95, terminated=done))

    def torch_loop():
        torch = _torch(dev)
        rew, val, done = (torch.from_numpy(a).to(dev.torch_device) for a in data())
        nd = (~done).float()

        def run():
            adv = torch.empty_like(rew)
            last = torch.zeros(B, device=rew.device)
            nv = torch.zeros(B, device=rew.device)
            for t in range(T - 1, -1, -1):
                delta = rew[t] + 0.99 * nv * nd[t] - val[t]
                last = delta + 0.99 * 0.95 * nd[t] * last
                adv[t] = last
                nv = val[t]
            return adv

        return _tsync(torch, dev)(run)

    def jax_scan():
        jax = _jax(dev)
        import jax.numpy as jnp

        rew, val, done = (jnp.asarray(a) for a in data())
        nd = 1.0 - done.astype(jnp.float32)

        @jax.jit
        def gae(rew, val, nd):
            nv = jnp.concatenate([val[1:], jnp.zeros((1, B), val.dtype)])

            def body(last, x):
                r, v, n, nvt = x
                last = r + 0.99 * nvt * n - v + 0.99 * 0.95 * n * last
                return last, last

            return jax.lax.scan(body, jnp.zeros(B, val.dtype), (rew, val, nd, nv), reverse=True)[1]

        gae(rew, val, nd).block_until_ready()
        return lambda: gae(rew, val, nd).block_until_ready()

    return Workload(
        "G-W7",
        f"GAE, T={T}, B={B} f32",
        [
            Candidate("pygenmod cuda", ours, is_ours=True),
            Candidate("torch loop over T", torch_loop),
            Candidate("jax.lax.scan (jit)", jax_scan),
        ],
        bytes_moved=T * B * (4 + 4 + 1 + 4 + 4),
        repeats=7,
    )


def _w2(dev: Device, N, D, K, iters):
    from pygenmod import gmm

    data = functools.partial(_w2_data, N, D, K)

    def ours():
        X, means = data()
        X, m = dev.asarray(X), dev.asarray(means)
        return dev.timed(
            lambda: gmm.fit(X, K, covariance_type="diag", max_iter=iters, tol=0.0, means_init=m, warn=False)
        )

    def torch_em():
        torch = _torch(dev)
        X, means = (torch.from_numpy(a).to(dev.torch_device) for a in data())

        def run():
            mu, var, w = means.clone(), torch.ones(K, D, device=X.device), torch.full((K,), 1.0 / K, device=X.device)
            for _ in range(iters):
                prec = 1.0 / var
                lp = (
                    -0.5 * ((X * X) @ prec.T - 2 * X @ (mu * prec).T + (mu * mu * prec).sum(1))
                    - 0.5 * torch.log(var).sum(1)
                    - 0.5 * D * np.log(2 * np.pi)
                    + torch.log(w)
                )
                r = torch.softmax(lp, 1)
                nk = r.sum(0) + 1e-10
                mu = (r.T @ X) / nk[:, None]
                var = (r.T @ (X * X)) / nk[:, None] - mu * mu + 1e-6
                w = nk / N
            return mu

        return _tsync(torch, dev)(run)

    def sk_array_api():
        missing = [m for m in ("torch", "array_api_compat", "sklearn") if importlib.util.find_spec(m) is None]
        if missing:
            raise Missing(f"needs {' and '.join(missing)}")
        return InSubprocess(
            "pygenmod.benchmarks.gpu:_sk_gpu_setup", (N, D, K, iters, dev.dry), env={"SCIPY_ARRAY_API": "1"}
        )

    # bounded repeats: an unknown first-run speed must not eat the whole check's time
    return Workload(
        "G-W2-diag",
        f"{iters} EM iterations, diag GMM, N={N}, D={D}, K={K} f32 (target: 100 iterations <= 1 s)",
        [
            Candidate("pygenmod cuda gmm.fit", ours, is_ours=True, max_repeats=2, warmup=0),
            Candidate("torch EM (matmul form)", torch_em, max_repeats=2),
            Candidate(
                "scikit-learn array-API (torch)",
                sk_array_api,
                max_repeats=2,
                note="GaussianMixture.fit under array_api_dispatch on torch tensors (target: pygenmod >= 3x)",
            ),
        ],
        flops=iters * N * K * D * 8.0,
        unit="fit",
        repeats=3,
    )


def _w2_data(N, D, K):
    r = np.random.default_rng(0)
    X = r.standard_normal((N, D)).astype(np.float32)
    return X, X[r.choice(N, K, replace=False)]


def _sk_gpu_setup(N, D, K, iters, dry):
    """scikit-learn's GaussianMixture.fit (diag, `iters` EM iterations from the same means)
    through its array-API path on torch tensors on the GPU (the host in a dry run).

    Runs in a child process started with SCIPY_ARRAY_API=1 (scipy reads it once, at import)."""
    import warnings

    if os.environ.get("SCIPY_ARRAY_API") != "1":
        raise Missing("needs SCIPY_ARRAY_API=1 before scipy is imported")
    try:
        import array_api_compat  # noqa: F401
        import torch
        from sklearn import config_context
        from sklearn.mixture import GaussianMixture
    except ImportError as exc:
        raise Missing(f"needs torch, array-api-compat and scikit-learn ({exc})") from exc
    if not dry and not torch.cuda.is_available():
        raise Missing("torch has no CUDA device")
    device = "cpu" if dry else "cuda"
    X, means = (torch.asarray(a, device=device) for a in _w2_data(N, D, K))

    def run():
        with config_context(array_api_dispatch=True), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: tol=0 never converges
            g = GaussianMixture(
                K, covariance_type="diag", max_iter=iters, tol=0.0, means_init=means, init_params="random_from_data"
            ).fit(X)
        if not dry:
            torch.cuda.synchronize()
        return g

    return run


def workloads(quick: bool = False, dev: Device | None = None):
    """The GPU rows; empty when the CUDA backend is unavailable (and not a dry run)."""
    from pygenmod import _backend

    if dev is None:
        if not _backend.is_available("cuda"):
            return []
        dev = Device(dry=False)
    small = quick or dev.dry
    return [
        *_w3(dev, (2, 4, 8, 8) if small else (32, 64, 64, 64)),
        *_w4(dev, *((64, 8, 16, 4) if small else (65536, 64, 8192, 32))),
        _w5(dev, *((4, 8) if small else (256, 64))),
        _w5(dev, *((2, 8, 32, 9, "gumbel") if small else (1024, 800, 4096, 225, "gumbel"))),
        *(
            _w5_mapping(dev, B, *((4, 32, 9) if small else (200, 1024, 225)))
            for B in ((1, 3) if small else (1, 64, 1024, 4096))
        ),
        *_w6(dev, *((50, 4, 8, 16, 4, 5) if small else (2000, 8, 1024, 64, 4, 200))),
        _w7(dev, *((16, 8) if small else (1024, 4096))),
        _w2(dev, *((500, 4, 3, 3) if small else (1_000_000, 64, 64, 10))),  # last: the least known
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="pygenmod GPU benchmark table (WORKLOADS.md GPU rows)")
    ap.add_argument("--out", help="folder for gpu-bench.md and gpu-bench.json")
    ap.add_argument("--dry-run", action="store_true", help="no GPU: tiny host stand-ins, checks the code only")
    ap.add_argument("--quick", action="store_true", help="small sizes on the GPU")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args(argv)
    import pygenmod
    from pygenmod import _backend

    if not args.dry_run and not _backend.is_available("cuda"):
        print(f"no CUDA backend: {pygenmod.backends()['cuda']['reason']}", file=sys.stderr)
        return 2
    dev = Device(dry=args.dry_run)
    head = describe(dev)
    lim = device_limits(dev)
    head += (
        f"\nmeasured: copy {lim['copy_bw'] / 1e9:.0f} GB/s, matmul f32 {lim['mm_f32'] / 1e12:.1f} TFLOP/s, "
        f"f64 {lim['mm_f64'] / 1e12:.1f} TFLOP/s"
    )
    print(head, flush=True)
    buf = io.StringIO()

    class Tee(io.TextIOBase):
        def write(self, s):
            sys.stdout.write(s)
            buf.write(s)
            return len(s)

        def flush(self):
            sys.stdout.flush()

    rows = []
    with pygenmod.use_backend(dev.backend):
        for w in workloads(args.quick, dev):  # files rewritten after every row: a timeout keeps the rest
            rows += run_table([w], out=Tee(), repeats=args.repeats, bandwidth=lim["copy_bw"], peak_flops=lim["mm_f32"])
            if args.out:
                os.makedirs(args.out, exist_ok=True)
                with open(os.path.join(args.out, "gpu-bench.md"), "w") as f:
                    f.write(head + "\n\n```\n" + buf.getvalue() + "```\n")
                with open(os.path.join(args.out, "gpu-bench.json"), "w") as f:
                    json.dump(dict(header=head, limits=lim, rows=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
