#!/usr/bin/env python3
"""Determinism and CPU/CUDA agreement of every kernel family (part of tools/gpu-check.sh).

For each case (a public call on fixed inputs):
- run-to-run: the same call twice on the device must be bitwise equal (every family);
- CPU vs device: reported per output as "bitwise" or the largest difference in units in the
  last place (ulp) and relative terms; the promise of docs/gpu.md is checked: "bitwise"
  outputs must be equal, "rounding" outputs within the float tolerance of the tests.

Usage: python tools/gpu_determinism.py [--out DIR] [--dry-run] [--other numba]
``--dry-run`` (no GPU): the "device" side is the CPU backend again (or ``--other``), so every
case, comparison and report runs; only the device is missing. Exit status 1 on a broken promise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__" and ROOT not in sys.path:
    # run as a script from a checkout (gpu-check.sh also sets PYTHONPATH); never when imported,
    # where it would put the source tree ahead of an installed pygenmod for every child process
    sys.path.insert(0, ROOT)

import pygenmod
from pygenmod import _backend, categorical, cem, gmm, mcts, mdp, random, returns, sampling, spatial

#: relative tolerance of a "rounding" promise (the tests' float tolerances, tests/conftest.py tol)
RTOL = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-9}
ATOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-10}


class Ctx:
    """Converts inputs to the backend's arrays ("cuda": CuPy) and outputs back to NumPy."""

    def __init__(self, backend: str):
        self.backend = backend
        self.device = backend == "cuda"

    def a(self, x):
        if self.device:
            import cupy

            return cupy.asarray(x)
        return np.asarray(x)

    @staticmethod
    def np(y):
        if y is None:
            return None
        return y.get() if hasattr(y, "get") else np.asarray(y)


def _rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- cases
# Each case: (family, name, promise, fn(ctx) -> {output: array}). promise is what docs/gpu.md
# says about CPU vs CUDA: "bitwise" or "rounding" (float outputs equal to the tests' tolerance;
# integer outputs derived from floats, e.g. an argmax, may differ only at near-ties).
def c_random_bits(c):
    return {"bits": random.bits(7, (64, 1000), device="cuda" if c.device else "cpu")}


def c_random_uniform(c):
    d = "cuda" if c.device else "cpu"
    return {
        "f32": random.uniform(7, (64, 1000), device=d),
        "f64": random.uniform(7, (64, 1000), dtype=np.float64, device=d),
    }


def c_random_normal(c):
    d = "cuda" if c.device else "cpu"
    return {
        "normal_f32": random.normal(7, (64, 1000), device=d),
        "normal_f64": random.normal(7, (64, 1000), dtype=np.float64, device=d),
        "gumbel_f32": random.gumbel(7, (64, 1000), device=d),
    }


def c_normal_head(c):
    r = _rng(1)
    mu, lv = r.normal(size=(512, 32)).astype(np.float32), r.normal(size=(512, 32)).astype(np.float32) * 0.3
    h = sampling.normal_head(c.a(mu), c.a(lv), seed=3, n_samples=2, log_q=True)
    g = sampling.normal_head_backward(
        c.a(mu),
        c.a(lv),
        grad_z=c.a(r.normal(size=(2, 512, 32)).astype(np.float32)),
        grad_kl=c.a(np.ones(512, np.float32)),
        seed=3,
        n_samples=2,
    )
    return {"z": h.z, "kl": h.kl, "log_q": h.log_q, "dmu": g[0], "dlogvar": g[1]}


def c_mvn_head(c):
    r = _rng(2)
    B, D = 256, 8
    mu = r.normal(size=(B, D))
    L = np.tril(r.normal(size=(D, D)) * 0.2) + np.eye(D)
    h = sampling.mvn_head(c.a(mu), c.a(L[None]), seed=5, n_samples=3)
    g = sampling.mvn_head_backward(
        c.a(mu), c.a(L[None]), grad_z=c.a(r.normal(size=(3, B, D))), grad_kl=c.a(np.ones(B)), seed=5, n_samples=3
    )
    return {"z": h.z, "kl": h.kl, "dmu (shared L)": g[0], "dL (shared L)": g[1]}


def c_spatial(c):
    r = _rng(3)
    x = r.normal(size=(4, 16, 24, 20)).astype(np.float32)
    kp = spatial.spatial_softmax(c.a(x), 0.7)
    gkp = r.normal(size=(4, 16, 2)).astype(np.float32)
    g = spatial.spatial_softmax_backward(c.a(x), 0.7, grad_keypoints=c.a(gkp))
    out = {"keypoints": kp}
    if isinstance(g, tuple):
        out.update({f"vjp[{i}]": v for i, v in enumerate(g) if v is not None and not np.isscalar(v)})
    else:
        out["vjp"] = g
    return out


def c_spatial_small(c):
    # B = 1, 64 x 64 NHWC maps: the split grid on a GPU (pixel slices merged in slice order)
    r = _rng(13)
    x = r.normal(size=(1, 64, 64, 8)).astype(np.float32)
    f = spatial.spatial_softmax(c.a(x), 0.7, layout="NHWC", return_cov=True, return_maps=True)
    gkp = r.normal(size=(1, 8, 2)).astype(np.float32)
    gm = r.normal(size=x.shape).astype(np.float32)
    gx, gt = spatial.spatial_softmax_backward(c.a(x), 0.7, layout="NHWC", grad_keypoints=c.a(gkp), grad_maps=c.a(gm))
    return {"keypoints": f.keypoints, "cov": f.cov, "maps": f.maps, "grad_x": gx, "grad_temp": gt}


def c_gmm(c):
    r = _rng(4)
    X = np.concatenate([r.normal(size=(300, 3)) + 3, r.normal(size=(300, 3)) - 3])
    f = gmm.fit(c.a(X), 3, covariance_type="full", max_iter=20, tol=0.0, random_state=0, warn=False)
    e = gmm.e_step(c.a(X), f.params)
    s = gmm.sample(f.params, 200, seed=1)
    out = {
        "weights": f.params.weights,
        "means": f.params.means,
        "lower_bound": f.lower_bound,
        "log_resp": e.log_resp,
        "log_prob_norm": e.log_prob_norm,
    }
    if isinstance(s, tuple):
        out.update({"sample": s[0], "labels": s[1]})
    return out


def c_gmm_f32(c):
    r = _rng(5)
    X = (r.normal(size=(2, 400, 4)) * 3).astype(np.float32)
    f = gmm.fit(c.a(X), 4, covariance_type="diag", max_iter=15, tol=0.0, random_state=1, warn=False)
    e = gmm.e_step(c.a(X), f.params)
    return {"means": f.params.means, "lower_bound": f.lower_bound, "log_resp": e.log_resp}


def c_mdp(c):
    P, R = mdp.random_mdp(64, 4, 8, seed=6)
    V = np.zeros((8, 64))
    b = mdp.bellman_backup(c.a(P), c.a(R), c.a(V), 0.95)
    s = mdp.value_iteration(c.a(P), c.a(R), 0.95, epsilon=1e-6)
    return {"backup Q": b.Q, "backup V": b.V, "VI V": s.V, "VI policy": s.policy, "VI iterations": s.iterations}


def c_gae(c):
    r = _rng(7)
    rew, val = r.normal(size=(256, 64)).astype(np.float32), r.normal(size=(256, 64)).astype(np.float32)
    term = r.random((256, 64)) < 0.05
    out = returns.gae(c.a(rew), c.a(val), gamma=0.99, lam=0.95, terminated=c.a(term))
    return {"advantages": out[0], "returns": out[1]} if isinstance(out, tuple) else {"advantages": out}


def c_mcts(c):
    r = _rng(8)
    S, A, B = 64, 6, 16
    model = mcts.tabular_model(
        c.a(r.integers(0, S, (S, A))),
        c.a(r.normal(size=(S, A))),
        c.a(r.normal(size=(S, A))),
        c.a(r.normal(size=S)),
        0.97,
    )
    out = mcts.muzero_policy(c.a(r.integers(0, S, B)), model, 32, dirichlet_fraction=0.0, temperature=0.0)
    return {"visit_counts": out.visit_counts, "value": out.value, "action": out.action}


def c_cem(c):
    x = _rng(9).normal(size=(64, 500))
    return {"top_k": cem.top_k(c.a(x), 20)}


def c_categorical(c):
    r = _rng(10)
    x, y = r.normal(size=(2, 512, 33)) * 3
    m = r.random((512, 33)) < 0.8
    m[:, 0] = True
    a = np.zeros(512, np.int64)
    g = np.ones(512)
    return {
        "log_prob": categorical.log_prob(c.a(x), c.a(a), mask=c.a(m)),
        "entropy": categorical.entropy(c.a(x), mask=c.a(m)),
        "kl": categorical.kl(c.a(x), c.a(y), mask=c.a(m)),
        "kl grad_q": categorical.kl_backward(c.a(x), c.a(y), grad_kl=c.a(g), mask=c.a(m))[1],
    }


CASES = [
    ("random", "bits", "bitwise", c_random_bits),
    ("random", "uniform", "bitwise", c_random_uniform),
    ("random", "normal/gumbel", "rounding", c_random_normal),
    ("sampling", "normal_head (+backward)", "rounding", c_normal_head),
    ("sampling", "mvn_head, shared scale_tril (+backward)", "rounding", c_mvn_head),
    ("spatial", "spatial_softmax (+vjp)", "rounding", c_spatial),
    ("spatial", "spatial_softmax B=1 NHWC, maps (+vjp)", "rounding", c_spatial_small),
    ("gmm", "fit/e_step/sample float64", "rounding", c_gmm),
    ("gmm", "fit/e_step diag float32", "rounding", c_gmm_f32),
    ("mdp", "backup, value_iteration", "rounding", c_mdp),
    ("returns", "gae", "rounding", c_gae),
    ("mcts", "muzero_policy tabular", "rounding", c_mcts),
    ("cem", "top_k", "rounding", c_cem),
    ("categorical", "log_prob/entropy/kl (+backward), masked", "rounding", c_categorical),
]


# ----------------------------------------------------------------------------- comparison
def _ordered(a: np.ndarray) -> np.ndarray:
    """Float bits as integers whose difference counts ulps (sign-magnitude -> two's complement)."""
    it = np.int32 if a.dtype == np.float32 else np.int64
    i = a.view(it).astype(np.int64)
    lim = np.int64(np.iinfo(it).min)
    return np.where(i < 0, lim - i, i)


def compare(a, b) -> dict:
    """bitwise equality, max ulp (floats) or mismatches (integers), max abs/rel difference."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return dict(bitwise=False, note=f"shape/dtype differ: {a.shape} {a.dtype} vs {b.shape} {b.dtype}")
    bitwise = a.tobytes() == b.tobytes()
    out = dict(bitwise=bitwise, dtype=str(a.dtype), size=int(a.size))
    if bitwise or a.size == 0:
        return out
    if a.dtype.kind == "f":
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        both = ~(nan_a | nan_b)
        out["nan_mismatch"] = int((nan_a != nan_b).sum())
        ulp = np.abs(_ordered(a[both]) - _ordered(b[both])) if both.any() else np.zeros(1, np.int64)
        out["max_ulp"] = int(ulp.max())
        d = np.abs(a[both].astype(np.float64) - b[both].astype(np.float64))
        scale = np.maximum(np.abs(a[both].astype(np.float64)), np.abs(b[both].astype(np.float64)))
        out["max_abs"] = float(d.max()) if d.size else 0.0
        tol = RTOL[a.dtype] * scale + ATOL[a.dtype]
        out["within_tol"] = bool(out["nan_mismatch"] == 0 and (d <= tol).all())
    else:
        out["mismatches"] = int((a != b).sum())
    return out


def _np_outputs(ctx, fn):
    with pygenmod.use_backend(ctx.backend):
        res = fn(ctx)
    return {k: ctx.np(v) for k, v in res.items() if v is not None}


def run(device: str, reference: str) -> list[dict]:
    rows = []
    for fam, name, promise, fn in CASES:
        row = dict(family=fam, case=name, promise=promise, device=device, reference=reference)
        t0 = time.perf_counter()
        try:
            d1 = _np_outputs(Ctx(device), fn)
            d2 = _np_outputs(Ctx(device), fn)
            ref = _np_outputs(Ctx(reference), fn)
        except Exception as exc:  # a failing family must not hide the others
            row.update(error=f"{type(exc).__name__}: {exc}", ok=False)
            rows.append(row)
            continue
        outs = {}
        ok = True
        for k in d1:
            rr = compare(d1[k], d2[k])
            cr = compare(ref[k], d1[k]) if k in ref else dict(bitwise=False, note="missing on reference")
            promise_ok = (
                cr["bitwise"]
                if promise == "bitwise"
                else (cr["bitwise"] or cr.get("within_tol", False) or np.asarray(d1[k]).dtype.kind != "f")
            )
            ok &= rr["bitwise"] and promise_ok
            outs[k] = dict(run_to_run=rr, vs_reference=cr, promise_kept=bool(promise_ok))
        row.update(outputs=outs, ok=bool(ok), seconds=round(time.perf_counter() - t0, 3))
        rows.append(row)
    return rows


def _cell(cr: dict) -> str:
    if cr.get("bitwise"):
        return "bitwise"
    if "max_ulp" in cr:
        return f"max {cr['max_ulp']} ulp (abs {cr['max_abs']:.2g})" + ("" if cr.get("within_tol") else " OUT OF TOL")
    if "mismatches" in cr:
        return f"{cr['mismatches']}/{cr['size']} differ"
    return cr.get("note", "?")


def markdown(rows) -> str:
    dev, ref = rows[0]["device"], rows[0]["reference"]
    lines = [
        f"| family | case | output | {dev} twice | {ref} vs {dev} | promise | kept |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['family']} | {r['case']} | - | ERROR | {r['error']} | {r['promise']} | no |")
            continue
        for k, o in r["outputs"].items():
            lines.append(
                f"| {r['family']} | {r['case']} | {k} | {_cell(o['run_to_run'])} | "
                f"{_cell(o['vs_reference'])} | {r['promise']} | {'yes' if o['promise_kept'] else 'NO'} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="folder for determinism.json / determinism.md")
    ap.add_argument("--dry-run", action="store_true", help="no GPU: the CPU backend stands in for the device")
    ap.add_argument("--other", default="cpu", help="dry run: the backend that stands in for cuda (cpu or numba)")
    args = ap.parse_args(argv)
    device = args.other if args.dry_run else "cuda"
    if not _backend.is_available(device):
        print(f"backend {device!r} unavailable: {pygenmod.backends()[device]['reason']}", file=sys.stderr)
        return 2
    rows = run(device, "cpu")
    md = markdown(rows)
    print(md)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "determinism.json"), "w") as f:
            json.dump(rows, f, indent=1)
        with open(os.path.join(args.out, "determinism.md"), "w") as f:
            f.write(md)
    bad = [f"{r['family']}/{r['case']}" for r in rows if not r["ok"]]
    if bad:
        print("broken promises or errors: " + ", ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
