"""Reliability (issue 18): the random generator and the samplers at the edges of their integer
arguments -- Philox counters past 2**53 / 2**63 / 2**64, counts too large for any kernel, shapes
that are not integers, empty category axes. Every backend (cuda skips with the reason)."""

import numpy as np
import pytest

from pygenmod import gmm, sampling
from pygenmod import random as R

pytestmark = pytest.mark.reliability

OFFSETS = [2**53 + 1, 2**63 - 2, 2**63 + 5, 2**64 - 3, 2**64 - 1]
STREAMS = [0, 2**53 + 1, 2**64 - 1]


def _dev(backend):
    return "cuda" if backend.name == "cuda" else "cpu"


def _words(seed, stream, n):
    """Word n of a stream, the documented layout with n unbounded (word n % 4 of block n // 4);
    the Python Philox reference, independent of every backend."""
    blk = n // 4
    key = (seed & 0xFFFFFFFF, seed >> 32)
    ctr = (blk & 0xFFFFFFFF, (blk >> 32) & 0xFFFFFFFF, stream & 0xFFFFFFFF, stream >> 32)
    return R.philox4x32_10(ctr, key)[n % 4]


def _ref_bits(seed, stream, offset, R_, N):
    return np.array([[_words(seed, (stream + r) % 2**64, offset + i) for i in range(N)] for r in range(R_)], np.uint32)


def _ref_uniform(seed, stream, offset, R_, N, dtype):
    out = np.empty((R_, N), dtype)
    for r in range(R_):
        st = (stream + r) % 2**64
        for i in range(N):
            n = offset + i
            if dtype == np.float32:
                out[r, i] = np.float32(((_words(seed, st, n) >> 8) + 0.5) * 2.0**-24)
            else:  # words (2k, 2k + 1), k = n % 2, of block n // 2
                blk, k = n // 2, n % 2
                hi, lo = _words(seed, st, 4 * blk + 2 * k), _words(seed, st, 4 * blk + 2 * k + 1)
                out[r, i] = ((((hi << 32) | lo) >> 11) + 0.5) * 2.0**-53
    return out


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("stream", STREAMS)
def test_bits_past_2_63_and_2_64_follow_the_layout(backend, offset, stream):
    got = backend.numpy(R.bits(7, (2, 6), stream=stream, offset=offset, device=_dev(backend)))
    np.testing.assert_array_equal(got, _ref_bits(7, stream, offset, 2, 6))


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("stream", STREAMS)
def test_uniform_big_counters_bit_identical_to_reference(backend, dtype, offset, stream):
    got = backend.numpy(R.uniform(11, (2, 5), stream=stream, offset=offset, dtype=dtype, device=_dev(backend)))
    np.testing.assert_array_equal(got, _ref_uniform(11, stream, offset, 2, 5, dtype))


@pytest.mark.parametrize("fn", ["normal", "gumbel"])
@pytest.mark.parametrize("offset", OFFSETS)
def test_normal_gumbel_big_counters_match_cpu(backend, dtype, fn, offset):
    stream = 2**64 - 2
    ref = getattr(R, fn)(5, (3, 7), stream=stream, offset=offset, dtype=dtype)  # cpu: the documented layout
    got = backend.numpy(getattr(R, fn)(5, (3, 7), stream=stream, offset=offset, dtype=dtype, device=_dev(backend)))
    np.testing.assert_allclose(got, ref, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-6)
    # and the uniforms behind them are the reference's: gumbel = -log(-log u) in float64
    if fn == "gumbel" and dtype == np.float64:
        u = _ref_uniform(5, stream, offset, 3, 7, np.float64)
        np.testing.assert_allclose(got, -np.log(-np.log(u)), rtol=1e-12)


def test_sampler_noise_at_big_offsets_is_the_generator_stream(backend, dtype):
    """rsample_normal with std 1 and mu 0 returns the noise: row b is elements
    [offset, offset + D) of stream `stream + b`, also when those cross 2**64."""
    B, D, off, st = 3, 5, 2**64 - 3, 2**63 + 7
    z = backend.numpy(
        sampling.rsample_normal(
            backend.asarray(np.zeros((B, D), dtype)),
            std=backend.asarray(np.ones((B, D), dtype)),
            seed=4,
            stream=st,
            offset=off,
        )
    )
    ref = R.normal(4, (B, D), stream=st, offset=off, dtype=dtype)
    np.testing.assert_allclose(z, ref, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-6)


def test_gmm_sample_big_stream_matches_cpu(backend):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 40, 2))
    p = gmm.fit(X, 2, max_iter=5, warn=False).params
    ref = gmm.sample(p, 6, seed=1, stream=2**60 - 1)[0]
    pb = gmm.GMMParams(*(backend.asarray(a) for a in p[:4]), p.covariance_type)
    got = backend.numpy(gmm.sample(pb, 6, seed=1, stream=2**60 - 1)[0])
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------- integer arguments (items 15, 19)
@pytest.mark.parametrize("n", [2**63, 2**64])
def test_sampler_n_samples_beyond_int64_names_the_argument(backend, n):
    mu = backend.asarray(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="n_samples"):
        sampling.rsample_normal(mu, mu, n_samples=n)


def test_sampler_n_samples_too_large_to_allocate_names_the_argument(backend):
    mu = backend.asarray(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="n_samples: too large"):
        sampling.rsample_normal(mu, mu, n_samples=2**62)


@pytest.mark.parametrize("fn", ["bits", "uniform", "normal"])
def test_random_shape_too_large_names_the_argument(backend, fn):
    with pytest.raises(ValueError, match="shape: too large"):
        getattr(R, fn)(0, (2**62, 8), device=_dev(backend))


@pytest.mark.parametrize("shape", [(2.7,), 2.7, (3, 1.0), (True,), ("2",), (np.float64(2.0),)])
def test_random_shape_must_be_integers(backend, shape):
    with pytest.raises(TypeError, match="shape"):
        R.bits(0, shape, device=_dev(backend))


def test_random_shape_accepts_numpy_integers(backend):
    got = R.uniform(0, (np.int64(2), np.uint8(3)), device=_dev(backend))
    assert got.shape == (2, 3)


@pytest.mark.parametrize("name", ["seed", "stream", "offset"])
@pytest.mark.parametrize("value", [-1, 2**64])
def test_random_counters_out_of_range_named(backend, name, value):
    with pytest.raises(ValueError, match=name):
        R.uniform(**{"seed": 0, name: value}, shape=(2,), device=_dev(backend))


def test_gmm_sample_n_samples_beyond_int64(backend):
    p = gmm.fit(np.random.default_rng(0).standard_normal((30, 2)), 2, warn=False).params
    for n in (2**63, 2**62):
        with pytest.raises(ValueError, match="n_samples"):
            gmm.sample(p, n)


# ----------------------------------------------------------------- empty category axis (item 16)
def test_gumbel_softmax_without_categories_names_logits(backend):
    with pytest.raises(ValueError, match="logits: the last axis"):
        sampling.gumbel_softmax(backend.asarray(np.zeros((3, 0))))


def test_gumbel_softmax_zero_rows(backend, dtype):
    r = sampling.gumbel_softmax(backend.asarray(np.zeros((0, 4), dtype)))
    assert r.y.shape == (0, 4) and r.index.shape == (0,)
