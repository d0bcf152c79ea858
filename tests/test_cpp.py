"""The C++ side from pytest: configure and build tests/cpp with CMake, run its ctest suite
(known-answer tests of the header-only kernels, the C API from C, every public header alone
with -Wall -Wextra -Werror, and the downstream-consumer tests: install + find_package,
add_subdirectory), and build a consumer against the package installed with this wheel
(pygenmod.cmake_dir()). Skipped, with the reason, only when CMake >= 3.24 or a C/C++
compiler is missing; any build or ctest failure fails with the tool's output.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

import pygenmod

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 1800  # seconds per command (a loaded 2-core machine builds the suite in ~3 min)


def _cmake():
    exe = shutil.which("cmake")
    if exe is None:
        return None, "cmake not found on PATH"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"version (\d+)\.(\d+)", out)
    if not m or (int(m[1]), int(m[2])) < (3, 24):
        return None, f"cmake >= 3.24 needed, found: {out.splitlines()[0] if out else '?'}"
    return exe, ""


def _compilers():
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cxx or not cc:
        return None, "no C/C++ compiler (c++/g++/clang++ and cc/gcc/clang) found"
    return (cxx, cc), ""


CMAKE, _why_cmake = _cmake()
COMPILERS, _why_cc = _compilers()
pytestmark = pytest.mark.skipif(CMAKE is None or COMPILERS is None, reason=_why_cmake or _why_cc)


def _run(cmd, what, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False, **kw)
    if p.returncode != 0:
        out = (p.stdout + p.stderr)[-20000:]
        pytest.fail(f"{what} failed (exit {p.returncode}): {' '.join(map(str, cmd))}\n{out}", pytrace=False)
    return p.stdout


def _configure_args(src, build, *extra):
    cxx, cc = COMPILERS
    args = [
        CMAKE,
        "-S",
        str(src),
        "-B",
        str(build),
        "-DCMAKE_BUILD_TYPE=Release",
        f"-DCMAKE_CXX_COMPILER={cxx}",
        f"-DCMAKE_C_COMPILER={cc}",
        *extra,
    ]
    if shutil.which("ninja"):
        args += ["-G", "Ninja"]
    return args


def _jobs():
    return str(max(1, min(os.cpu_count() or 1, 4)))


def test_ctest_suite(tmp_path):
    build = tmp_path / "cpp-tests"
    _run(_configure_args(os.path.join(ROOT, "tests", "cpp"), build), "configuring tests/cpp")
    _run([CMAKE, "--build", str(build), "--parallel", _jobs()], "building tests/cpp")
    ctest = shutil.which("ctest") or os.path.join(os.path.dirname(CMAKE), "ctest")
    out = _run([ctest, "--output-on-failure", "--parallel", _jobs(), "--test-dir", str(build)], "ctest")
    assert "tests passed" in out


def test_consumer_of_the_installed_wheel(tmp_path):
    try:
        cmake_dir = pygenmod.cmake_dir()
    except FileNotFoundError as e:
        pytest.skip(f"no CMake package inside this copy of pygenmod (not a wheel install): {e}")
    build = tmp_path / "consumer"
    _run(
        _configure_args(os.path.join(ROOT, "tests", "cpp", "consumer"), build, f"-Dpygenmod_DIR={cmake_dir}"),
        "configuring the consumer against the wheel",
    )
    _run([CMAKE, "--build", str(build), "--parallel", _jobs()], "building the consumer")
    for exe in ("consumer", "consumer_c"):
        _run([str(build / exe)], f"running {exe}")


def test_get_include_has_the_headers():
    inc = pygenmod.get_include()
    for h in ("common.hpp", "cpu_features.hpp", "mdp.hpp", "mcts.hpp", "gmm.hpp"):
        assert os.path.isfile(os.path.join(inc, "pygenmod", h)), h


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v"]))
