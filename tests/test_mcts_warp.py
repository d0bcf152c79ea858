"""The warp-per-tree CUDA mapping of MCTS selection (issue 12, section 3).

At small B, select and the tabular search run a warp per tree (csrc/cuda/mcts_warp.cuh): the
32 lanes split a node's children and combine to the same child as the serial loop. These
CUDA cases (B = 1 and 3, A = 225) compare the warp mapping with the thread-per-tree mapping
bitwise (every tree array) and, in float64, with the CPU (the same trees; floats to rounding,
since nvcc's FMA contraction and libdevice differ from the host in the last bit, docs/gpu.md,
which in float32 may flip a near-tie among 225 children). They skip without CUDA (and fail
under PYGENMOD_REQUIRE_CUDA=1). The lane logic itself is tested on the host against the
serial loops in tests/cpp/test_mcts_lanes.cpp.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tol
from test_mcts_search import random_model, to_model

import pygenmod
from pygenmod import _backend, mcts

A = 225
POLICIES = ["muzero", "gumbel", "uct"]
INT_FIELDS = ("visits", "parent", "action", "children", "invalid", "state", "num_nodes")
FLOAT_FIELDS = ("value_sum", "raw_value", "reward", "discount", "logits", "prior", "gumbel", "qbounds")


@pytest.fixture
def cuda_mcts():
    ok, why = _backend._probe("cuda")
    if not ok:
        pytest.skip(f"backend 'cuda' unavailable: {why}")
    from pygenmod import _cuda_mcts

    yield _cuda_mcts
    _cuda_mcts.set_mapping("auto")


def _kwargs(policy, B, dtype, rng):
    if policy == "gumbel":
        return dict(seed=0, gumbel=rng.gumbel(size=(B, A)).astype(dtype), max_num_considered_actions=16)
    if policy == "muzero":
        return dict(seed=0, dirichlet_fraction=0.0)
    return dict(seed=0)


def _search(backend_name, policy, m, roots, sims, kw, callback):
    xp = np
    if backend_name == "cuda":
        import cupy as xp
    with pygenmod.use_backend(backend_name):
        kw = {k: xp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        r = xp.asarray(roots)
        if not callback:
            return mcts.search(r, to_model(m, _Asarray(xp)), sims, policy=policy, **kw)
        ns, R, L, V, inv = (xp.asarray(m[k]) for k in ("ns", "R", "L", "V", "invalid"))

        def recurrent_fn(emb, act):
            s2 = ns[emb, act]
            return mcts.RecurrentOutput(R[emb, act], R[emb, act] * 0 + 0.9, L[s2], V[s2], s2, inv[s2])

        return mcts.search(mcts.Root(L[r], V[r], r), recurrent_fn, sims, policy=policy, invalid_actions=inv[r], **kw)


class _Asarray:  # the part of conftest.Backend that to_model uses
    def __init__(self, xp):
        self.asarray = xp.asarray


def _host(x):
    return x.get() if hasattr(x, "get") else np.asarray(x)


def test_cuda_warp_mapping_is_chosen_at_small_batch(cuda_mcts):
    assert cuda_mcts.warp_per_tree(1) and cuda_mcts.warp_per_tree(3)
    assert not cuda_mcts.warp_per_tree(1 << 24)
    assert cuda_mcts.set_mapping("thread") == "auto"
    assert not cuda_mcts.warp_per_tree(1)
    assert cuda_mcts.set_mapping("warp") == "thread"
    assert cuda_mcts.warp_per_tree(1 << 24)
    with pytest.raises(ValueError, match="mapping"):
        cuda_mcts.set_mapping("block")


@pytest.mark.parametrize("callback", [False, True], ids=["tabular", "callback"])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("policy", POLICIES)
def test_cuda_warp_per_tree_matches_thread_per_tree_and_cpu(cuda_mcts, rng, dtype, policy, B, callback):
    S, sims = 40, 48
    m = random_model(rng, S, A, invalid_frac=0.3, dtype=dtype)
    roots = rng.integers(0, S, B)
    kw = _kwargs(policy, B, dtype, rng)
    cuda_mcts.set_mapping("warp")
    warp = _search("cuda", policy, m, roots, sims, kw, callback)
    cuda_mcts.set_mapping("thread")
    thread = _search("cuda", policy, m, roots, sims, kw, callback)
    cuda_mcts.set_mapping("auto")
    for f in INT_FIELDS + FLOAT_FIELDS:
        w, t = _host(getattr(warp.tree, f)), _host(getattr(thread.tree, f))
        np.testing.assert_array_equal(w.view(np.uint8), t.view(np.uint8), err_msg=f"{f}: warp vs thread (bitwise)")
    if dtype == np.float32:
        return  # CPU vs CUDA in float32: a near-tie within rounding may flip a selection (docs/gpu.md)
    cpu = _search("cpu", policy, m, roots, sims, kw, callback)
    for f in INT_FIELDS:
        np.testing.assert_array_equal(_host(getattr(warp.tree, f)), getattr(cpu.tree, f), err_msg=f"{f}: cuda vs cpu")
    for f in FLOAT_FIELDS:
        np.testing.assert_allclose(_host(getattr(warp.tree, f)), getattr(cpu.tree, f), **tol(dtype), err_msg=f)
    np.testing.assert_array_equal(_host(warp.visit_counts), cpu.visit_counts)
