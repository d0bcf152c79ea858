"""numba fallbacks: the same contract as the compiled kernels (inputs, then outputs).

Each module here is imported only when the numba backend serves a call, so importing
pygenmod never imports numba. Every function is ``cache=True``: compiled once per machine,
and recompiled whenever any module of this package, or a parent module whose constants they
freeze in, changes (``_cache.py``: numba's per-file stamp would miss both).
"""

import os

from ._cache import key_to_package

_HERE = os.path.dirname(os.path.abspath(__file__))
# the parent package's modules whose constants the kernels freeze in (see _cache.py)
_FROZEN_IN = ("_mcts_fields.py", "categorical.py")
key_to_package(_HERE, tuple(os.path.join(os.path.dirname(_HERE), n) for n in _FROZEN_IN))
