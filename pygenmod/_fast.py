"""One-call fast paths for tiny problems (issue 11).

At a few states, points or pixels a call's fixed cost is mostly the Python layer: validation,
dispatch, output allocation. A hot public function therefore checks in Python only what is
O(1) (plain NumPy arrays, Python scalars, default options) and hands the arrays to one
compiled entry point of the cpu backend that validates the rest and runs the kernel. That
entry point returns None whenever anything is off (another dtype, a bad shape, NaN/inf, a row
of P that does not sum to 1, a non-contiguous array where the path does not copy one, ...), and
the caller then runs its general path, which validates again and raises its usual error:
messages live in one place, and the fast path can only ever answer what the general path would
answer (the tests compare both, bitwise). Any other backend (numba, a forced backend, CUDA arrays) takes the general path.
"""

from __future__ import annotations

from . import _backend
from ._backend import _ENV_DATA, _ENV_KEY, _UNSET, BackendError, choose, probe_cpu_built
from ._dispatch import get_kernel

#: Tests switch the fast paths off to compare them with the general path.
ENABLED = True

_KERNELS: dict = {}  # family -> {name: the cpu backend's kernel}
_override_get = _backend._override.get


def cpu_kernel(family: str, name: str):
    """The cpu backend's ``family.name`` when host arrays go to the cpu backend now, else None.
    (choose() also applies the thread count to numba where needed, as every kernel call does.)

    The common case, nothing forcing another backend (no use_backend, set_backend or
    $PYGENMOD_BACKEND) and the extension built, is choose(False)'s answer read here without a
    call: at tiny sizes this function is part of every call's fixed cost (0.24 -> 0.12 us)."""
    if not ENABLED:
        return None
    if (
        _override_get() is _UNSET
        and _backend._process_wide is None
        and _ENV_DATA is not None
        and _ENV_KEY not in _ENV_DATA
        and (_backend._cpu_built if _backend._cpu_built is not None else probe_cpu_built())
    ):
        try:
            return _KERNELS[family][name]
        except KeyError:
            pass
    else:
        try:
            if choose(False) != "cpu":
                return None
        except BackendError:
            return None  # the general path raises it, after its own argument checks
    try:
        fn = get_kernel(family, name, "cpu")
    except BackendError:
        return None
    _KERNELS.setdefault(family, {})[name] = fn
    return fn
