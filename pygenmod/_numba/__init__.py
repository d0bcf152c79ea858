"""numba fallbacks: the same contract as the compiled kernels (inputs, then outputs).

Each module here is imported only when the numba backend serves a call, so importing
pygenmod never imports numba. Every function is ``cache=True``: compiled once per machine,
and recompiled whenever any module of this package, or a parent module whose constants they
freeze in, changes (``_cache.py``: numba's per-file stamp would miss both).

A ``prange`` loop's index is an int64 when numba types the function and a uint64 in the
parallel body it compiles from it, so a callee passed the index would be compiled twice (once
per signature, seconds each). The loops that pass it on convert it first: ``np.int64(i_u)``.
"""

import os

from ._cache import key_to_package

_HERE = os.path.dirname(os.path.abspath(__file__))
# the parent package's modules whose constants the kernels freeze in (see _cache.py)
_FROZEN_IN = ("_mcts_fields.py", "categorical.py")
key_to_package(_HERE, tuple(os.path.join(os.path.dirname(_HERE), n) for n in _FROZEN_IN))
