# CPU solver loop timings, min of repeats (bench/results/mdp.md, "One loop for CPU and CUDA"):
#   PYTHONPATH=$PWD OMP_NUM_THREADS=2 python bench/results/mdp_loop_cpu.py
import time

import numpy as np

from pygenmod import mdp


def t(f, n):
    best = 1e9
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


P6a, R6a = mdp.random_mdp(2000, 8, seed=0)
P6b, R6b = mdp.random_mdp(64, 4, 1024, seed=0)
Ps, Rs = mdp.random_mdp(20, 3, 64, seed=1)
rows = [
    ("W6a solve S=2000 A=8 eps=1e-6", lambda: mdp.solve(P6a, R6a, 0.95, epsilon=1e-6, check=False), 5),
    (
        "W6b VI B=1024 S=64 A=4 200 sweeps",
        lambda: mdp.value_iteration(P6b, R6b, 0.95, tol=0.0, max_iter=200, check=False),
        5,
    ),
    ("W6b solve B=1024 S=64 A=4", lambda: mdp.solve(P6b, R6b, 0.95, check=False), 5),
    ("small B=64 S=20 A=3 solve", lambda: mdp.solve(Ps, Rs, 0.95, check=False), 30),
    (
        "small B=64 S=20 A=3 evaluate",
        lambda: mdp.policy_evaluation(Ps, Rs, 0.95, np.zeros((64, 20), np.int64), evaluation="iterative", check=False),
        30,
    ),
]
for name, f, n in rows:
    f()
    print(f"{name:40s} {t(f, n) * 1e3:9.2f} ms")
