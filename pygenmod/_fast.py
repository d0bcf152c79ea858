"""One-call fast paths for tiny problems (issue 11).

At a few states, points or pixels a call's fixed cost is mostly the Python layer: validation,
dispatch, output allocation. A hot public function therefore checks in Python only what is
O(1) (plain NumPy arrays, Python scalars, default options) and hands the arrays to one
compiled entry point of the cpu backend that validates the rest and runs the kernel. That
entry point returns None whenever anything is off (another dtype, a non-contiguous array, a
bad shape, NaN/inf, a row of P that does not sum to 1, ...), and the caller then runs its
general path, which validates again and raises its usual error: messages live in one place,
and the fast path can only ever answer what the general path would answer (the tests compare
both, bitwise). Any other backend (numba, a forced backend, CUDA arrays) takes the general path.
"""

from __future__ import annotations

from ._backend import BackendError, choose, plain_cpu
from ._dispatch import get_kernel

#: Tests switch the fast paths off to compare them with the general path.
ENABLED = True

_KERNELS: dict = {}  # (family, name) -> the cpu backend's kernel


def cpu_kernel(family: str, name: str):
    """The cpu backend's ``family.name`` when host arrays go to the cpu backend now, else None.
    (choose() also applies the thread count to numba where needed, as every kernel call does.)"""
    if not ENABLED:
        return None
    try:
        if plain_cpu():  # the common case in ~0.1 us (a third of choose's calls at tiny sizes)
            fn = _KERNELS.get((family, name))
            if fn is None:
                fn = _KERNELS[family, name] = get_kernel(family, name, "cpu")
            return fn
        if choose(False) != "cpu":
            return None
    except BackendError:
        return None  # the general path raises it, after its own argument checks
    return get_kernel(family, name, "cpu")
