"""Scale-out rows (Dask): W1 and W6b scaled up, on LocalClusters against one process.

    python -m pygenmod.benchmarks.dask [--fits 8192] [--mdps 8192] [--chunk 512] [--repeat 2]

Configurations: one process with 1 thread (the serial reference) and with 2 threads (the pool),
and ``pygenmod.dask`` on a LocalCluster of 1 and of 2 worker processes x 1 thread (loopback).
The inputs are persisted on the workers before timing (the rows time the computation, not
the shipping of the data); every row's result is checked bitwise against the serial one.
Efficiency = serial seconds / (cores x seconds). The per-task overhead row times
``pygenmod.dask.rsample_normal`` on chunks of one row (negligible work per task).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _w1_chunk(B, seed):
    """W1's data (N=256, D=3, K=4 mixtures) for one chunk, and its initial parameters."""
    from pygenmod.benchmarks.gmm import _w1_data

    return _w1_data(B, seed=seed)


def _best(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _same(a, b):
    import dask

    (a,) = dask.compute(a)
    for x, y in zip(a, b):
        if isinstance(y, tuple):
            _same(x, y)
        elif not isinstance(y, str):
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fits", type=int, default=8192)
    ap.add_argument("--mdps", type=int, default=8192)
    ap.add_argument("--chunk", type=int, default=512, help="batch rows per Dask chunk")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=200, help="tasks of the per-task overhead row")
    a = ap.parse_args(argv)

    import dask
    import dask.array as da
    import distributed

    import pygenmod
    from pygenmod import dask as pdask
    from pygenmod import gmm, mdp

    # the inputs, built by chunk (the same rows for every configuration)
    nch = -(-a.fits // a.chunk)
    parts = [_w1_chunk(min(a.chunk, a.fits - i * a.chunk), seed=i) for i in range(nch)]
    X = np.concatenate([p[0] for p in parts])
    p0 = gmm.GMMParams(*(np.concatenate([p[1][j] for p in parts]) for j in range(4)), "full")
    del parts
    mch = -(-a.mdps // a.chunk)
    mparts = [mdp.random_mdp(64, 4, min(a.chunk, a.mdps - i * a.chunk), seed=i) for i in range(mch)]
    P = np.concatenate([m[0] for m in mparts])
    R = np.concatenate([m[1] for m in mparts])
    del mparts
    gkw = {"max_iter": 100, "tol": 0, "warn": False}
    mkw = {"tol": 0.0, "stop": "sup", "max_iter": 200, "check": False}

    rows = []

    def local(threads):
        pygenmod.set_num_threads(threads)
        t1, ref1 = _best(
            lambda: gmm.fit(
                X, 4, weights_init=p0.weights, means_init=p0.means, precisions_init=gmm.precisions(p0), **gkw
            ),
            a.repeat,
        )
        t6, ref6 = _best(lambda: mdp.value_iteration(P, R, 0.95, **mkw), a.repeat)
        return t1, t6, ref1, ref6

    t1s, t6s, ref1, ref6 = local(1)
    rows.append(("1 process x 1 thread", 1, t1s, t6s))
    t1, t6, _, _ = local(2)
    rows.append(("1 process x 2 threads", 2, t1, t6))
    prec = gmm.precisions(p0)

    overhead = None
    for n in (1, 2):
        with (
            distributed.LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
            ) as cl,
            distributed.Client(cl) as c,
        ):
            Xd = c.persist(da.from_array(X, chunks=(a.chunk, -1, -1)))
            wd, md, pd = (
                c.persist(da.from_array(v, chunks=(a.chunk,) + (-1,) * (v.ndim - 1)))
                for v in (p0.weights, p0.means, prec)
            )
            Pd = c.persist(da.from_array(P, chunks=(a.chunk, -1, -1, -1)))
            Rd = c.persist(da.from_array(R, chunks=(a.chunk, -1, -1)))
            distributed.wait([Xd, wd, md, pd, Pd, Rd])

            def w1(Xd=Xd, wd=wd, md=md, pd=pd):
                return dask.compute(pdask.fit(Xd, 4, weights_init=wd, means_init=md, precisions_init=pd, **gkw))[0]

            def w6(Pd=Pd, Rd=Rd):
                return dask.compute(pdask.value_iteration(Pd, Rd, 0.95, **mkw))[0]

            t1, r1 = _best(w1, a.repeat)
            t6, r6 = _best(w6, a.repeat)
            _same(r1, ref1)
            _same(r6, ref6)
            rows.append((f"LocalCluster {n} worker(s) x 1 thread", n, t1, t6))
            if n == 2:
                mu = c.persist(da.zeros((a.tasks, 8), chunks=(1, 8)))
                distributed.wait(mu)
                tt, _ = _best(lambda mu=mu: dask.compute(pdask.rsample_normal(mu, std=mu + 1.0, seed=0))[0], a.repeat)
                overhead = tt / a.tasks * 2  # two workers run tasks side by side

    print(
        f"W1: {a.fits} GMM fits (N=256, D=3, K=4, full, f64, 100 EM iterations); "
        f"W6b: {a.mdps} MDPs (S=64, A=4, f64, 200 sweeps); chunks of {a.chunk}; best of {a.repeat}"
    )
    print("| configuration | cores | W1 s | W1 efficiency | W6b s | W6b efficiency |")
    print("|---|---|---|---|---|---|")
    for name, cores, t1, t6 in rows:
        print(f"| {name} | {cores} | {t1:.2f} | {t1s / (cores * t1):.0%} | {t6:.2f} | {t6s / (cores * t6):.0%} |")
    print(f"per-task overhead (2 workers, {a.tasks} tasks of one row): {overhead * 1e3:.1f} ms per task")


if __name__ == "__main__":
    main()
