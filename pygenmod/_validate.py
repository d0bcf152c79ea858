"""The shared validation layer: every public function checks its arguments here.

Errors name the argument and say what was expected. Conventions (documented in the README):
- floating inputs must be float32 or float64; integer, bool and complex arrays are
  rejected (Python lists/scalars are converted to float64); kernels that widen half precision
  themselves opt in to float16 / bfloat16 (ml_dtypes) with ``allow_half=True``;
- the principal argument fixes the dtype of a call; other float arguments are cast to it;
- non-contiguous inputs are copied to C order (outputs are always C-contiguous);
- NaN/inf are rejected wherever they would make the result meaningless.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from ._arrays import to_native, xp_of
from ._seed import check_int_seed

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
HALF_DTYPE = np.dtype(np.float16)


def is_half(dtype) -> bool:
    """float16, or bfloat16 (ml_dtypes' NumPy dtype, as JAX uses)."""
    dtype = np.dtype(dtype)
    return dtype == HALF_DTYPE or (dtype.itemsize == 2 and dtype.name == "bfloat16")


def float_dtype(value, name: str = "dtype") -> np.dtype:
    """``value`` as a NumPy dtype that must be float32 or float64 (TypeError otherwise)."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"{name}: expected float32 or float64, got {value!r}") from None
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32 or float64, got {dtype}")
    return dtype


def compute_dtype(dtype):
    """The dtype a kernel computes and returns in for input ``dtype`` (half precision -> float32)."""
    return np.dtype(np.float32) if is_half(dtype) else np.dtype(dtype)


def _shape_str(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def float_array(x, name: str, *, ndim=None, dtype=None, finite: bool = True, xp=None, allow_half: bool = False):
    """``x`` as a C-contiguous float32/float64 NumPy or CuPy array.

    ndim: an int or a tuple of allowed ranks. dtype: cast to this float dtype
    (used for secondary arguments); None keeps x's own float dtype. allow_half: also accept
    float16 and ml_dtypes' bfloat16 (for kernels that load half precision and accumulate
    in float32).
    finite=False skips the NaN/inf scan (for kernels that detect non-finite input themselves).
    """
    if type(x) is np.ndarray and (xp is None or xp is np) and x.dtype.char in "fd" and x.dtype.isnative:
        # Fast path for the common case (a native float32/float64 NumPy array): the per-call
        # cost of tiny problems is mostly this layer (issue 11), so skip the generic conversions.
        a = x if dtype is None or x.dtype == dtype else x.astype(dtype)
    else:
        a = _generic_float_array(x, name, dtype, xp, allow_half)
    if ndim is not None and a.ndim != ndim:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if a.ndim not in allowed:
            want = " or ".join(str(n) for n in allowed)
            raise ValueError(f"{name}: expected {want} dimensions, got shape {_shape_str(a.shape)}")
    if finite and a.size and not _all_finite(a):
        raise ValueError(f"{name}: contains NaN or infinity")
    return _c_order(a)


def _generic_float_array(x, name, dtype, xp, allow_half):
    """float_array's conversions for anything but a native float32/float64 NumPy array."""
    if x is None:
        raise TypeError(f"{name}: expected an array, got None")
    was_array = hasattr(x, "dtype")
    a = _native_order(to_native(x, name))
    if xp is not None and xp_of(a) is not xp:
        a = xp.asarray(a)
    kind = a.dtype.kind
    if kind == "f" and a.dtype.itemsize in (4, 8):
        pass
    elif allow_half and is_half(a.dtype):
        pass
    elif not was_array and kind in "iub":
        a = a.astype(np.float64)
    else:
        want = "float16, bfloat16, float32 or float64" if allow_half else "float32 or float64"
        raise TypeError(f"{name}: expected a {want} array, got dtype {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        a = a.astype(dtype)
    return a


def _native_order(a):
    """``a`` in native byte order (big-endian '>f8' input is converted; the kernels read native)."""
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


def _c_order(a):
    # np.ascontiguousarray would turn a 0-d array into 1-d: copy only when needed.
    return a if a.flags.c_contiguous else xp_of(a).ascontiguousarray(a)


#: Default of a deprecated keyword argument: tells "not given" apart from None.
DEPRECATED = object()


def renamed(new_value, old_value, new: str, old: str, *, func: str, default=None):
    """The value of a keyword argument renamed from ``old`` to ``new``: the old spelling keeps
    working for one release, with a DeprecationWarning (docs/conventions.md lists them).
    ``default`` is the new argument's default (giving both spellings is a TypeError)."""
    if old_value is DEPRECATED:
        return new_value
    warnings.warn(f"{func}({old}=...) is deprecated; use {new}=...", DeprecationWarning, stacklevel=3)
    at_default = new_value is default or (
        type(new_value) is type(default) and isinstance(default, (int, float, str)) and new_value == default
    )
    if not at_default:
        raise TypeError(f"{func}: give {new} or its deprecated spelling {old}, not both")
    return old_value


#: An explicit integer seed / stream / offset in [0, 2**64) (one check: pygenmod._seed).
seed_int = check_int_seed


def _load_scan():
    """pygenmod._cpu_runtime.all_finite (True/False for a small C-contiguous float32/64 NumPy
    array, None for any other), or a stand-in that answers None without the extension."""
    global _scan
    try:
        from ._cpu_runtime import all_finite as _scan
    except ImportError:  # pragma: no cover - a build without the CPU extension
        _scan = _no_scan
    return _scan


def _no_scan(a):
    return None


#: The compiled scan once loaded: ~0.1 us where NumPy's sum costs ~1 us on a small array.
_scan = None


def _all_finite(a) -> bool:
    """True if no NaN/inf: the compiled scan for small C-contiguous float arrays; otherwise one
    sum (NaN and inf propagate; no temporary array), and the exact elementwise test only when the
    sum is not finite (NaN/inf, or an overflow of finite values)."""
    xp = xp_of(a)
    if xp is np:
        ok = (_scan or _load_scan())(a) if type(a) is np.ndarray else None  # (a subclass: its own sum)
        if ok is not None:
            return ok
        with np.errstate(over="ignore", invalid="ignore"):  # a sum of huge finite values is checked below
            total = a.sum()
        if math.isfinite(total):  # a NumPy scalar: no second ufunc call
            return True
        return bool(np.isfinite(a).all())
    if bool(xp.isfinite(a.sum())):
        return True
    return bool(xp.isfinite(a).all())


def int_array(x, name: str, *, ndim=None, xp=None, dtype=np.int64):
    """``x`` as a C-contiguous integer array (int64 by default); floats and bools rejected."""
    a = to_native(x, name)
    if xp is not None and xp_of(a) is not xp:
        a = xp.asarray(a)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {_shape_str(a.shape)}")
    if a.size and not np.can_cast(a.dtype, dtype):  # a narrowing cast must not wrap around
        info = np.iinfo(dtype)
        if int(a.min()) < info.min or int(a.max()) > info.max:
            raise ValueError(f"{name}: values must lie in [{info.min}, {info.max}] ({np.dtype(dtype).name})")
    return _c_order(a.astype(dtype, copy=False))


def bool_mask(x, name: str, *, xp=None):
    """``x`` as a C-contiguous bool array; accepts bool or integer 0/1 arrays (floats rejected)."""
    if x is None:
        raise TypeError(f"{name}: expected an array, got None")
    a = _native_order(to_native(x, name))
    if xp is not None and xp_of(a) is not xp:
        a = xp.asarray(a)
    if a.dtype.kind not in "biu":
        raise TypeError(f"{name}: expected a bool (or 0/1 integer) array, got dtype {a.dtype}")
    if a.dtype.kind != "b" and a.size and bool(((a != 0) & (a != 1)).any()):
        raise ValueError(f"{name}: integer masks must hold only 0 and 1")
    return _c_order(a != 0)


def check_shape(a, name: str, shape) -> None:
    """Exact shape check; ``None`` entries match any extent."""
    if len(a.shape) != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        want = _shape_str(["*" if s is None else s for s in shape])
        raise ValueError(f"{name}: expected shape {want}, got {_shape_str(a.shape)}")


def per_batch(value, name: str, batch: int, dtype, xp=np, *, lo=None, hi=None, lo_closed=True, hi_closed=True):
    """A scalar or a (batch,) array of a parameter, checked against [lo, hi] bounds."""
    if type(value) in (float, int):
        # A Python number (the usual case): check it in Python after the cast to the kernel's
        # dtype (a float32 gamma of 0.99999999 is 1.0), then fill; no array scans.
        v = float(np.dtype(dtype).type(value))
        if not math.isfinite(v):
            raise ValueError(f"{name}: contains NaN or infinity")
        if lo is not None and (v < lo if lo_closed else v <= lo):
            raise ValueError(f"{name}: must be {'>=' if lo_closed else '>'} {lo}, got {v}")
        if hi is not None and (v > hi if hi_closed else v >= hi):
            raise ValueError(f"{name}: must be {'<=' if hi_closed else '<'} {hi}, got {v}")
        return xp.full((batch,), v, dtype=dtype)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        arr = xp.full((batch,), float(value), dtype=dtype)
    else:
        arr = float_array(value, name, ndim=(0, 1), dtype=dtype, xp=xp)
        if arr.ndim == 0:
            arr = xp.full((batch,), float(arr), dtype=dtype)
        elif arr.shape != (batch,):
            raise ValueError(f"{name}: expected a scalar or shape ({batch},), got {_shape_str(arr.shape)}")
    if not bool(xp.isfinite(arr).all()):
        raise ValueError(f"{name}: contains NaN or infinity")
    if lo is not None and bool((arr < lo).any() if lo_closed else (arr <= lo).any()):
        raise ValueError(f"{name}: must be {'>=' if lo_closed else '>'} {lo}, got {_first(arr)}")
    if hi is not None and bool((arr > hi).any() if hi_closed else (arr >= hi).any()):
        raise ValueError(f"{name}: must be {'<=' if hi_closed else '<'} {hi}, got {_first(arr)}")
    return xp.ascontiguousarray(arr)


def _first(arr):
    return float(arr.reshape(-1)[0]) if arr.size == 1 else "a value outside the range"


#: Largest count accepted by :func:`positive_int`: kernels keep counts in int64 and loop to
#: ``count + 1``, so anything larger would overflow (and no run gets anywhere near it).
MAX_COUNT = 2**62


def positive_int(value, name: str, *, minimum: int = 1, maximum: int = MAX_COUNT) -> int:
    """An integer count in [minimum, maximum]. The default maximum keeps every kernel's int64
    loop counter (``count + 1``) from overflowing, so a larger value is a ValueError naming the
    argument on every backend (not a pybind11 TypeError on cpu, an OverflowError or a silent
    wrap-around on numba)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    if value > maximum:
        most = "2**62" if maximum == MAX_COUNT else maximum
        raise ValueError(f"{name}: must be <= {most}, got {value}")
    return int(value)


def check_size(name: str, shape, itemsize: int = 8) -> None:
    """ValueError naming ``name`` when an array of ``shape`` could never be allocated (NumPy
    would say "Maximum allowed dimension exceeded" without naming the argument)."""
    n = 1
    for s in shape:
        n *= int(s)
    if n * itemsize > 2**63 - 1:  # beyond ssize_t: no allocator can serve it
        raise ValueError(f"{name}: too large (the result would hold {n} elements)")


def out_buffer(out, name: str, inputs=()) -> None:
    """Checks shared by every ``out=`` argument: writable, and sharing no memory with an input
    the kernel reads (``inputs``: (name, array) pairs, after validation: a copy made there is
    safe) -- the kernels read inputs while writing outputs, so an alias gives wrong answers."""
    flags = getattr(out, "flags", None)
    if flags is not None and not flags.writeable:
        raise ValueError(f"{name}: is read-only")
    for in_name, a in inputs:
        if a is not None and getattr(a, "size", 0) and out.size and _overlap(out, a):
            raise ValueError(f"{name}: shares memory with {in_name}; pass a separate output buffer")


def _overlap(a, b) -> bool:
    xp = xp_of(a)
    if xp_of(b) is not xp:
        return False
    # exact for the C-contiguous arrays the kernels take; bounded work for odd views
    try:
        return bool(xp.shares_memory(a, b, max_work=1000)) if xp is np else bool(xp.may_share_memory(a, b))
    except getattr(np, "exceptions", np).TooHardError:  # numpy < 1.25: np.TooHardError
        return True


def choice(value, name: str, options) -> str:
    if value not in options:
        raise ValueError(f"{name}: expected one of {tuple(options)}, got {value!r}")
    return value
