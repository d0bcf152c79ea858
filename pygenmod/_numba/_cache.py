"""numba's on-disk cache, keyed to a whole package's source instead of one file.

numba stamps a cached function with the hash of its own file only. The kernels here inline
functions of their sibling modules (philox's transforms into sampling's fills, ...) and freeze
constants imported from the parent package (``_mcts_fields``' field indices, ``categorical``'s
status codes), so an edit of one of those files alone, or an upgrade that changes it but not
the kernel's own file (pip leaves the ``__pycache__/*.nbi`` / ``*.nbc`` files behind), would
keep running stale machine code. ``key_to_package`` puts numba's own locators, subclassed, in
front of numba's list for the functions of one directory: they cache where numba would, but
stamp every function there with the hash of all the modules of that directory and of the
listed extra files, so any change recompiles all of them.

The locator list and classes are numba internals (stable since numba 0.4x; ``CacheImpl`` lost
its leading underscore in 0.61): if a numba release renames them, the kernels keep numba's own
per-file stamps and a RuntimeWarning says so.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings


@functools.lru_cache(maxsize=None)
def _stamp(listing: tuple) -> bytes:
    """sha256 of the names and contents of the files (listing: (path, mtime, size) of each, so
    that an edit in a running process is seen)."""
    h = hashlib.sha256()
    for path, _, _ in listing:
        with open(path, "rb") as f:
            h.update(os.path.basename(path).encode() + b"\0" + f.read())
    return h.digest()


def package_stamp(directory: str, extra: tuple = ()) -> bytes:
    """The hash of the directory's modules and of the extra files."""
    paths = [os.path.join(directory, n) for n in sorted(os.listdir(directory)) if n.endswith(".py")] + list(extra)
    listing = []
    for path in paths:
        st = os.stat(path)
        listing.append((path, st.st_mtime_ns, st.st_size))
    return _stamp(tuple(listing))


def key_to_package(directory: str, extra: tuple = ()) -> None:
    """Stamp the cached numba functions defined in ``directory`` with the hash of all its
    modules and of ``extra`` (paths of the files they take constants from); idempotent.
    Functions elsewhere keep numba's locators."""
    directory = os.path.abspath(directory)
    try:
        from numba.core import caching

        impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
        names = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
        bases = [getattr(caching, n, None) or getattr(caching, "_" + n) for n in names]
        classes = list(impl._locator_classes)
    except (ImportError, AttributeError) as exc:
        warnings.warn(
            f"pygenmod: numba's cache locators moved ({exc}); the numba kernels' on-disk cache is keyed "
            "to each kernel's own file only (delete pygenmod/_numba/__pycache__ after editing the package)",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    if any(getattr(c, "package_directory", None) == directory for c in classes):
        return
    extra = tuple(os.path.abspath(p) for p in extra)

    class PackageStamp:
        package_directory = directory

        @classmethod
        def from_function(cls, py_func, py_file):
            if os.path.dirname(os.path.abspath(py_file)) != directory:
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self):
            return package_stamp(directory, extra)

    ours = [type("Package" + base.__name__.lstrip("_"), (PackageStamp, base), {}) for base in bases]
    impl._locator_classes = ours + classes
