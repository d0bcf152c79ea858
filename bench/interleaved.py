"""In-use timings that `pygenmod bench` does not cover.

python bench/interleaved.py policy [--repeats 20]
    The threading-policy measurements behind the pool's idle polling (thread_pool.hpp,
    docs/threads.md): the issue-11 reproductions run in fresh processes under each
    PYGENMOD_SPIN_US (how long an idle worker polls before it sleeps):
      pi    policy_iteration(gridworld, evaluation="exact") with numpy.linalg.solve (300x300)
            between calls: median and worst of the repeats
      cem   cem_optimize on the demo problem (B=4, D=3, 64 samples, 8 elites, 40 iterations)
            while one other process spins on one core: median and worst
      W1    512 GMM fits (the W1 row), alone: what the setting costs a large parallel kernel
      W4a   diagonal rsample (65536 x 64, float32), alone
      W5cb  the Gumbel MCTS callback search (B=256, 64 simulations, a NumPy recurrent_fn:
            ~40 us of Python between the kernel calls), alone
      torch a loop of a 256x256 torch matmul+tanh (its own threads) and a parallel
            bellman_backup (S=256, A=4): per iteration (what polling costs the code between calls)
python bench/interleaved.py spread [--repeats 10]
    What the interleaved spread is made of. A few W rows (ours, a multi-threaded torch peer,
    and a single-threaded NumPy stream of 64 MB as a control) are timed in fresh processes
    back to back, right after a 300x300 numpy.linalg.solve, right after a 256x256 torch
    matmul+tanh, and after 20 ms idle; once with OpenBLAS's defaults and once with
    OPENBLAS_THREAD_TIMEOUT=4 (its workers sleep at once after a call instead of polling for
    2^28 cycles), and once with that and OMP_WAIT_POLICY=passive (torch's GNU OpenMP workers
    sleep at once too, instead of spinning). Median ms of the repeats.
python bench/interleaved.py after-blas [--repeats 15]
    The W5 Gumbel callback search (B=256, 64 simulations) timed right after a 300x300
    numpy.linalg.solve (OpenBLAS's worker then polls a core), with pygenmod's 2 threads and with
    1, and after 120 ms of idle sleep instead; in fresh processes, also with
    OPENBLAS_THREAD_TIMEOUT=4. Median ms: whether pygenmod's own pool loses to the poller.
python bench/interleaved.py tiny [--repeats 100]
    What the interleaved spread of the small latency rows (W5-b1's tabular search, W8's gae
    T=64 and bellman_backup S=256) is made of: each call timed back to back, after a 1 ms
    sleep, after a 4 MB array sum (evicts L2), after a 300x300 numpy.linalg.solve and after
    the runner's filler (the solve and a torch matmul); in fresh processes with OpenBLAS's and
    libgomp's defaults, and with both pools' workers sleeping at once
    (OPENBLAS_THREAD_TIMEOUT=4, OMP_WAIT_POLICY=passive). Median us per call.
python bench/interleaved.py idle [--repeats 12]
    Parallel W rows (ours) back to back and after 50 ms and 200 ms of idle sleep: median and
    worst ms. After a long idle, Linux can queue the pool's woken worker behind the caller on
    the caller's core (bench/pool_wake.cpp shows where each chunk ran); the pool steers late
    workers off that core (thread_pool.hpp). Run it in two checkouts to compare.
OMP_NUM_THREADS=1 python bench/interleaved.py minof [N] [W6a,W6c,...] [--family mdp]
    Every candidate of a workload in turn, N rounds, each one's fastest call (robust to load
    from elsewhere: a burst hits all candidates alike).
"""

import json
import os
import subprocess
import sys
import time

import numpy as np

SETTINGS = {  # name -> environment for the child (read when the pool is created)
    "sleep at once (0 us)": {"PYGENMOD_SPIN_US": "0"},
    "poll 30 us (fixed)": {"PYGENMOD_SPIN_US": "30"},
    "pygenmod default (30 us, adaptive to 150)": {},
    "poll 300 us": {"PYGENMOD_SPIN_US": "300"},
    "poll 3000 us": {"PYGENMOD_SPIN_US": "3000"},
}


def _stats(ts):
    ts = np.asarray(ts) * 1e3
    return dict(median_ms=float(np.median(ts)), max_ms=float(ts.max()))


def _calls(fn, n, before=None):
    """Seconds per call of fn, n calls (after one warm-up call); before() runs untimed ahead of
    each call."""
    fn()
    ts = []
    for _ in range(n):
        if before is not None:
            before()
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return ts


def scenario(name, repeats):
    """Runs in the child: one scenario, JSON on stdout."""
    import pygenmod  # noqa: F401  (creates the pool with the child's environment)
    from pygenmod import cem, mdp

    rng = np.random.default_rng(0)
    if name == "pi":
        P, R, _ = mdp.gridworld()
        A, b = rng.standard_normal((300, 300)) + 300 * np.eye(300), rng.standard_normal(300)
        mdp.policy_iteration(P, R, 0.99, evaluation="exact")
        ts = []
        for _ in range(repeats):
            np.linalg.solve(A, b)
            t = time.perf_counter()
            mdp.policy_iteration(P, R, 0.99, evaluation="exact")
            ts.append(time.perf_counter() - t)
    elif name == "cem":
        opt = rng.uniform(-3, 3, (4, 3))

        def f(X):
            d = X - opt[:, None]
            return -np.einsum("bnd,bnd->bn", d, d)

        def run():
            return cem.cem_optimize(
                f, np.zeros((4, 3)), np.full((4, 3), 2.0), n_samples=64, n_elite=8, n_iter=40, seed=1, min_std=0.01
            )

        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.2)
            ts = _calls(run, max(5, repeats // 4))
        finally:
            busy.kill()
            busy.wait()
    elif name == "W5cb":
        from pygenmod.benchmarks.mcts import ours_callback

        ts = _calls(ours_callback(256, 64, policy="gumbel")(), max(5, repeats // 2))
    elif name == "torch":
        import torch

        x, w = torch.randn(256, 256), torch.randn(256, 256)
        P, R = mdp.random_mdp(256, 4, seed=0)
        V = rng.standard_normal(256)
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(50):
                torch.tanh(x @ w)
                mdp.bellman_backup(P, R, V, 0.95)
            ts.append((time.perf_counter() - t) / 50)
    else:
        from pygenmod.benchmarks import all_workloads

        w = next(w for w in all_workloads(["gmm", "sampling"]) if w.id == name)
        ts = _calls(next(c for c in w.candidates if c.is_ours).setup(), max(5, repeats // 4))
    print(json.dumps(dict(_stats(ts), spin_us=os.environ.get("PYGENMOD_SPIN_US", "adaptive"))))


def policy(argv):
    repeats = int(argv[argv.index("--repeats") + 1]) if "--repeats" in argv else 20
    scen = ["pi", "cem", "W1", "W4a", "W5cb", "torch"]
    print(f"threading-policy check: {os.cpu_count()} cpus; median / worst ms; each cell a fresh process")
    print(f"{'setting':<42}" + "".join(f"{s:>22}" for s in scen))
    here = os.path.dirname(os.path.abspath(__file__))
    for label, extra in SETTINGS.items():
        env = {k: v for k, v in os.environ.items() if k != "PYGENMOD_SPIN_US"}
        env.update(extra)
        cells = []
        for s in scen:
            out = subprocess.run(
                [sys.executable, os.path.join(here, "interleaved.py"), "_scenario", s, str(repeats)],
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            try:
                r = json.loads(out.stdout.strip().splitlines()[-1])
                cells.append(f"{r['median_ms']:8.2f} / {r['max_ms']:8.2f}")
            except (IndexError, ValueError):
                cells.append("failed: " + (out.stderr.strip().splitlines() or ["?"])[-1][:12])
        print(f"{label:<42}" + "".join(f"{c:>22}" for c in cells), flush=True)


SPREAD_ROWS = {  # label -> (workload id, candidate name); "copy" is the NumPy control
    "W1 pygenmod cpu": ("W1", "pygenmod cpu"),
    "W4a pygenmod": ("W4a", "pygenmod"),
    "W7 pygenmod advantages only": ("W7", "pygenmod advantages only"),
    "W4a torch eager one-liner": ("W4a", "torch eager one-liner"),
    "W4c pygenmod": ("W4c", "pygenmod"),
    "W4c torch bmm one-liner": ("W4c", "torch bmm one-liner"),
    "numpy copy 64 MB (control)": None,
}
SPREAD_BEFORE = ("back to back", "after solve", "after torch op", "after 20 ms idle")
SPREAD_SETTINGS = (  # (tag, environment of the child): the other pools' idle workers
    ("default", {}),
    ("timeout=4", {"OPENBLAS_THREAD_TIMEOUT": "4"}),  # OpenBLAS's sleep at once
    ("+passive", {"OPENBLAS_THREAD_TIMEOUT": "4", "OMP_WAIT_POLICY": "passive"}),  # and torch's libgomp's
)


def spread_row(label, repeats):
    """Runs in the child: one row of `spread`, JSON {before: median ms} on stdout."""
    import torch

    import pygenmod  # noqa: F401
    from pygenmod.benchmarks import all_workloads

    if SPREAD_ROWS[label] is None:
        src, dst = np.ones(4 << 20), np.empty(4 << 20)  # 32 MB read + 32 MB written

        def fn():
            np.copyto(dst, src)
    else:
        wid, name = SPREAD_ROWS[label]
        w = next(w for w in all_workloads(["gmm", "sampling", "mdp"]) if w.id == wid)
        fn = next(c for c in w.candidates if c.name == name).setup()
    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((300, 300)) + 300 * np.eye(300), rng.standard_normal(300)
    t = torch.randn(256, 256)
    before = {
        "back to back": lambda: None,
        "after solve": lambda: np.linalg.solve(A, b),
        "after torch op": lambda: torch.tanh(t @ t),
        "after 20 ms idle": lambda: time.sleep(0.02),
    }
    fn()
    out = {}
    for k in SPREAD_BEFORE:
        ts = []
        for _ in range(repeats):
            before[k]()
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        out[k] = float(np.median(ts) * 1e3)
    print(json.dumps(out))


def spread(argv):
    repeats = int(argv[argv.index("--repeats") + 1]) if "--repeats" in argv else 10
    here = os.path.abspath(__file__)
    print(f"interleaved spread: {os.cpu_count()} cpus; median ms of {repeats}; each cell row a fresh process")
    print(f"{'row':<30}{'OpenBLAS':<12}" + "".join(f"{k:>18}" for k in SPREAD_BEFORE))
    for label in SPREAD_ROWS:
        for tag, extra in SPREAD_SETTINGS:
            env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY")}
            env.update(extra)
            out = subprocess.run(
                [sys.executable, here, "_spread", label, str(repeats)], env=env, capture_output=True, text=True
            )
            try:
                r = json.loads(out.stdout.strip().splitlines()[-1])
                cells = [f"{r[k]:8.2f} ({r[k] / r[SPREAD_BEFORE[0]]:.2f}x)" for k in SPREAD_BEFORE]
            except (IndexError, ValueError):
                cells = ["failed: " + (out.stderr.strip().splitlines() or ["?"])[-1][:40]]
            print(f"{label:<30}{tag:<12}" + "".join(f"{c:>18}" for c in cells), flush=True)


def minof(argv):
    from pygenmod.benchmarks import all_workloads
    from pygenmod.benchmarks.runner import Missing

    fam = None
    if "--family" in argv:
        i = argv.index("--family")
        fam = [argv[i + 1]]
        argv = argv[:i] + argv[i + 2 :]
    n = int(argv[0]) if argv else 5
    only = set(argv[1].split(",")) if len(argv) > 1 else None
    for w in all_workloads(fam):
        if only and w.id not in only:
            continue
        fns = {}
        for c in w.candidates:
            try:
                fns[c.name] = c.setup()
            except Missing as exc:
                print(f"   {c.name}: missing ({exc})")
        for f in fns.values():
            f()
        best = {k: np.inf for k in fns}
        for _ in range(n):
            for k, f in fns.items():
                t = time.perf_counter()
                f()
                best[k] = min(best[k], time.perf_counter() - t)
        ours = min(v for k, v in best.items() if k.startswith("pygenmod"))
        print(w.id, w.title)
        for k, v in best.items():
            print(f"   {k:<36} {v * 1e3:9.2f} ms  {v / ours:6.2f}x")
        sys.stdout.flush()


def after_blas_row(threads, repeats):
    """Runs in the child: the W5 callback search after a BLAS solve and after idle sleep."""
    import pygenmod
    from pygenmod.benchmarks.mcts import ours_callback

    pygenmod.set_num_threads(threads)
    search = ours_callback(256, 64, policy="gumbel")()
    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((300, 300)) + 300 * np.eye(300), rng.standard_normal(300)
    out = {}
    for mode, before in (
        ("after solve", lambda: np.linalg.solve(A, b)),
        ("after 120 ms idle", lambda: time.sleep(0.12)),
    ):
        out[mode] = float(np.median(_calls(search, repeats, before))) * 1e3
    print(json.dumps(out))


def after_blas(argv):
    repeats = int(argv[argv.index("--repeats") + 1]) if "--repeats" in argv else 15
    for env in ({}, {"OPENBLAS_THREAD_TIMEOUT": "4"}):
        for threads in (2, 1):
            cmd = [sys.executable, __file__, "_after_blas", str(threads), str(repeats)]
            res = json.loads(subprocess.run(cmd, env=dict(os.environ, **env), capture_output=True, text=True).stdout)
            label = f"{threads} pygenmod thread(s), " + ("OPENBLAS_THREAD_TIMEOUT=4" if env else "OpenBLAS defaults")
            print(f"{label:<52} " + "   ".join(f"{k}: {v:6.2f} ms" for k, v in res.items()), flush=True)


def tiny_rows(repeats):
    """Runs in the child: the small rows after each kind of gap (see the module docstring)."""
    from pygenmod import mdp, returns
    from pygenmod.benchmarks.mcts import ours_tabular
    from pygenmod.benchmarks.runner import _filler

    rng = np.random.default_rng(0)
    P, R = mdp.random_mdp(256, 4, seed=0)
    V = rng.standard_normal(256)
    rw, vals = rng.standard_normal((64, 1)), rng.standard_normal((64, 1))
    rows = {
        "W5-b1 search": ours_tabular(1, 64)(),
        "W8 gae T=64": lambda: returns.gae(rw, vals, gamma=0.99, lam=0.95),
        "W8 backup S=256": lambda: mdp.bellman_backup(P, R, V, 0.95),
    }
    big = np.ones(1 << 19)  # 4 MB
    A, b = rng.standard_normal((300, 300)) + 300 * np.eye(300), rng.standard_normal(300)
    gaps = {
        "back to back": None,
        "1 ms sleep": lambda: time.sleep(0.001),
        "4 MB sum": big.sum,
        "solve": lambda: np.linalg.solve(A, b),
        "solve+torch": _filler(),
    }
    out = {r: {g: float(np.median(_calls(f, repeats, gap))) * 1e6 for g, gap in gaps.items()} for r, f in rows.items()}
    print(json.dumps(out))


def tiny(argv):
    repeats = int(argv[argv.index("--repeats") + 1]) if "--repeats" in argv else 100
    envs = {"defaults": {}, "pools sleep at once": {"OPENBLAS_THREAD_TIMEOUT": "4", "OMP_WAIT_POLICY": "passive"}}
    for label, env in envs.items():
        cmd = [sys.executable, __file__, "_tiny", str(repeats)]
        res = json.loads(subprocess.run(cmd, env=dict(os.environ, **env), capture_output=True, text=True).stdout)
        print(f"{label}: median us per call after each gap")
        for row, by_gap in res.items():
            print(f"   {row:<18} " + "  ".join(f"{g}: {v:7.1f}" for g, v in by_gap.items()), flush=True)


IDLE_ROWS = {  # label -> (workload id, candidate name)
    "W6a sweep": ("W6a", "pygenmod bellman_backup"),
    "W4a rsample": ("W4a", "pygenmod"),
    "W7 gae": ("W7", "pygenmod gae"),
    "W2-diag-f32 em_step": ("W2-diag-f32", "pygenmod cpu (em_step)"),
    "W3-fwd": ("W3-fwd", "pygenmod"),
    "W1 (512 fits)": ("W1", "pygenmod cpu"),
}


def idle(argv):
    from pygenmod.benchmarks import all_workloads

    repeats = int(argv[argv.index("--repeats") + 1]) if "--repeats" in argv else 12
    ws = {w.id: w for w in all_workloads(["mdp", "gmm", "spatial", "sampling"])}
    gaps = {"back to back": None, "50 ms idle": lambda: time.sleep(0.05), "200 ms idle": lambda: time.sleep(0.2)}
    print(f"after idle: {os.cpu_count()} cpus; median / worst ms of {repeats} calls")
    print(f"{'row':<22}" + "".join(f"{g:>22}" for g in gaps))
    for label, (wid, name) in IDLE_ROWS.items():
        fn = next(c for c in ws[wid].candidates if c.name == name).setup()
        cells = []
        for gap in gaps.values():
            ts = np.asarray(_calls(fn, repeats, gap)) * 1e3
            cells.append(f"{np.median(ts):8.2f} / {ts.max():8.2f}")
        print(f"{label:<22}" + "".join(f"{c:>22}" for c in cells), flush=True)


if __name__ == "__main__":
    cmd, rest = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("minof", [])
    if cmd == "_scenario":
        scenario(rest[0], int(rest[1]))
    elif cmd == "_spread":
        spread_row(rest[0], int(rest[1]))
    elif cmd == "_after_blas":
        after_blas_row(int(rest[0]), int(rest[1]))
    elif cmd == "_tiny":
        tiny_rows(int(rest[0]))
    elif cmd == "tiny":
        tiny(rest)
    elif cmd == "idle":
        idle(rest)
    elif cmd == "after-blas":
        after_blas(rest)
    elif cmd == "policy":
        policy(rest)
    elif cmd == "spread":
        spread(rest)
    else:
        minof(rest if cmd == "minof" else sys.argv[1:])
