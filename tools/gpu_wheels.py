"""Wheels for the GPU machine, which has no network.

The GPU check (tools/gpu-check.sh) uses packages that machine may lack: the peers of the GPU
benchmark rows (mctx, scikit-learn, kornia) and test extras (hypothesis, pytest-benchmark).

    python tools/gpu_wheels.py download [DIR]        here, where PyPI is reachable
    python tools/gpu_wheels.py install [DIR] [--dry-run]   there (gpu-check.sh's "wheels" step)

DIR defaults to gpu-wheels/ at the repository root (git-ignored); the device tool carries it
with the working tree (carry ["gpu-wheels"]). `install` installs, with no index and no
dependencies, only the wheels whose module the machine cannot import, so it never replaces
the machine's own builds (its CUDA torch, jax, cupy).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY_VERSION = "3.12"  # the GPU machine's Python
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")

# distribution -> module it provides (the wheel file starts with the distribution's name, "-"
# written "_")
PACKAGES = {
    "mctx": "mctx",
    "chex": "chex",
    "absl-py": "absl",
    "toolz": "toolz",
    "scikit-learn": "sklearn",
    "scipy": "scipy",
    "joblib": "joblib",
    "threadpoolctl": "threadpoolctl",
    "array-api-compat": "array_api_compat",
    "kornia": "kornia",
    "kornia-rs": "kornia_rs",
    "hypothesis": "hypothesis",
    "sortedcontainers": "sortedcontainers",
    "pytest-benchmark": "pytest_benchmark",
    "py-cpuinfo": "cpuinfo",
}


def download(folder: str) -> int:
    os.makedirs(folder, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps"]
    cmd += ["--implementation", "cp", "--python-version", PY_VERSION, "-d", folder]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    rc = subprocess.call(cmd + list(PACKAGES))
    print("\n".join(sorted(os.listdir(folder))))
    return rc


def to_install(folder: str) -> list[str]:
    """The wheels in folder whose module cannot be imported here."""
    by_file = {dist.replace("-", "_").lower(): mod for dist, mod in PACKAGES.items()}
    todo = []
    for whl in sorted(glob.glob(os.path.join(folder, "*.whl"))):
        name = os.path.basename(whl).split("-")[0].lower()
        mod = by_file.get(name)
        if mod is None:
            print(f"{name}: not in PACKAGES, left alone")
        elif importlib.util.find_spec(mod) is not None:
            print(f"{name}: {mod} already importable")
        else:
            todo.append(whl)
    return todo


def install(folder: str, dry: bool) -> int:
    if not os.path.isdir(folder):
        print(f"no {folder}: nothing to install (run `python tools/gpu_wheels.py download` where PyPI is reachable)")
        return 0
    todo = to_install(folder)
    print("to install:", " ".join(os.path.basename(w) for w in todo) or "nothing")
    if dry or not todo:
        return 0
    return subprocess.call([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", *todo])


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("download", "install"):
        print(__doc__)
        return 2
    rest = [a for a in argv[1:] if a != "--dry-run"]
    folder = rest[0] if rest else os.path.join(ROOT, "gpu-wheels")
    return download(folder) if argv[0] == "download" else install(folder, "--dry-run" in argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
