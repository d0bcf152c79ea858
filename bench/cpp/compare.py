"""C++ vs Python: the tabular MCTS search (W5) and one Bellman sweep (W6b) timed from C++
(bench_cpp.cpp, the header-only kernels, no Python) and through the Python API, on the same
arrays, with all threads and with one (OMP_NUM_THREADS=1, each in a fresh process).

    python bench/cpp/compare.py [--repeats 5] [--out bench/results/cpp.md]

Builds bench/cpp with CMake (build/bench-cpp) first. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MCTS_CASES = [(256, 64), (256, 256), (1, 64)]
MDP = {"B": 1024, "S": 64, "A": 4}

_PY = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, {root!r})
import pygenmod
from pygenmod import mcts, mdp
from pygenmod.benchmarks.mcts import random_tabular, GAMMA
d = {d!r}
reps = {reps}
def timeit(name, f):
    f()
    t = []
    for _ in range(reps):
        t0 = time.perf_counter(); f(); t.append(time.perf_counter() - t0)
    t.sort()
    print(json.dumps(dict(case=name, best_s=t[0], median_s=t[len(t) // 2])), flush=True)
ns, R, L, V, roots = random_tabular(B=256)
model = mcts.tabular_model(ns, R, L, V, GAMMA)
with pygenmod.use_backend("cpu"):
    for B, sims in {cases}:
        timeit(f"mcts B={{B}} sims={{sims}}", lambda: mcts.search(roots[:B], model, sims, dirichlet_fraction=0.0))
    P = np.fromfile(d + "/mdp_P.bin").reshape({B}, {S}, {A}, {S})
    Rm = np.fromfile(d + "/mdp_R.bin").reshape({B}, {S}, {A})
    Vm = np.fromfile(d + "/mdp_V.bin").reshape({B}, {S})
    g = np.fromfile(d + "/mdp_gamma.bin")
    timeit("bellman sweep B={B} S={S} A={A}", lambda: mdp.bellman_backup(P, Rm, Vm, g))
    timeit("bellman sweep B={B} S={S} A={A} (check=False)", lambda: mdp.bellman_backup(P, Rm, Vm, g, check=False))
"""


def build():
    cmake = shutil.which("cmake")
    bdir = os.path.join(ROOT, "build", "bench-cpp")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(
        [cmake, "-S", HERE, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release", *gen], check=True, stdout=subprocess.DEVNULL
    )
    subprocess.run([cmake, "--build", bdir, "--target", "bench_cpp"], check=True, stdout=subprocess.DEVNULL)
    return os.path.join(bdir, "bench_cpp")


def write_data(d):
    sys.path.insert(0, ROOT)
    from pygenmod import mcts
    from pygenmod.benchmarks.mcts import GAMMA, random_tabular

    ns, R, L, V, roots = random_tabular(B=256)
    m = mcts.tabular_model(ns, R, L, V, GAMMA)
    np.array(m.logits.shape, np.int64).tofile(f"{d}/mcts_dims.bin")
    for name in ("next_state", "reward", "discount", "logits", "prior", "value", "invalid"):
        a = getattr(m, name)
        a = a.astype(np.int64) if name == "next_state" else a
        np.ascontiguousarray(a).tofile(f"{d}/mcts_{name}.bin")
    np.asarray(roots, np.int64).tofile(f"{d}/mcts_roots.bin")
    rng = np.random.default_rng(0)
    B, S, A = MDP["B"], MDP["S"], MDP["A"]
    P = rng.random((B, S, A, S))
    P /= P.sum(-1, keepdims=True)
    np.array([B, S, A], np.int64).tofile(f"{d}/mdp_dims.bin")
    P.tofile(f"{d}/mdp_P.bin")
    rng.standard_normal((B, S, A)).tofile(f"{d}/mdp_R.bin")
    rng.standard_normal((B, S)).tofile(f"{d}/mdp_V.bin")
    np.full(B, 0.95).tofile(f"{d}/mdp_gamma.bin")


def run(cmd, threads):
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return {r["case"]: r for r in map(json.loads, filter(None, out.splitlines()))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    exe = build()
    with tempfile.TemporaryDirectory() as d:
        write_data(d)
        py = _PY.format(root=ROOT, d=d, reps=args.repeats, cases=MCTS_CASES, **MDP)
        res = {}
        for threads in (None, 1):
            res[("cpp", threads)] = run([exe, d, str(args.repeats)], threads)
            res[("py", threads)] = run([sys.executable, "-c", py], threads)
    nthreads = os.cpu_count()
    lines = [
        (
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.processor() or platform.machine()}, "
            f"{nthreads} CPUs; best of {args.repeats} calls after one warm-up (median in brackets). "
            "`python bench/cpp/compare.py` reproduces it."
        ),
        "",
        "| case | threads | C++ (headers) | Python API | Python overhead | per simulation (C++) |",
        "|---|---|---|---|---|---|",
    ]
    for threads in (None, 1):
        cpp, py = res[("cpp", threads)], res[("py", threads)]
        for case, c in cpp.items():
            p = py.get(case)
            per = ""
            if case.startswith("mcts"):
                B, sims = (int(x.split("=")[1]) for x in case.split()[1:3])
                per = f"{1e6 * c['best_s'] / (B * sims):.3f} us"
            ps = f"{1e3 * p['best_s']:.3f} ms [{1e3 * p['median_s']:.3f}]" if p else "-"
            ov = f"{1e6 * (p['best_s'] - c['best_s']):+.0f} us" if p else "-"
            lines.append(
                f"| {case} | {threads or nthreads} | {1e3 * c['best_s']:.3f} ms [{1e3 * c['median_s']:.3f}] "
                f"| {ps} | {ov} | {per} |"
            )
        for case, p in py.items():
            if case not in cpp:
                lines.append(
                    f"| {case} | {threads or nthreads} | - | {1e3 * p['best_s']:.3f} ms "
                    f"[{1e3 * p['median_s']:.3f}] | - | - |"
                )
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
