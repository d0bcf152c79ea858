#!/usr/bin/env bash
# Regenerates the figures that README.md shows, under docs/img/:
#   bench.json + bench.png  `pygenmod bench --json` and its chart (what `--plot` draws), small
#                           enough for the README (80 dpi); the raw rows stay beside the chart
#   demo-gmm.png            the GMM/GMR figure of `pygenmod demo --plots`
# Needs the plot extra (pip install ".[plot]"), and the bench extra for the peer libraries.
# Time the benchmarks on a quiet machine: the chart's caption records the load average.
# The README chart shows a few workloads across the families (ONLY=ids,... changes the selection);
# the options given go to `pygenmod bench` (e.g. --repeats 7, or --quick for small sizes).
# Usage: [ONLY=W6b,W1] tools/make-figures.sh [pygenmod bench options]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
out=docs/img
mkdir -p "$out"
ONLY=${ONLY:-W6a-solve,W6b,W7,W1,W2-full-f64,W3-fb,W4b,W5-mz64}
"$py" -m pygenmod bench --only "$ONLY" --json "$out/bench.json" "$@"
"$py" -m pygenmod.benchmarks.report "$out/bench.json" "$out/bench.png" 80  # = bench --plot, at 80 dpi (file size)
"$py" - "$out" <<'PY'
import os, sys
from pygenmod.demos import plots

(path,) = plots.render(sys.argv[1], ["gmm"], dpi=72)
os.replace(path, os.path.join(sys.argv[1], "demo-gmm.png"))
PY
ls -l "$out"
