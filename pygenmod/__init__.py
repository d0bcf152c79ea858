"""pygenmod: fast, batched, exact primitives for generative models and reinforcement learning.

Families: ``pygenmod.mdp`` / ``pygenmod.returns`` (Bellman backups, GAE), ``pygenmod.gmm``,
``pygenmod.spatial``, ``pygenmod.sampling``, ``pygenmod.mcts``. Importing pygenmod compiles
nothing: numba kernels compile (and cache) on first use.
"""
from . import _threads
from ._backend import (
    BackendError,
    backends,
    get_num_threads,
    set_backend,
    set_num_threads,
    use_backend,
)

__version__ = "0.1.0"

# Load the OpenMP runtime now, before another package loads libgomp with its defaults
# (docs/threads.md), and let threadpoolctl see pygenmod's pool.
try:
    _threads.load_runtime()
except ImportError:  # no compiled extension: the numba backend serves
    pass
_threads.install_threadpoolctl_hook()

__all__ = [
    "BackendError",
    "backends",
    "get_num_threads",
    "set_backend",
    "set_num_threads",
    "use_backend",
    "__version__",
]
