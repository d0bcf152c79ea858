"""numba's on-disk cache, keyed to a whole package's source instead of one file.

numba stamps a cached function with the hash of its own file only. The kernels here inline
functions of their sibling modules (philox's transforms into sampling's fills, ...), so an edit
of philox.py alone, or an upgrade that changes philox.py but not sampling.py (pip leaves the
``__pycache__/*.nbi`` / ``*.nbc`` files behind), would keep running sampling's stale machine
code. ``key_to_package`` puts numba's own locators, subclassed, in front of numba's list for the
functions of one directory: they cache where numba would, but stamp every function there with
the hash of all the directory's modules, so any change recompiles all of them.
"""

from __future__ import annotations

import functools
import hashlib
import os

from numba.core import caching

# numba >= 0.61 names these without the leading underscore
_IMPL = getattr(caching, "CacheImpl", None) or caching._CacheImpl
_LOCATORS = [
    getattr(caching, name, None) or getattr(caching, "_" + name)
    for name in ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
]


@functools.lru_cache(maxsize=None)
def _stamp(directory: str, listing: tuple) -> bytes:
    """sha256 of the names and contents of the directory's modules (listing: (name, mtime,
    size) of each, so that an edit in a running process is seen)."""
    h = hashlib.sha256()
    for name, _, _ in listing:
        with open(os.path.join(directory, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read())
    return h.digest()


def package_stamp(directory: str) -> bytes:
    listing = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".py"):
            st = os.stat(os.path.join(directory, name))
            listing.append((name, st.st_mtime_ns, st.st_size))
    return _stamp(directory, tuple(listing))


def key_to_package(directory: str) -> None:
    """Stamp the cached numba functions defined in ``directory`` with all its modules' hash
    (idempotent). Functions elsewhere keep numba's locators."""
    directory = os.path.abspath(directory)
    if any(getattr(c, "package_directory", None) == directory for c in _IMPL._locator_classes):
        return

    class PackageStamp:
        package_directory = directory

        @classmethod
        def from_function(cls, py_func, py_file):
            if os.path.dirname(os.path.abspath(py_file)) != directory:
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self):
            return package_stamp(directory)

    ours = [type("Package" + base.__name__.lstrip("_"), (PackageStamp, base), {}) for base in _LOCATORS]
    _IMPL._locator_classes = ours + list(_IMPL._locator_classes)
