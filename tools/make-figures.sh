#!/usr/bin/env bash
# Regenerates the figures that README.md shows, under docs/img/:
#   bench.png + bench.json  `pygenmod bench --json --plot` (the raw rows are kept beside the chart)
#   demo-gmm.png            the GMM/GMR figure of `pygenmod demo --plots`
# Needs the plot extra (pip install ".[plot]"), and the bench extra for the peer libraries.
# Time the benchmarks on a quiet machine: the chart's caption records the load average.
# Usage: tools/make-figures.sh [pygenmod bench options, e.g. --family mdp --repeats 7]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
out=docs/img
mkdir -p "$out"
"$py" -m pygenmod bench --json "$out/bench.json" --plot "$out/bench.png" "$@"
"$py" - "$out" <<'PY'
import os, sys
from pygenmod.demos import plots

(path,) = plots.render(sys.argv[1], ["gmm"], dpi=72)
os.replace(path, os.path.join(sys.argv[1], "demo-gmm.png"))
PY
ls -l "$out"
