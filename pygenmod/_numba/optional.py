"""Optional array arguments of the numba kernels, passed as arrays with a flag.

numba compiles a kernel once per signature of argument types, and None is a type of its own:
a kernel with three optional arrays compiles up to 2**3 variants per dtype, about 2 s each on
first use (and in every fresh cache: a cold test run spent ~40 s on spatial's two kernels).
The Python wrappers of such kernels pass an empty array of the argument's dtype and rank, and
False, for None, so each kernel compiles once per dtype. A kernel never touches an array whose
flag is False.
"""

import numpy as np

_EMPTY = {}


def optional(a, dtype, ndim):
    """(a, True), or (an empty array of dtype with ndim axes, False) for None."""
    if a is not None:
        return a, True
    key = (np.dtype(dtype), ndim)
    empty = _EMPTY.get(key)
    if empty is None:
        empty = _EMPTY[key] = np.empty((0,) * ndim, dtype)
    return empty, False
