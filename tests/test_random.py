"""Counter-based RNG: Random123 known answers, bit-identity across backends, batch-size and
thread-count invariance, the element layout, and statistical sanity."""

import numpy as np
import pytest

from pygenmod import random as R

# Random123 kat_vectors, philox4x32_10: (counter, key, expected)
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


def _dev(backend):
    return "cuda" if backend.name == "cuda" else "cpu"


def test_kat_python_reference():
    for ctr, key, want in KAT:
        assert R.philox4x32_10(ctr, key) == list(want)


def test_kat_kernel(backend):
    ctr = np.array([k[0] for k in KAT], np.uint32)
    key = np.array([k[1] for k in KAT], np.uint32)
    want = np.array([k[2] for k in KAT], np.uint32)
    got = backend.numpy(R.philox_blocks(ctr, key, device=_dev(backend)))
    np.testing.assert_array_equal(got, want)


def test_bits_follow_the_convention(backend):
    # element n of stream s under seed k is word n % 4 of philox((n//4 lo, hi, s lo, s hi), (k lo, k hi))
    seed, stream = 0x1234_5678_9ABC_DEF0, 0xFEDC_BA98_7654_3210 - 5
    got = backend.numpy(R.bits(seed, (3, 10), stream=stream, offset=6, device=_dev(backend)))
    for r in range(3):
        s = stream + r
        for i in range(10):
            n = 6 + i
            blk = n // 4
            w = R.philox4x32_10((blk & 0xFFFFFFFF, blk >> 32, s & 0xFFFFFFFF, s >> 32), (seed & 0xFFFFFFFF, seed >> 32))
            assert got[r, i] == w[n % 4]


def test_uniform_from_bits(backend, dtype):
    dev = _dev(backend)
    b = backend.numpy(R.bits(7, (2, 16), device=dev)).astype(np.uint64)
    u = backend.numpy(R.uniform(7, (2, 8 if dtype == np.float64 else 16), dtype=dtype, device=dev))
    if dtype == np.float32:
        want = ((b >> 8).astype(np.float64) + 0.5) * 2.0**-24
    else:
        hi, lo = b[:, 0::2], b[:, 1::2]
        want = ((((hi << 32) | lo) >> 11).astype(np.float64) + 0.5) * 2.0**-53
    np.testing.assert_array_equal(u, want.astype(dtype))
    assert u.min() > 0 and u.max() < 1


@pytest.mark.parametrize("fn", ["bits", "uniform", "normal", "gumbel"])
def test_same_numbers_on_every_backend(backend, dtype, fn):
    kw = {} if fn == "bits" else {"dtype": dtype}
    shape = (5, 3, 7)
    ref = getattr(R, fn)(99, shape, stream=3, offset=5, **kw)
    got = backend.numpy(getattr(R, fn)(99, shape, stream=3, offset=5, device=_dev(backend), **kw))
    if fn in ("bits", "uniform") or backend.name == "numba":
        # bit-identical on the CPU: float32 transforms without FMA contraction, float64 ones
        # with explicit fused multiply-adds, on both CPU backends
        np.testing.assert_array_equal(got, ref)
    else:  # Box-Muller / Gumbel on CUDA: identical to rounding (nvcc contracts multiply-adds)
        np.testing.assert_allclose(got, ref, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-6)


@pytest.mark.parametrize("fn", ["uniform", "normal", "gumbel"])
def test_row_independent_of_batch_size(backend, dtype, fn):
    dev = _dev(backend)
    big = backend.numpy(getattr(R, fn)(5, (37, 13), dtype=dtype, device=dev))
    for B in (1, 2, 17):
        small = backend.numpy(getattr(R, fn)(5, (B, 13), dtype=dtype, device=dev))
        np.testing.assert_array_equal(small, big[:B])
    one = backend.numpy(getattr(R, fn)(5, (1, 13), stream=20, dtype=dtype, device=dev))
    np.testing.assert_array_equal(one[0], big[20])


def test_offset_continues_a_stream(backend, dtype):
    dev = _dev(backend)
    whole = backend.numpy(R.normal(3, (41,), dtype=dtype, device=dev))
    for off in (1, 2, 3, 5, 8):
        part = backend.numpy(R.normal(3, (41 - off,), offset=off, dtype=dtype, device=dev))
        np.testing.assert_array_equal(part, whole[off:])


@pytest.mark.parametrize("fn", ["uniform", "normal", "gumbel"])
def test_pieces_of_a_long_stream_equal_the_whole(backend, dtype, fn):
    # Long enough for the vectorised transforms' full chunks and their remainders: a piece that
    # starts mid-chunk must give the bits of the whole draw (not within an ulp of them).
    dev, n = _dev(backend), 3 * 64 * 4 + 37
    whole = backend.numpy(getattr(R, fn)(5, (2, n), stream=3, dtype=dtype, device=dev))
    for off in (1, 3, 7, 100, 257, 511):
        part = backend.numpy(getattr(R, fn)(5, (2, n - off), stream=3, offset=off, dtype=dtype, device=dev))
        np.testing.assert_array_equal(part, whole[:, off:])
        head = backend.numpy(getattr(R, fn)(5, (2, off), stream=3, dtype=dtype, device=dev))
        np.testing.assert_array_equal(head, whole[:, :off])


@pytest.mark.parametrize("fn", ["uniform", "normal", "gumbel"])
def test_row_prefix_independent_of_length(backend, dtype, fn):
    # The vectorised transforms' remainder loops (a row's last, partial group of blocks) must
    # give the bits of their vector bodies: the first n numbers of a row do not depend on its length.
    dev = _dev(backend)
    big = backend.numpy(getattr(R, fn)(5, (4, 1024), stream=3, dtype=dtype, device=dev))
    for n in list(range(1, 80)) + [127, 128, 129, 255, 257, 300, 511, 1000]:
        small = backend.numpy(getattr(R, fn)(5, (4, n), stream=3, dtype=dtype, device=dev))
        np.testing.assert_array_equal(small, big[:, :n], err_msg=f"n={n}")


def test_thread_count_invariance(dtype):
    from pygenmod import _backend

    before = _backend.get_num_threads()
    try:
        _backend.set_num_threads(1)
        one = R.normal(11, (64, 100), dtype=dtype)
        _backend.set_num_threads(2)
        two = R.normal(11, (64, 100), dtype=dtype)
    finally:
        _backend.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_statistics_uniform_normal_gumbel(dtype):
    from scipy import stats

    n = 200_000
    u = R.uniform(1, (n,), dtype=dtype).astype(np.float64)
    z = R.normal(2, (n,), dtype=dtype).astype(np.float64)
    g = R.gumbel(3, (n,), dtype=dtype).astype(np.float64)
    se = 5 / np.sqrt(n)
    assert abs(u.mean() - 0.5) < se * np.sqrt(1 / 12) and abs(u.var() - 1 / 12) < 0.002
    assert abs(z.mean()) < se and abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(g.mean() - np.euler_gamma) < se * 1.3 and abs(g.var() - np.pi**2 / 6) < 0.03
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert stats.kstest(g, "gumbel_r").pvalue > 1e-3
    # pairs from one Box-Muller draw (cos and sin branch) are uncorrelated
    assert abs(np.corrcoef(z[0::2], z[1::2])[0, 1]) < 5 / np.sqrt(n / 2)


@pytest.mark.parametrize("alpha", [0.05, 0.3, 1.0, 4.5])
def test_gamma_f64_transform_statistics(alpha):
    # The shared Marsaglia-Tsang transform (random.hpp gamma_f64, numba twin philox.gamma_f64;
    # the C++ one is checked against this twin through MCTS's Dirichlet noise), one variate
    # per stream.
    nb = pytest.importorskip("numba")
    from scipy import stats

    from pygenmod._numba import philox

    @nb.njit(cache=False)
    def draw(alpha, seed, n, out):
        for i in range(n):
            out[i] = philox.gamma_f64(alpha, seed, np.uint64(i))

    n = 40_000
    g = np.empty(n)
    draw(alpha, np.uint64(5), n, g)
    assert (g >= 0).all() and np.isfinite(g).all()
    assert stats.kstest(g, "gamma", args=(alpha,)).pvalue > 1e-3
    assert abs(g.mean() - alpha) < 5 * np.sqrt(alpha / n)


def test_neighbouring_streams_and_seeds_independent():
    B, D = 256, 2000
    z = R.normal(8, (B, D)).astype(np.float64)
    c = np.corrcoef(z)
    off = c[~np.eye(B, dtype=bool)]
    assert np.abs(off).max() < 6 / np.sqrt(D)
    # adjacent streams: the correlation of the pooled neighbouring pairs is ~ 0
    r = (z[:-1] * z[1:]).mean()
    assert abs(r) < 5 / np.sqrt((B - 1) * D)
    a, b = R.normal(1, (50_000,)), R.normal(2, (50_000,))
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(50_000)
    # uniform bits: each bit position is fair
    bits = R.bits(4, (64, 1024)).ravel()
    ones = np.array([(bits >> k) & 1 for k in range(32)]).mean(1)
    assert np.abs(ones - 0.5).max() < 5 * 0.5 / np.sqrt(bits.size)


def test_normal_tails_finite(dtype):
    z = R.normal(0, (1_000_000,), dtype=dtype)
    assert np.isfinite(z).all() and np.abs(z).max() < 9


def test_shapes_and_bad_input():
    assert R.normal(0, ()).shape == ()
    assert R.normal(0, 5).shape == (5,)
    assert R.normal(0, (0, 3)).shape == (0, 3)
    assert R.normal(0, (2, 3, 4)).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="seed"):
        R.normal(-1, (3,))
    with pytest.raises(TypeError, match="seed"):
        R.normal(1.5, (3,))
    with pytest.raises(ValueError, match="seed"):
        R.normal(2**64, (3,))
    with pytest.raises(ValueError, match="shape"):
        R.normal(0, (-1,))
    with pytest.raises(TypeError, match="dtype"):
        R.normal(0, (3,), dtype=np.int32)
    with pytest.raises(ValueError, match="device"):
        R.normal(0, (3,), device="tpu")
    with pytest.raises(ValueError, match="stream"):
        R.normal(0, (3,), stream=-2)


def test_uniform_stays_below_one_at_the_top_word():
    # (2**b - 1/2) 2**-b rounds to exactly 1 in float32 (b=24) and float64 (b=53); capped below 1
    # (a float32 Gumbel draw was +inf for 1 word in 2**24). Numba's transforms; C++: tests/cpp.
    from pygenmod._numba import philox

    assert np.float32(philox.uniform_f32(0xFFFFFFFF)) < 1
    assert philox.uniform_f64(0xFFFFFFFF, 0xFFFFFFFF) < 1
    assert philox.uniform_f32(0xFFFFFEFF) == np.float32((2**24 - 2 + 0.5) * 2.0**-24)
    assert philox.uniform_f32(0) > 0 and philox.uniform_f64(0, 0) > 0
