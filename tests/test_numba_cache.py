"""The numba backend's on-disk cache follows every module of its package (pygenmod/_numba/_cache.py).

numba stamps a cached function with its own file's hash only, so a function that inlines a
helper from another module keeps its stale machine code when only the helper's module
changes. These tests show that stale case on a throw-away package with numba's plain
locators, then that the package-wide stamp recompiles it.
"""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("numba", reason="numba is not installed")

HELPER = """
import numba as nb

@nb.njit(cache=True, inline="always")
def value():
    return {}
"""

USER = """
import numba as nb
from .helper import value

@nb.njit(cache=True)
def f():
    return value()
"""


def _package(root, keyed):
    pkg = root / "pkg"
    pkg.mkdir()
    init = "import os\n"
    if keyed:
        init += "from pygenmod._numba._cache import key_to_package\n"
        init += "key_to_package(os.path.dirname(os.path.abspath(__file__)))\n"
    (pkg / "__init__.py").write_text(init)
    (pkg / "helper.py").write_text(HELPER.format("1.0"))
    (pkg / "user.py").write_text(textwrap.dedent(USER))
    return pkg


def _run(root):
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("NUMBA_DISABLE_JIT", None)
    env["PYTHONPATH"] = os.pathsep.join([str(root), os.getcwd(), env.get("PYTHONPATH", "")])
    code = "from pkg.user import f; print(f(), len(f.stats.cache_hits))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    value, hits = out.stdout.split()
    return float(value), int(hits)


@pytest.mark.parametrize("keyed", [False, True], ids=["numba-stamp", "package-stamp"])
def test_helper_edit_recompiles_the_user(tmp_path, keyed):
    pkg = _package(tmp_path, keyed)
    assert _run(tmp_path) == (1.0, 0)  # compiled, cached
    assert _run(tmp_path) == (1.0, 1)  # loaded from the cache
    (pkg / "helper.py").write_text(HELPER.format("2.0"))
    if keyed:
        assert _run(tmp_path) == (2.0, 0)  # the edit recompiles user.py's f
        assert _run(tmp_path) == (2.0, 1)
    else:
        assert _run(tmp_path) == (1.0, 1)  # numba's own stamp: stale code (what _cache.py fixes)


def test_pygenmod_kernels_use_the_package_stamp():
    import pygenmod._numba as pkg
    from pygenmod._numba import _cache, sampling

    extra = tuple(os.path.join(os.path.dirname(pkg._HERE), n) for n in pkg._FROZEN_IN)
    locator = sampling._fill._cache._impl.locator  # _fill inlines philox's transforms
    assert getattr(locator, "package_directory", None) == pkg._HERE
    assert locator.get_source_stamp() == _cache.package_stamp(pkg._HERE, extra)


def test_every_parent_module_the_kernels_import_is_stamped():
    """A constant imported from the parent package is frozen into the machine code: its module
    must be part of the stamp (pygenmod/_numba/__init__.py's _FROZEN_IN)."""
    import re

    import pygenmod._numba as pkg

    imported = set()
    for name in os.listdir(pkg._HERE):
        if name.endswith(".py"):
            with open(os.path.join(pkg._HERE, name)) as f:
                imported |= {m + ".py" for m in re.findall(r"^from \.\.(\w+) import", f.read(), re.M)}
    assert imported <= set(pkg._FROZEN_IN), imported - set(pkg._FROZEN_IN)


def test_a_numba_without_the_locators_keeps_its_own_stamps(tmp_path, monkeypatch):
    from numba.core import caching

    from pygenmod._numba import _cache

    for name in ("CacheImpl", "_CacheImpl"):
        monkeypatch.delattr(caching, name, raising=False)
    with pytest.warns(RuntimeWarning, match="locators moved"):
        _cache.key_to_package(str(tmp_path))


def test_other_functions_keep_numbas_locators(tmp_path):
    import numba as nb

    import pygenmod._numba  # noqa: F401  (installs the package locators)

    mod = tmp_path / "elsewhere.py"
    mod.write_text("import numba as nb\n\n@nb.njit(cache=True)\ndef g():\n    return 3\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import elsewhere

        assert elsewhere.g() == 3
        assert not hasattr(elsewhere.g._cache._impl.locator, "package_directory")
        assert isinstance(elsewhere.g, nb.core.registry.CPUDispatcher)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("elsewhere", None)
