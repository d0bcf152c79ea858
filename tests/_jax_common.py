"""What the pygenmod.jax test files share: the module-level skips (no JAX; a numba-only build,
which has no compiled pygenmod._jax_ffi) and the dtype / x64 fixtures. A test file imports
`jax` from here first, so that the skip applies to it; the fixtures are imported by name."""

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="JAX not installed (pip install 'pygenmod[jax]')")

try:
    import pygenmod._jax_ffi  # noqa: F401  a compiled build: pygenmod.jax must import
except ImportError:
    pytest.skip("numba-only build: no compiled pygenmod._jax_ffi", allow_module_level=True)


@pytest.fixture
def x64():
    """jax_enable_x64 on for one test (restored after)."""
    prev = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", prev)


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    """float32 under JAX's default config, float64 with jax_enable_x64 (restored after)."""
    prev = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", request.param is np.float64)
    yield request.param
    jax.config.update("jax_enable_x64", prev)
