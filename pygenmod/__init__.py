"""pygenmod: fast, batched, exact primitives for generative models and reinforcement learning.

Families: ``pygenmod.mdp`` / ``pygenmod.returns`` (Bellman backups, GAE), ``pygenmod.gmm``,
``pygenmod.spatial``, ``pygenmod.sampling``, ``pygenmod.mcts``. Importing pygenmod compiles
nothing: numba kernels compile (and cache) on first use.
"""
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

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "backends",
    "get_num_threads",
    "set_backend",
    "set_num_threads",
    "use_backend",
    "manual_seed",
    "get_rng_state",
    "set_rng_state",
    "__version__",
]
