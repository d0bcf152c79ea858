"""Demo section: Bellman backups."""
import numpy as np

import pygenmod
from pygenmod import mdp

TITLE = "Bellman backups (pygenmod.mdp)"


def run(report) -> None:
    rng = np.random.default_rng(0)
    P = rng.random((8, 200, 4, 200))
    P /= P.sum(-1, keepdims=True)
    R = rng.standard_normal((8, 200, 4))
    V = np.zeros((8, 200))
    rows = []
    ref = None
    for name, b in pygenmod.backends().items():
        if not b["available"] or name == "cuda":
            continue
        with pygenmod.use_backend(name), report.timed(f"{name}: 100 sweeps, 8 MDPs x 200 states"):
            v = V
            for _ in range(100):
                v = mdp.bellman_backup(P, R, v, 0.9).V
        ref = v if ref is None else ref
        rows.append((name, f"{v.mean():.6f}", f"{np.abs(v - ref).max():.1e}"))
    report.table(("backend", "mean V", "max |diff|"), rows)
