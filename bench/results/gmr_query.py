"""GMR per-query cost: the GMR estimator (conditioning cached) and gmm.gmr (conditions on every
call) over a query sweep, then the query kernel and the conditioning alone on 1 and 2 threads
(the serial/parallel threshold GMR_PAR_MIN_WORK of csrc/include/pygenmod/gmm/gmr.hpp). K=5
components, 2 inputs, 2 outputs, fitted on a noisy curve. Best of 7 repeats, microseconds per
call.

Usage: PYTHONPATH=$PWD python bench/results/gmr_query.py
"""

import timeit

import numpy as np

import pygenmod
import pygenmod._cpu_gmm
from pygenmod import gmm
from pygenmod._gmr import _query


def best_us(f, n):
    return min(timeit.repeat(f, number=n, repeat=7)) / n * 1e6


def main():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 4))
    X[:, 2:] += np.sin(X[:, :2])
    est = gmm.GMR(n_components=5, random_state=0).fit(X[:, :2], X[:, 2:])
    p = est.gmm_._params()
    print("queries  GMR.predict  gmm.gmr")
    for Q in (1, 16, 1024):
        xq = rng.standard_normal((Q, 2))
        n = max(1, 3000 // Q)
        print(
            f"{Q:7d}  {best_us(lambda xq=xq: est.predict(xq), n):9.1f}  {best_us(lambda xq=xq: gmm.gmr(p, xq, [0, 1]), n):9.1f}"
        )
    c = est._conditioning()
    default = pygenmod.get_num_threads()
    print("\nqueries  work  1 thread  2 threads   (the query kernel alone)")
    for Q in (8, 32, 64, 128, 256, 1024):
        xq = rng.standard_normal((Q, 2))
        times = []
        for threads in (1, 2):
            pygenmod.set_num_threads(threads)
            times.append(best_us(lambda xq=xq: _query(c, xq), max(1, 20000 // Q)))
        work = Q * 5 * (4 + 4 + 4 + 8)  # rows * K * (I*I + O*I + O*O + 8), as gmr_query_cpu counts it
        print(f"{Q:7d}  {work:6d}  {times[0]:8.1f}  {times[1]:9.1f}")
    print("\ncomponents  work  1 thread  2 threads   (the conditioning kernel alone, D=4, 2 in, 2 out)")
    kernel = pygenmod._cpu_gmm.gmr_condition
    for B in (1, 4, 16, 64, 256, 1024):
        A = rng.normal(size=(B, 5, 4, 4))
        S = A @ np.swapaxes(A, -1, -2) + 0.2 * np.eye(4)
        args = (S, rng.normal(size=(B, 5, 4)), np.full((B, 5), 0.2), np.array([0, 1]), np.array([2, 3]))
        outs = [np.empty((B, 5) + s) for s in ((2,), (2,), (), (2, 2), (2,), (2, 2), (2, 2))]
        times = []
        for threads in (1, 2):
            pygenmod.set_num_threads(threads)
            times.append(best_us(lambda: kernel(*args, *outs), max(1, 20000 // B)))  # noqa: B023
        work = B * 5 * 4**3 * 8  # components * (I + O)^3 * 8, as gmr_condition_cpu counts it
        print(f"{B * 5:10d}  {work:7d}  {times[0]:8.1f}  {times[1]:9.1f}")
    pygenmod.set_num_threads(default)


if __name__ == "__main__":
    main()
