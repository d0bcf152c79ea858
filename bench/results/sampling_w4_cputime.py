"""W4 in CPU time, one thread (torch.set_num_threads(1); run with OMP_NUM_THREADS=1):
process_time per call is far less sensitive to a shared, oversubscribed machine than wall time.
Usage: OMP_NUM_THREADS=1 PYTHONPATH=$PWD python bench/results/sampling_w4_cputime.py [--wall]
(--wall: wall-clock time instead, e.g. for a two-thread run)."""

import sys
import time

import numpy as np
import torch

from pygenmod import _cpu_sampling as K
from pygenmod import sampling

B, D = 65536, 64
rng = np.random.default_rng(0)
mu = rng.standard_normal((B, D), dtype=np.float32)
lv = 0.5 * rng.standard_normal((B, D), dtype=np.float32)
tm, tl = torch.from_numpy(mu), torch.from_numpy(lv)
out = np.empty((B, D), np.float32)


def fill():
    K.fill(1, 0, 0, 1, out)


def ours():
    sampling.rsample_normal(mu, lv, seed=1, out=out)


def ours_new():
    sampling.rsample_normal(mu, lv, seed=1)


def torch1():
    tm + torch.exp(0.5 * tl) * torch.randn_like(tm)


def copy():
    np.multiply(mu, lv, out=out)


gz = rng.standard_normal((B, D), dtype=np.float32)
gkl = np.ones(B, np.float32)
tg = torch.from_numpy(gz)


def ours_vae():
    sampling.normal_head(mu, lv, seed=1)
    sampling.normal_head_backward(mu, lv, grad_z=gz, grad_kl=gkl, seed=1)


def tdist():
    td = torch.distributions
    m, l = tm.clone().requires_grad_(), tl.clone().requires_grad_()
    q = td.Normal(m, torch.exp(0.5 * l))
    z = q.rsample()
    kl = td.kl_divergence(q, td.Normal(0.0, 1.0)).sum(-1)
    torch.autograd.backward([z, kl], [tg, torch.ones_like(kl)])


BF, DF = 8192, 32
muf = rng.standard_normal((BF, DF), dtype=np.float32)
L = np.tril(0.1 * rng.standard_normal((BF, DF, DF), dtype=np.float32))
L[:, np.arange(DF), np.arange(DF)] = 1
L = np.ascontiguousarray(L)
gzf = rng.standard_normal((BF, DF), dtype=np.float32)
gklf = np.ones(BF, np.float32)
tmf, tL, tgf = torch.from_numpy(muf), torch.from_numpy(L), torch.from_numpy(gzf)
zf = np.empty_like(muf)


def mvn():
    sampling.rsample_mvn(muf, L, seed=1, out=zf)


def mvn_nv():
    sampling.rsample_mvn(muf, L, seed=1, validate=False, out=zf)


def tmvn():
    torch.distributions.MultivariateNormal(tmf, scale_tril=tL).rsample()


def tbmm():
    tmf + (tL @ torch.randn_like(tmf)[..., None])[..., 0]


def mvn_vae():
    sampling.mvn_head(muf, L, seed=1)
    sampling.mvn_head_backward(muf, L, grad_z=gzf, grad_kl=gklf, seed=1)


def tmvn_vae():
    td = torch.distributions
    m, l = tmf.clone().requires_grad_(), tL.clone().requires_grad_()
    q = td.MultivariateNormal(m, scale_tril=l)
    z = q.rsample()
    kl = td.kl_divergence(q, td.MultivariateNormal(torch.zeros(DF), scale_tril=torch.eye(DF)))
    torch.autograd.backward([z, kl], [tgf, torch.ones_like(kl)])


fns = (fill, ours, ours_new, torch1, copy, ours_vae, tdist, mvn, mvn_nv, tmvn, tbmm, mvn_vae, tmvn_vae)
clock = time.perf_counter if "--wall" in sys.argv else time.process_time
if "--wall" not in sys.argv:
    torch.set_num_threads(1)
ts = {f.__name__: [] for f in fns}
for f in fns:
    f()
for r in range(7):
    for f in fns:
        t = clock()
        f()
        ts[f.__name__].append(clock() - t)
for k, v in ts.items():
    print(
        f"{k:9s} {'wall' if '--wall' in sys.argv else 'cpu'} min {min(v) * 1e3:8.2f} ms  median {np.median(v) * 1e3:8.2f} ms"
    )
