#!/usr/bin/env bash
# Run scikit-learn's own GaussianMixture test module against pygenmod.gmm.GaussianMixture
# (a copy of the installed sklearn/mixture/tests/test_gaussian_mixture.py with the import
# swapped; sklearn's conftest supplies its fixtures). Usage: tools/sklearn-gmm-tests.sh [raise]
# "raise" runs it with on_degenerate="raise" as the default (scikit-learn's behaviour).
# Expected (sklearn 1.9.1): 49 passed, 7 failed (6 use sklearn's private functions:
# _initialize, _estimate_gaussian_parameters; 1 expects the raise on collapse).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
src=$($py -c "import os, sklearn.mixture.tests as t; print(os.path.join(os.path.dirname(t.__file__), 'test_gaussian_mixture.py'))")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's/^from sklearn.mixture import GaussianMixture$/from pygenmod.gmm import GaussianMixture/' "$src" > "$tmp/test_gaussian_mixture.py"
grep -q "from pygenmod.gmm import GaussianMixture" "$tmp/test_gaussian_mixture.py"
{
  echo "from sklearn.conftest import *  # noqa: F401,F403"
  if [ "${1:-}" = raise ]; then
    echo "from pygenmod.gmm import GaussianMixture"
    echo "GaussianMixture.__init__.__kwdefaults__['on_degenerate'] = 'raise'"
  fi
} > "$tmp/conftest.py"
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" $py -m pytest -q -p no:cacheprovider -W ignore -rf "$tmp/test_gaussian_mixture.py" || true
