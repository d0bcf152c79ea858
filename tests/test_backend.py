"""Backend selection, dispatch, thread control, DLPack interop and the shared validation."""

import os

import numpy as np
import pytest
from conftest import run_python

import pygenmod
from pygenmod import _backend
from pygenmod import _validate as val
from pygenmod._dispatch import get_kernel


def test_backends_report_every_backend_with_a_reason():
    b = pygenmod.backends()
    assert set(b) == {"cpu", "numba", "cuda"}
    for info in b.values():
        assert isinstance(info["available"], bool) and info["reason"]


def test_default_backend_is_cpu_when_compiled():
    if os.environ.get("CI"):  # in CI the extension must have been built
        assert _backend.is_available("cpu"), _backend._probe("cpu")[1]
    if not _backend.is_available("cpu"):
        pytest.skip("compiled extension unavailable: " + _backend._probe("cpu")[1])
    assert _backend.choose(on_device=False) == "cpu"


def test_override_context_and_env(monkeypatch):
    with pygenmod.use_backend("numba"):
        assert _backend.choose(False) == "numba"
    monkeypatch.setenv("PYGENMOD_BACKEND", "numba")
    assert _backend.choose(False) == "numba"
    with pygenmod.use_backend("cpu"):
        assert _backend.requested_backend() == "cpu"
    monkeypatch.setenv("PYGENMOD_BACKEND", "bogus")
    with pytest.raises(ValueError, match="backend must be one of"):
        _backend.choose(False)


def test_forcing_cuda_with_host_arrays_is_an_error():
    with pygenmod.use_backend("cuda"), pytest.raises(pygenmod.BackendError, match="CuPy"):
        _backend.choose(False)


def test_unknown_backend_name_rejected():
    with pytest.raises(ValueError):
        pygenmod.set_backend("tpu")


def test_missing_kernel_is_a_clear_error():
    with pytest.raises(pygenmod.BackendError, match="not implemented|no 'nosuchfamily'"):
        get_kernel("nosuchfamily", "f", "numba")


def test_set_num_threads_roundtrip():
    n0 = pygenmod.get_num_threads()
    pygenmod.set_num_threads(1)
    try:
        if _backend.is_available("cpu"):
            assert pygenmod.get_num_threads() == 1
    finally:
        pygenmod.set_num_threads(n0)
    with pytest.raises(ValueError):
        pygenmod.set_num_threads(0)


def test_import_is_fast_and_does_not_import_numba():
    code = (
        "import time,sys; t=time.perf_counter(); import pygenmod, pygenmod.mdp; "
        "print(time.perf_counter()-t, 'numba' in sys.modules)"
    )
    out = run_python(["-c", code], capture_output=True, text=True, check=True)
    seconds, numba_loaded = out.stdout.split()
    assert numba_loaded == "False"
    assert float(seconds) < 1.0


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize("bad", [np.arange(4), np.ones(4, bool), np.ones(4, complex), np.ones(4, np.float16)])
def test_float_array_rejects_non_float_arrays(bad):
    with pytest.raises(TypeError, match="x: expected a float32 or float64 array"):
        val.float_array(bad, "x")


def test_float_array_accepts_lists_and_copies_noncontiguous():
    assert val.float_array([1, 2], "x").dtype == np.float64
    a = np.ones((4, 4))[:, ::2]
    b = val.float_array(a, "x")
    assert b.flags.c_contiguous and np.array_equal(a, b)


@pytest.mark.parametrize("v", [np.nan, np.inf])
def test_float_array_rejects_nonfinite(v):
    with pytest.raises(ValueError, match="x: contains NaN"):
        val.float_array(np.array([1.0, v]), "x")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 5, 4096, 2**14, 2**14 + 1])
@pytest.mark.parametrize("where", [0, -1, None])
@pytest.mark.parametrize("v", [np.nan, np.inf, -np.inf])
def test_finite_scan_compiled_and_numpy_agree(dtype, n, where, v):
    """The compiled scan (small C-contiguous arrays) and NumPy's test (the rest) give the same
    answer: strided, big-endian and large arrays take NumPy's; huge finite values are not inf."""
    a = np.full(n, np.finfo(dtype).max, dtype)
    a[::2] = -np.finfo(dtype).max
    if where is not None:
        a[where] = v
    want = where is None
    for arr in (a, a[::-1], a.astype(a.dtype.newbyteorder(">")), a.reshape(1, n)):
        assert val._all_finite(arr) is want
        assert bool(np.isfinite(arr).all()) is want
    if n <= 2**14:
        from pygenmod import _cpu_runtime

        assert _cpu_runtime.all_finite(a) is want
    else:
        from pygenmod import _cpu_runtime

        assert _cpu_runtime.all_finite(a) is None  # above the compiled scan's size: NumPy's


def test_per_batch_bounds_and_shape():
    assert val.per_batch(0.5, "g", 3, np.float64).shape == (3,)
    with pytest.raises(ValueError, match="g: must be < 1"):
        val.per_batch(1.0, "g", 3, np.float64, lo=0, hi=1, hi_closed=False)
    with pytest.raises(ValueError, match=r"g: expected a scalar or shape \(3,\)"):
        val.per_batch(np.ones(2), "g", 3, np.float64)


def test_check_shape_message():
    with pytest.raises(ValueError, match=r"R: expected shape \(\*, 3\), got \(2, 4\)"):
        val.check_shape(np.ones((2, 4)), "R", (None, 3))


# ---------------------------------------------------------------------- DLPack interop
def test_torch_cpu_tensors_zero_copy_and_returned_as_tensors():
    torch = pytest.importorskip("torch")
    from pygenmod import mdp

    rng = np.random.default_rng(0)
    P = rng.random((3, 2, 3))
    P /= P.sum(-1, keepdims=True)
    Pt = torch.from_numpy(P).requires_grad_(True)
    out = mdp.bellman_backup(Pt, torch.zeros(3, 2, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), 0.9)
    assert isinstance(out.V, torch.Tensor) and out.V.dtype == torch.float64
    from pygenmod._arrays import to_native

    assert np.shares_memory(to_native(Pt), P)
