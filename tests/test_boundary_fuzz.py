"""Fuzz the C++ boundary: every compiled kernel, fed arrays of random dtypes and shapes,
either runs or raises a Python exception — it never crashes or reads/writes out of bounds.

Each kernel's parameter count is read from its pybind11 signature; arguments are random
small arrays (float32/float64/int64/int32/bool, 0-4 dims, extents 0-3) or scalars.
"""

import glob
import importlib
import inspect
import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pygenmod

PKG = os.path.dirname(pygenmod.__file__)
MODULES = sorted(
    {os.path.basename(p).split(".")[0] for p in glob.glob(os.path.join(PKG, "_cpu_*.so"))} - {"_cpu_runtime"}
)


def _kernels():
    for modname in MODULES:
        mod = importlib.import_module(f"pygenmod.{modname}")
        for name, fn in inspect.getmembers(mod):
            if name.startswith("_") or not callable(fn) or not fn.__doc__:
                continue
            m = re.match(r"\s*\w+\((.*?)\)\s*->", fn.__doc__)
            if m is None:
                continue
            nparams = len([p for p in m.group(1).split(",") if p.strip()])
            yield pytest.param(fn, nparams, id=f"{modname}.{name}")


KERNELS = list(_kernels())

arrays = st.one_of(
    st.tuples(
        st.sampled_from([np.float32, np.float64, np.int64, np.int32, np.bool_]),
        st.lists(st.integers(0, 3), min_size=0, max_size=4),
    ).map(lambda t: np.zeros(t[1], dtype=t[0]) + (1 if t[0] is not np.bool_ else True)),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
)


@pytest.mark.skipif(not KERNELS, reason="compiled extension not built")
@pytest.mark.parametrize("fn,nparams", KERNELS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_arguments_raise_cleanly(fn, nparams, data):
    args = [data.draw(arrays) for _ in range(nparams)]
    try:
        fn(*args)
    except (TypeError, ValueError, RuntimeError, IndexError, OverflowError):
        pass
