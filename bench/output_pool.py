"""Large outputs from pygenmod's pool of released buffers against fresh memory, alternated in
one process (pygenmod._recycle on / off), plus what fresh memory costs by size.

    PYTHONPATH=$PWD python bench/output_pool.py [N]     # N alternations (default 15): medians

Fresh memory: glibc maps every allocation of 32 MiB or more anew, and the first write to each
page is a page fault (the kernel zeroing the page); smaller ones come back from its heap.
"""

import sys
import time

import numpy as np

from pygenmod import _recycle, sampling, spatial
from pygenmod.benchmarks.sampling import _diag, _full


def _rows():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 64, 64, 64), dtype=np.float32)  # W3's x: grad_x is 32 MiB
    gk = rng.standard_normal((32, 64, 2), dtype=np.float32)
    mu, L, gz = _full(8192, 32)  # W4d: grad of L is 32 MiB
    gkl = np.ones(8192, np.float32)
    mud, lvd, gzd = _diag(65536, 64)  # W4a / W4b: 16 MiB outputs
    gkd = np.ones(65536, np.float32)

    def w3():
        saved = spatial.spatial_softmax_forward(x, 1.0, return_cov=False)
        return spatial.spatial_softmax_backward(x, 1.0, grad_keypoints=gk, saved=saved)

    return {
        "W3 VJP (forward + backward, no out=)": w3,
        "W4d mvn_head + backward": lambda: (
            sampling.mvn_head(mu, L, seed=1),
            sampling.mvn_head_backward(mu, L, grad_z=gz, grad_kl=gkl, seed=1),
        ),
        "W4b normal_head + backward": lambda: (
            sampling.normal_head(mud, lvd, seed=1),
            sampling.normal_head_backward(mud, lvd, grad_z=gzd, grad_kl=gkd, seed=1),
        ),
        "W4a rsample_normal": lambda: sampling.rsample_normal(mud, lvd, seed=1),
    }


def _median_ms(ts):
    return sorted(ts)[len(ts) // 2] * 1e3


def main(n):
    rows = _rows()
    times = {k: {True: [], False: []} for k in rows}
    for _ in range(n):
        for on in (True, False):
            _recycle._ENABLED = on
            _recycle.clear()
            for k, f in rows.items():
                f()  # the first call allocates; the timed one finds the dropped buffers
                t0 = time.perf_counter()
                f()
                times[k][on].append(time.perf_counter() - t0)
    _recycle._ENABLED = True
    for k in rows:
        print(f"{k}: pool {_median_ms(times[k][True]):.2f} ms, fresh {_median_ms(times[k][False]):.2f} ms")
    print("fresh memory by size (np.empty + fill, against refilling one array):")
    for mb in (4, 16, 31, 32, 64):
        count = mb * (1 << 20) // 4
        kept = np.empty(count, np.float32)
        fresh, reuse = [], []
        for _ in range(n * 2):
            t0 = time.perf_counter()
            np.empty(count, np.float32).fill(1.0)
            fresh.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            kept.fill(1.0)
            reuse.append(time.perf_counter() - t0)
        print(f"  {mb} MiB: fresh {_median_ms(fresh):.2f} ms, reused {_median_ms(reuse):.2f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
