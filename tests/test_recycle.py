"""Host trees and large outputs reuse the arrays that nothing references any more
(pygenmod._recycle): a tree, field, output or view that anyone still holds is never handed out
again, a reused tree starts exactly as a fresh one, and results never depend on reuse."""

import threading

import numpy as np
import pytest

from pygenmod import _fast, _recycle, mcts, random, returns, sampling, spatial

pytestmark = pytest.mark.skipif(not _recycle._ENABLED, reason="array reuse needs CPython with the GIL")

B, A, S = 8, 5, 40


@pytest.fixture(autouse=True)
def small_arrays_too(monkeypatch):
    """These trees are small: reuse them all (by default arrays under 64 KB are not kept)."""
    monkeypatch.setattr(_recycle, "MIN_BYTES", 1)
    _recycle.clear()
    yield
    _recycle.clear()


def _model(dtype=np.float64):
    rng = np.random.default_rng(0)
    ns = rng.integers(0, S, (S, A))
    R, L, V = rng.standard_normal((S, A)), rng.standard_normal((S, A)), rng.standard_normal(S)
    roots = rng.integers(0, S, B)

    def fn(emb, act):
        s2 = ns[emb, act]
        return R[emb, act].astype(dtype), np.full(len(emb), 0.9, dtype), L[s2].astype(dtype), V[s2].astype(dtype), s2

    return mcts.Root(L[roots].astype(dtype), V[roots].astype(dtype), roots), fn


def _kept(shape, dtype):
    """The arrays the pool keeps for this shape and dtype, least recently handed out first."""
    return [a for _, a in _recycle._kept.get((shape, np.dtype(dtype)), [])]


def _snapshot(tree):
    return {f: np.array(getattr(tree, f), copy=True) for f in mcts.TREE_FIELDS}


def _fields(tree):
    return [getattr(tree, f) for f in mcts.TREE_FIELDS]


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_held_trees_are_never_reused(policy):
    root, fn = _model()
    _recycle.clear()
    first = mcts.search(root, fn, 12, policy=policy, seed=3)
    before = _snapshot(first.tree)
    outs = [mcts.search(root, fn, 12, policy=policy, seed=s) for s in range(4)]
    for f, a in zip(mcts.TREE_FIELDS, _fields(first.tree)):
        np.testing.assert_array_equal(a, before[f], err_msg=f)
        for o in outs:
            assert not any(np.shares_memory(a, b) for b in _fields(o.tree)), f


def test_a_held_view_keeps_its_array():
    root, fn = _model()
    _recycle.clear()
    out = mcts.search(root, fn, 12, seed=1)
    children_row = out.tree.children[:, 1]  # a view: keeps tree.children alive and unshared
    want = children_row.copy()
    del out
    for s in range(3):
        other = mcts.search(root, fn, 12, seed=10 + s)
        assert not np.shares_memory(children_row, other.tree.children)
    np.testing.assert_array_equal(children_row, want)


def test_dropped_trees_are_reused_and_start_as_fresh_ones():
    root, fn = _model()
    _recycle.clear()
    ids = {id(a) for a in _fields(mcts.search(root, fn, 12, seed=1).tree)}  # dropped at once
    tree = mcts.new_tree(B, A, 13, np.float64)
    assert {id(a) for a in _fields(tree)} & ids, "expected the dropped tree's arrays to be reused"
    for f in mcts.TREE_FIELDS:
        a = getattr(tree, f)
        if f == "qbounds":
            assert (a[:, 0] == np.inf).all() and (a[:, 1] == -np.inf).all()
        else:
            np.testing.assert_array_equal(a, -1 if f in ("parent", "action", "children") else 0, err_msg=f)
        assert a.flags.c_contiguous and a.flags.writeable


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_do_not_depend_on_reuse(dtype):
    root, fn = _model(dtype)
    _recycle.clear()
    fresh = mcts.search(root, fn, 16, policy="gumbel", seed=7)  # new arrays
    mcts.search(root, fn, 16, policy="gumbel", seed=99)  # dropped: its arrays come back next
    again = mcts.search(root, fn, 16, policy="gumbel", seed=7)
    for f in mcts.TREE_FIELDS:
        np.testing.assert_array_equal(getattr(again.tree, f), getattr(fresh.tree, f), err_msg=f)
    np.testing.assert_array_equal(again.action_weights, fresh.action_weights)


def test_reuse_is_bounded(monkeypatch):
    held = [_recycle.full((64,), 0, np.float64) for _ in range(_recycle.MAX_ARRAYS + 10)]
    assert _recycle._count == _recycle.MAX_ARRAYS == sum(map(len, _recycle._kept.values()))
    assert all(a is not held[0] for a in _kept((64,), np.float64))  # the oldest are forgotten
    monkeypatch.setattr(_recycle, "MAX_BYTES", 1024)
    big = _recycle.full((129,), 0, np.float64)
    assert not _kept((129,), np.float64)
    monkeypatch.setattr(_recycle, "MIN_BYTES", 1 << 16)
    small = _recycle.full((7,), 0, np.float64)
    assert not _kept((7,), np.float64)
    del held, big, small


def test_threads_never_share_an_array():
    _recycle.clear()
    held, errors = [], []

    def work():
        try:
            for _ in range(200):
                t = mcts.new_tree(4, 3, 9, np.float64)
                t.visits[...] = threading.get_ident() % 1000
                held.append(t)
                if len(held) > 6:
                    held.pop(0)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    trees = list(held)
    for i, a in enumerate(trees):
        for b in trees[i + 1 :]:
            assert not any(np.shares_memory(x, y) for x, y in zip(_fields(a), _fields(b)))


# ----------------------------------------------------------------------------- large outputs
# 512 x 512 float32 is 1 MiB: the compiled fast paths ask pygenmod._recycle from 128 KiB on
# (fast_path.hpp), and the tests set the Python bound to 1 MiB.
BIG = (512, 512)


@pytest.fixture
def outputs_from_1mib(monkeypatch):
    monkeypatch.setattr(_recycle, "OUTPUT_MIN_BYTES", 1 << 20)
    _recycle.clear()
    yield
    _recycle.clear()


def _ptr(a):
    return a.__array_interface__["data"][0]


def _calls():
    """(name, f(seed) -> the output array) for functions whose large outputs come from empty()."""
    rng = np.random.default_rng(0)
    mu = rng.standard_normal(BIG, dtype=np.float32)
    lv = 0.1 * rng.standard_normal(BIG, dtype=np.float32)
    gz = rng.standard_normal(BIG, dtype=np.float32)
    x = rng.standard_normal((4, 64, 32, 32), dtype=np.float32)  # 1 MiB
    gk = rng.standard_normal((4, 64, 2), dtype=np.float32)
    r, v = rng.standard_normal(BIG, dtype=np.float32), rng.standard_normal(BIG, dtype=np.float32)
    return [
        ("rsample_normal", lambda s: sampling.rsample_normal(mu, lv, seed=s)),
        ("rsample_normal (general path)", lambda s: sampling.rsample_normal(mu, log_std=lv, seed=s)),
        ("normal_head_backward", lambda s: sampling.normal_head_backward(mu, lv, grad_z=gz, seed=s)[1]),
        ("spatial_softmax_backward", lambda s: spatial.spatial_softmax_backward(x, 1.0 + s, grad_keypoints=gk)[0]),
        ("gae", lambda s: returns.gae(r, v + s, gamma=0.99, lam=0.95)[0]),
        ("gumbel_softmax", lambda s: sampling.gumbel_softmax(mu, seed=s).y_soft),
        ("random.normal", lambda s: random.normal(s, BIG)),
    ]


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("name, call", _calls(), ids=[c[0] for c in _calls()])
def test_large_outputs_are_reused_only_when_released(outputs_from_1mib, monkeypatch, fast, name, call):
    monkeypatch.setattr(_fast, "ENABLED", fast)
    want = {s: call(s).copy() for s in (1, 2, 3)}  # fresh arrays (each dropped at once)
    first = call(1)
    view = call(2)[::2]  # only a view kept: its base must not be handed out again
    base_ptr, view_copy = _ptr(view.base if view.base is not None else view), view.copy()
    third = call(3)
    for a in (first, third):
        assert not np.shares_memory(a, view)
    assert not np.shares_memory(first, third)
    np.testing.assert_array_equal(view, view_copy)
    np.testing.assert_array_equal(first, want[1])
    np.testing.assert_array_equal(third, want[3])
    del first
    kept = _recycle._count
    again = call(2)  # a free buffer (first's, or one dropped inside a call) is reused and written entirely
    assert _recycle._count == kept and _ptr(again) != base_ptr
    np.testing.assert_array_equal(again, want[2])


def test_an_output_held_by_torch_is_not_reused(outputs_from_1mib):
    torch = pytest.importorskip("torch")
    mu = np.zeros(BIG, np.float32)
    lv = np.zeros(BIG, np.float32)
    t = torch.from_numpy(sampling.rsample_normal(mu, lv, seed=1))  # the tensor holds the array
    want = t.clone()
    others = [sampling.rsample_normal(mu, lv, seed=s) for s in range(2, 5)]
    assert torch.equal(t, want)
    assert all(not np.shares_memory(t.numpy(), o) for o in others)


def test_output_reuse_is_bounded(outputs_from_1mib, monkeypatch):
    small = _recycle.empty((16,), np.float32)  # below OUTPUT_MIN_BYTES: not remembered
    assert _recycle._count == 0
    monkeypatch.setattr(_recycle, "MAX_KEPT_BYTES", 3 << 20)
    held = [_recycle.empty(BIG, np.float32) for _ in range(5)]  # 1 MiB each
    assert _recycle._count == 3 and _recycle._bytes == 3 << 20  # the oldest are forgotten
    assert all(a is not held[0] and a is not held[1] for a in _kept(BIG, np.float32))
    huge = _recycle.empty((4, 1 << 20), np.float32)  # 16 MiB > MAX_KEPT_BYTES: never remembered
    assert _recycle._bytes == 3 << 20 and not _kept((4, 1 << 20), np.float32)
    del small, held, huge


def test_eviction_forgets_the_least_recently_handed_out(outputs_from_1mib, monkeypatch):
    """A buffer in use every step stays; one-off shapes are forgotten first."""
    monkeypatch.setattr(_recycle, "MAX_ARRAYS", 3)
    busy = _recycle.empty(BIG, np.float32)
    busy_id = id(busy)
    del busy
    for n in range(6):  # one-off shapes, with the busy buffer handed out again between them
        _recycle.empty((512, 512 + n), np.float32)
        again = _recycle.empty(BIG, np.float32)
        assert id(again) == busy_id
        del again
    assert _recycle._count == 3 and len(_kept(BIG, np.float32)) == 1


def test_a_dropped_array_changed_in_place_is_not_handed_out(outputs_from_1mib):
    a = _recycle.empty(BIG, np.float32)
    a.flags.writeable = False
    del a
    b = _recycle.empty(BIG, np.float32)
    assert b.flags.writeable
    b.shape = (BIG[0] * BIG[1],)  # reshaped in place, then dropped
    del b
    c = _recycle.empty(BIG, np.float32)
    assert c.shape == BIG and c.flags.writeable and c.flags.c_contiguous
    assert _recycle._count == 1  # the two changed arrays were forgotten


def test_only_ours_matches_this_interpreter():
    """The pool's 'nobody else holds it' count is measured on this CPython (3.14 borrows locals)."""
    pairs = [[0, np.empty(3)]]
    assert _recycle._refcount(pairs, 0) == _recycle._ONLY_OURS
    held = pairs[0][1]
    assert _recycle._refcount(pairs, 0) == _recycle._ONLY_OURS + 1
    del held
