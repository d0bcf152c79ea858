"""The package's randomness rule (pygenmod._seed): seed=None draws fresh keys from an advancing,
seedable package generator; an explicit seed is stateless and reproducible; every random
function follows it, on every CPU backend."""

import os
import warnings

import numpy as np
import pytest

import pygenmod
from pygenmod import _backend, cem, gmm, mcts, random, sampling


@pytest.fixture(params=["cpu", "numba"])
def cpu_backend(request):
    """The host backends (the rule is implemented in Python, above every backend)."""
    ok, why = _backend._probe(request.param)
    if not ok:
        pytest.skip(f"backend {request.param!r} unavailable: {why}")
    return request.param


MU = np.linspace(-1, 1, 24).reshape(4, 6)
LV = np.full((4, 6), -0.5)


def _model():
    rng = np.random.default_rng(0)
    S, A = 16, 4
    return mcts.tabular_model(
        rng.integers(0, S, (S, A)), rng.standard_normal((S, A)), np.zeros((S, A)), np.zeros(S), discount=0.9
    )


# name -> a call whose result is random under the given seed keyword
RANDOM_CALLS = {
    "rsample_normal": lambda **k: sampling.rsample_normal(MU, LV, **k),
    "normal_head.kl_unchanged_z": lambda **k: sampling.normal_head(MU, LV, **k).z,
    "rsample_mvn": lambda **k: sampling.rsample_mvn(MU, np.eye(6), **k),
    "gumbel_softmax": lambda **k: sampling.gumbel_softmax(MU, 0.5, **k).y,
    "random.normal": lambda **k: random.normal(shape=(3, 5), **k),
    "random.uniform": lambda **k: random.uniform(shape=(7,), **k),
    "random.bits": lambda **k: random.bits(shape=(2, 4), **k),
    "gmm.sample": lambda **k: gmm.sample(
        gmm.GMMParams(
            np.array([0.5, 0.5]), np.zeros((2, 2)), np.stack([np.eye(2)] * 2), np.stack([np.eye(2)] * 2), "full"
        ),
        5,
        **k,
    )[0],
    "muzero_policy": lambda **k: (
        mcts.muzero_policy(np.arange(3), _model(), 8, dirichlet_fraction=0.5, **k).action_weights
    ),
    "gumbel_muzero_policy": lambda **k: mcts.gumbel_muzero_policy(np.arange(16), _model(), 8, **k).action,
    "cem_optimize": lambda **k: (
        cem.cem_optimize(
            lambda X: -(X**2).sum(-1), np.ones((2, 3)), np.ones((2, 3)), n_samples=16, n_elite=4, n_iter=2, **k
        ).mean
    ),
    "gmm.fit(init=random)": lambda **k: (
        gmm.fit(
            np.random.default_rng(1).normal(size=(2, 40, 2)), 3, init="random", max_iter=2, warn=False, **k
        ).params.means
    ),
}


def _same(a, b):
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)


@pytest.mark.parametrize("name", sorted(RANDOM_CALLS))
def test_two_default_calls_differ(name, cpu_backend):
    f = RANDOM_CALLS[name]
    with pygenmod.use_backend(cpu_backend):
        assert not _same(f(), f()), f"{name}: two seed=None calls returned the same draws"


@pytest.mark.parametrize("name", sorted(RANDOM_CALLS))
def test_manual_seed_reproduces_a_sequence(name, cpu_backend):
    f = RANDOM_CALLS[name]
    with pygenmod.use_backend(cpu_backend):
        pygenmod.manual_seed(1234)
        first = [f(), f()]
        pygenmod.manual_seed(1234)
        again = [f(), f()]
    assert _same(first[0], again[0]) and _same(first[1], again[1])
    assert not _same(first[0], first[1])


@pytest.mark.parametrize("name", sorted(RANDOM_CALLS))
def test_explicit_seed_ignores_package_state(name, cpu_backend):
    f = RANDOM_CALLS[name]
    with pygenmod.use_backend(cpu_backend):
        pygenmod.manual_seed(1)
        a = f(seed=77)
        f()  # advances the package generator
        pygenmod.manual_seed(99)
        b = f(seed=77)
    assert _same(a, b)


def test_get_and_set_state_replay():
    pygenmod.manual_seed(5)
    sampling.rsample_normal(MU, LV)
    st = pygenmod.get_rng_state()
    a = sampling.rsample_normal(MU, LV)
    sampling.rsample_normal(MU, LV)
    pygenmod.set_rng_state(st)
    assert _same(sampling.rsample_normal(MU, LV), a)
    assert random.get_state() == pygenmod.get_rng_state()


def _kth_key(key, k):
    """The documented derivation of the k-th default key, in Python integers (pygenmod._seed)."""
    mask, golden = 2**64 - 1, 0x9E3779B97F4A7C15
    z = (key + k * golden + golden) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


@pytest.mark.parametrize("key, counter", [(5, 0), (2**64 - 1, 2**64 - 70), (123456789, 63), (0, 1)])
def test_default_keys_follow_the_formula_across_blocks_and_the_wrap(key, counter):
    # the generator derives keys in blocks (_seed._PackageGenerator): the sequence, and the
    # counter that get_state reports between any two calls, are the per-call formula's
    gen = pygenmod._seed._GENERATOR
    saved = gen.get_state()
    try:
        gen.set_state({"key": key, "counter": counter})
        for i in range(150):
            assert gen.get_state() == {"key": key, "counter": (counter + i) % 2**64}
            assert gen.next_key() == _kth_key(key, (counter + i) % 2**64)
    finally:
        gen.set_state(saved)


def test_default_keys_are_distinct_across_threads():
    import threading

    gen = pygenmod._seed._GENERATOR
    saved = gen.get_state()
    got, n_threads, per_thread = [], 4, 500
    try:
        gen.set_state({"key": 77, "counter": 10})
        barrier = threading.Barrier(n_threads)

        def work():
            barrier.wait()
            got.extend([gen.next_key() for _ in range(per_thread)])

        threads = [threading.Thread(target=work) for _ in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = n_threads * per_thread
        assert sorted(got) == sorted(_kth_key(77, 10 + i) for i in range(total))
        assert gen.get_state() == {"key": 77, "counter": 10 + total}
    finally:
        gen.set_state(saved)


@pytest.mark.parametrize("bad", [None, {"key": 1}, {"key": -1, "counter": 0}, {"key": 1.5, "counter": 0}])
def test_set_state_rejects_bad_state(bad):
    with pytest.raises((TypeError, ValueError), match="state"):
        pygenmod.set_rng_state(bad)


@pytest.mark.parametrize(
    "bad, exc", [(-1, ValueError), (2**64, ValueError), (1.5, TypeError), ("3", TypeError), (True, TypeError)]
)
def test_bad_seeds_name_the_argument(bad, exc):
    with pytest.raises(exc, match="seed"):
        sampling.rsample_normal(MU, LV, seed=bad)
    with pytest.raises(exc, match="seed"):
        pygenmod.manual_seed(bad)


def test_numpy_generator_seed_is_reproducible_and_advances():
    a = sampling.rsample_normal(MU, LV, seed=np.random.default_rng(3))
    b = sampling.rsample_normal(MU, LV, seed=np.random.default_rng(3))
    assert _same(a, b)
    g = np.random.default_rng(3)
    assert not _same(sampling.rsample_normal(MU, LV, seed=g), sampling.rsample_normal(MU, LV, seed=g))


def test_jax_key_seed():
    jax = pytest.importorskip("jax")
    k = jax.random.PRNGKey(42)
    a = np.asarray(random.normal(k, (4,)))
    assert _same(a, random.normal(jax.random.PRNGKey(42), (4,)))
    assert not _same(a, random.normal(jax.random.PRNGKey(43), (4,)))
    words = np.asarray(jax.random.key_data(k))
    assert _same(a, random.normal(int(words[0]) << 32 | int(words[1]), (4,)))
    assert _same(a, random.normal(jax.random.key(42), (4,)))  # typed key, same words


def test_backward_needs_the_forwards_seed():
    gz = np.ones_like(MU)
    with pytest.raises(TypeError, match="seed"):
        sampling.rsample_normal_backward(MU, LV, grad_z=gz)
    with pytest.raises(TypeError, match="seed"):
        sampling.mvn_head_backward(MU, np.eye(6), grad_z=gz)
    z, eps = sampling.rsample_normal(MU, LV, return_eps=True)  # fresh noise: backward through eps
    gmu, glv = sampling.rsample_normal_backward(MU, LV, grad_z=gz, eps=eps)
    assert _same(gmu, gz) and np.allclose(glv, 0.5 * np.exp(0.5 * LV) * eps)


def test_torch_default_seed_uses_one_key_for_forward_and_backward():
    torch = pytest.importorskip("torch")
    import pygenmod.torch as pt

    mu = torch.tensor(MU, requires_grad=True)
    lv = torch.tensor(LV, requires_grad=True)
    z1 = pt.rsample_normal(mu, lv)
    z2 = pt.rsample_normal(mu, lv)
    assert not torch.equal(z1, z2)
    z1.sum().backward()
    eps = (z1.detach() - mu.detach()) / torch.exp(0.5 * lv.detach())
    torch.testing.assert_close(lv.grad, 0.5 * torch.exp(0.5 * lv.detach()) * eps)


_FORK_CHILD = """
import os, numpy as np, pygenmod
from pygenmod import random
pygenmod.manual_seed(7)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(w, random.bits(shape=(4,)).tobytes()); os._exit(0)
os.close(w)
child = np.frombuffer(os.read(r, 16), np.uint32)
os.waitpid(pid, 0)
print("SAME" if np.array_equal(child, random.bits(shape=(4,))) else "DIFFERENT")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_gets_fresh_draws():
    # in a fresh interpreter: forking this multi-threaded test process is unsafe
    from conftest import run_python

    out = run_python(["-c", _FORK_CHILD], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "DIFFERENT"


# ---- gmm: the functional API spells it seed=, initialisations keyed per set and run
def test_gmm_fit_random_state_is_a_deprecated_alias():
    X = np.random.default_rng(0).normal(size=(3, 30, 2))
    new = gmm.fit(X, 2, seed=11, warn=False)
    with pytest.warns(DeprecationWarning, match="seed"):
        old = gmm.fit(X, 2, random_state=11, warn=False)
    assert _same(new.params.means, old.params.means)
    with pytest.raises(TypeError, match="not both"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        gmm.fit(X, 2, seed=1, random_state=1)


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random_from_data", "random"])
def test_gmm_set_result_does_not_depend_on_batch_size(init, cpu_backend):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 50, 2)) + rng.integers(0, 3, (40, 50, 1)) * 2.0
    with pygenmod.use_backend(cpu_backend):
        big = gmm.fit(X, 3, n_init=3, init=init, seed=5, max_iter=20, warn=False)
        small = gmm.fit(X[:8], 3, n_init=3, init=init, seed=5, max_iter=20, warn=False)
        one = gmm.fit(X[5], 3, n_init=3, init=init, seed=5, stream=5, max_iter=20, warn=False)
        tail = gmm.fit(X[30:], 3, n_init=3, init=init, seed=5, stream=30, max_iter=20, warn=False)
    assert _same(big.params.means[:8], small.params.means)
    assert _same(big.params.means[5], one.params.means)
    assert _same(big.params.means[30:], tail.params.means)


@pytest.mark.parametrize("init", ["k-means++", "random_from_data", "random"])
def test_gmm_run_zero_draws_what_n_init_one_draws(init, cpu_backend):
    from pygenmod.gmm import _init_resp

    rng = np.random.default_rng(3)
    X = np.ascontiguousarray(rng.normal(size=(5, 30, 2)))
    W = np.ones((5, 30))
    with pygenmod.use_backend(cpu_backend):
        r3 = np.asarray(_init_resp(X, W, 3, init, 3, 9))  # row s = b * n_rep + r
        r1 = np.asarray(_init_resp(X, W, 3, init, 1, 9))
    assert _same(r3[0::3], r1)
    assert not _same(r3[1::3], r1)
