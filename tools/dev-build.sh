#!/usr/bin/env bash
# Fast in-tree build for development: compiles the extension modules into pygenmod/
# so that `PYTHONPATH=$PWD python -m pytest` tests this checkout without installing.
# Usage: tools/dev-build.sh [extra cmake -D options]; PYGENMOD_CUDA=OFF skips CUDA (default here).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DPYGENMOD_CUDA="${PYGENMOD_CUDA:-OFF}" -DPYGENMOD_WHEEL_LAYOUT=ON \
  -Dpybind11_DIR="$($py -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v $py)" "$@" >/dev/null
cmake --build build/dev -j "${JOBS:-2}"
# modules and libpygenmod_c into pygenmod/ (the C++ headers and config stay in csrc/, cmake/)
cmake --install build/dev --prefix . --component python >/dev/null
