"""Array interop: NumPy and CuPy natively, anything else that speaks DLPack zero-copy.

Public functions convert their inputs with :func:`to_native` and convert results back
to the caller's array type with the function :func:`returner` gives for the principal input.
PyTorch is never imported unless the caller passed a tensor.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from . import _recycle

_DLPACK_CPU, _DLPACK_CUDA = 1, 2


def _is_cupy(x) -> bool:
    cp = sys.modules.get("cupy")
    return cp is not None and isinstance(x, cp.ndarray)


def is_device(x) -> bool:
    """True for arrays that live on a CUDA device."""
    return _is_cupy(x) or hasattr(x, "__cuda_array_interface__")


def xp_of(x):
    """The array module (numpy or cupy) that owns a native array."""
    if _is_cupy(x):
        return sys.modules["cupy"]
    return np


def new_output(xp, shape: tuple, dtype):
    """An uninitialised C-contiguous output that the kernel writes entirely: a host one from
    pygenmod._recycle (a large output that nothing references any more is handed out again
    instead of fresh pages), a device one from xp. (The size test first: a tiny call pays
    ~0.1 us for it, not the pool's ~0.5 us.)"""
    if xp is np and math.prod(shape) * 8 >= _recycle.OUTPUT_MIN_BYTES:  # (8: the widest output dtype)
        return _recycle.empty(shape, dtype)
    return xp.empty(shape, dtype)


def output_like(a):
    """new_output of a's shape and dtype, in a's array module."""
    if type(a) is np.ndarray:
        return _recycle.empty(a.shape, a.dtype) if a.nbytes >= _recycle.OUTPUT_MIN_BYTES else np.empty(a.shape, a.dtype)
    return xp_of(a).empty(a.shape, a.dtype)


def to_native(x, name: str = "array"):
    """A NumPy or CuPy view of ``x``: zero-copy for DLPack producers, np.asarray otherwise.
    ``name`` (the argument) is named in the errors."""
    if isinstance(x, np.ndarray) or _is_cupy(x):
        return x
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        x = _torch_tensor(x, name)
        if getattr(x, "is_cpu", False):
            try:
                return x.numpy()  # the view DLPack gives, without its capsule (~1 us instead of ~7)
            except (TypeError, RuntimeError):  # a dtype NumPy lacks, a lazy conjugate: DLPack's path and errors
                pass
    if hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__"):
        dev_type = int(x.__dlpack_device__()[0])
        if dev_type == _DLPACK_CPU:
            return np.from_dlpack(x)
        if dev_type == _DLPACK_CUDA:
            import cupy

            return cupy.from_dlpack(x)
        raise TypeError(f"{name}: unsupported DLPack device type {dev_type} for {type(x).__name__}")
    if hasattr(x, "__cuda_array_interface__"):
        import cupy

        return cupy.asarray(x)
    return np.asarray(x)


def _torch_tensor(t, name):
    """A torch tensor ready for DLPack: detached; bfloat16 (no DLPack/NumPy dtype) widened to
    float32 as pygenmod.torch does without ml_dtypes; tensors without data (meta) rejected."""
    if not hasattr(t, "device") or not hasattr(t, "dtype"):
        return t
    if not (getattr(t, "is_cpu", False) or getattr(t, "is_cuda", False)):
        raise TypeError(
            f"{name}: expected a CPU or CUDA tensor, got one on device {t.device.type!r}"
            + (" (a meta tensor has no data)" if t.device.type == "meta" else "")
        )
    if getattr(t, "requires_grad", False):
        t = t.detach()
    if str(t.dtype) == "torch.bfloat16":
        t = t.float()
    return t


def _same(a):
    return a


def _to_torch(a):
    import torch

    if a is None or isinstance(a, (int, float)):
        return a
    if type(a) is np.ndarray and a.flags.c_contiguous and a.flags.writeable and a.dtype.kind in "fiub":
        return torch.from_numpy(a)  # zero-copy like DLPack, ~0.7 us instead of ~2
    return torch.from_dlpack(a)


def _to_jax(a):
    import jax.numpy as jnp

    return a if a is None or isinstance(a, (int, float)) else jnp.from_dlpack(a)


def returner(x):
    """A function that turns a NumPy/CuPy result into the array type of input ``x``.

    (Module-level functions, not lambdas: results that keep one, e.g. an MCTS ``Tree``,
    must pickle.)"""
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        return _to_torch
    if mod in ("jax", "jaxlib"):
        return _to_jax
    return _same


def broadcast_contiguous(xp, a, shape):
    """``a`` broadcast to ``shape`` as a C-contiguous array: ``a`` itself, reshaped, where the
    broadcast adds no entries, else a copy. Never NumPy's read-only broadcast view: a kernel
    argument then keeps its caller's write flag whatever the shapes, and numba, whose argument
    types include the flag, compiles one variant instead of two."""
    v = xp.broadcast_to(a, shape)
    if v.size == a.size:
        return xp.ascontiguousarray(a.reshape(v.shape))
    return xp.ascontiguousarray(v)
