"""Shared test fixtures: every kernel test runs once per backend.

A backend that is absent here is reported as skipped with the reason, never passed.
``PYGENMOD_REQUIRE_CUDA=1`` (the GPU check, tools/gpu-check.sh) turns every skip that says
CUDA is unavailable into a failure, so a broken driver or build cannot pass as "skipped".
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

import pygenmod
from pygenmod import _backend

BACKEND_NAMES = ("cpu", "numba", "cuda")


class Backend:
    """A backend under test: converts test data to its arrays and results back to NumPy."""

    def __init__(self, name: str):
        self.name = name

    def asarray(self, x):
        if self.name == "cuda":
            import cupy

            return cupy.asarray(x)
        return np.asarray(x)

    @staticmethod
    def numpy(y):
        if hasattr(y, "get"):
            return y.get()
        return np.asarray(y)

    def __repr__(self):
        return self.name


def require_cuda() -> bool:
    """True when CUDA-unavailable skips must fail ($PYGENMOD_REQUIRE_CUDA=1)."""
    return os.environ.get("PYGENMOD_REQUIRE_CUDA", "").strip().lower() not in ("", "0", "false", "no")


# Skip reasons that mean "no usable CUDA here" (the backend fixture's, importorskip of cupy,
# and the hand-written ones in the test files); other skips (e.g. a dtype CuPy lacks) stay skips.
_CUDA_UNAVAILABLE = re.compile(
    r"backend 'cuda' unavailable|could not import 'cupy'|cupy is not installed|"
    r"\bno (cuda|gpu)\b|cuda (is )?(not |un)available|cuda modules not built|"
    r"needs? (a |the )?(gpu|cuda)|requires? (a |the )?(gpu|cuda)|built without cuda|"
    r"pygenmod_cuda=off|no nvcc",
    re.IGNORECASE,
)


def is_cuda_unavailable_skip(reason: str) -> bool:
    return bool(_CUDA_UNAVAILABLE.search(reason or ""))


def pytest_report_header(config):
    ok, why = _backend._probe("cuda")
    return [
        f"pygenmod cuda: {'available' if ok else 'unavailable'} ({why})"
        + ("; PYGENMOD_REQUIRE_CUDA=1: CUDA skips fail" if require_cuda() else "")
    ]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not (rep.skipped and require_cuda()) or getattr(rep, "wasxfail", None) is not None:
        return
    reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
    if is_cuda_unavailable_skip(reason):
        rep.outcome = "failed"
        rep.longrepr = f"PYGENMOD_REQUIRE_CUDA=1 but the test was skipped: {reason}"


@pytest.fixture(params=BACKEND_NAMES)
def backend(request):
    name = request.param
    ok, why = _backend._probe(name)
    if not ok:
        pytest.skip(f"backend {name!r} unavailable: {why}")
    with pygenmod.use_backend(name):
        yield Backend(name)


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)


def tol(dtype) -> dict:
    """Comparison tolerance against a float64 reference for results in ``dtype``."""
    return dict(rtol=2e-4, atol=2e-5) if np.dtype(dtype) == np.float32 else dict(rtol=1e-9, atol=1e-10)


@pytest.fixture
def rng(request):
    # Fresh random inputs per test, reproducible from the test's name.
    import zlib

    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def run_python(args, env=None, **kwargs):
    """Run ``python *args`` importing the same pygenmod as this test session.

    The child runs outside the repository (a bare ``python -c`` / ``-m`` puts the working
    directory first on sys.path, where the source tree without compiled modules would
    shadow the installed package).
    """
    import os
    import subprocess
    import sys
    import tempfile

    pkg_parent = os.path.dirname(os.path.dirname(pygenmod.__file__))
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run([sys.executable, *args], cwd=cwd, env=env, **kwargs)
