"""numba fallbacks: the same contract as the compiled kernels (inputs, then outputs).

Each module here is imported only when the numba backend serves a call, so importing
pygenmod never imports numba. Every function is ``cache=True``: compiled once per machine,
and recompiled whenever any module of this package changes (``_cache.py``: the modules
inline each other's functions, which numba's per-file stamp would miss).
"""

import os

from ._cache import key_to_package

key_to_package(os.path.dirname(os.path.abspath(__file__)))
