"""pygenmod: fast, batched, exact primitives for generative models and reinforcement learning.

Families: ``pygenmod.mdp`` / ``pygenmod.returns`` (Bellman backups, GAE), ``pygenmod.gmm``,
``pygenmod.spatial``, ``pygenmod.sampling``, ``pygenmod.mcts``. Importing pygenmod compiles
nothing: numba kernels compile (and cache) on first use.
"""

from __future__ import annotations

from . import _threads
from ._backend import (
    BackendError,
    backends,
    get_num_threads,
    set_backend,
    set_num_threads,
    use_backend,
)
from ._seed import get_state as get_rng_state
from ._seed import manual_seed
from ._seed import set_state as set_rng_state
from ._status import NumericalError, NumericalWarning, Status

__version__ = "0.1.0"

# Load the runtime (the thread pool every CPU module shares) now, and let threadpoolctl see
# the pool (docs/threads.md).
try:
    _threads.load_runtime()
except ImportError:  # no compiled extension: the numba backend serves
    pass
_threads.install_threadpoolctl_hook()


def get_include() -> str:
    """The directory of the C++ headers (``#include "pygenmod/mdp.hpp"``; see docs/cpp.md).

    In an installed wheel: ``<site-packages>/pygenmod/include``; in a source checkout: ``csrc/include``.
    """
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    for d in (os.path.join(here, "include"), os.path.join(os.path.dirname(here), "csrc", "include")):
        if os.path.isfile(os.path.join(d, "pygenmod", "common.hpp")):
            return d
    raise FileNotFoundError("pygenmod's C++ headers are not installed with this copy of pygenmod")


def cmake_dir() -> str:
    """The directory of pygenmodConfig.cmake in an installed wheel: pass it as ``pygenmod_DIR``
    (or put it on ``CMAKE_PREFIX_PATH``) for ``find_package(pygenmod CONFIG REQUIRED)``."""
    import os

    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "share", "cmake", "pygenmod")
    if not os.path.isfile(os.path.join(d, "pygenmodConfig.cmake")):
        raise FileNotFoundError(
            "pygenmod's CMake package is installed by `pip install` (a wheel), not by "
            "tools/dev-build.sh; in a source checkout use add_subdirectory or "
            "cmake -DPYGENMOD_PYTHON=OFF + cmake --install (docs/cpp.md)"
        )
    return d


__all__ = [
    "BackendError",
    "NumericalError",
    "NumericalWarning",
    "Status",
    "backends",
    "get_num_threads",
    "set_backend",
    "set_num_threads",
    "use_backend",
    "manual_seed",
    "get_rng_state",
    "set_rng_state",
    "__version__",
    "cmake_dir",
    "get_include",
]
