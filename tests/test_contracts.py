"""The integer codes that cross the Python <-> C++ boundary are named on both sides: each
compiled module exports its C++ enums as dicts, and the Python layer's copies (needed by the numba
backend, which runs without the extension) must match them."""

import pytest

from pygenmod import categorical, gmm, mdp, random, sampling


def _module(name):
    import importlib

    try:
        return importlib.import_module(f"pygenmod.{name}")
    except ImportError as exc:
        pytest.skip(f"compiled module {name} not built: {exc}")


def test_gmm_codes():
    m = _module("_cpu_gmm")
    assert m.COV_TYPES == gmm._CODE
    assert m.FLAGS == {"COLLAPSED": gmm.COLLAPSED, "REGULARISED": gmm.REGULARISED, "EMPTY_SET": gmm.EMPTY_SET}


def test_sampling_codes():
    m = _module("_cpu_sampling")
    assert m.SCALE_KINDS == sampling.KINDS
    assert m.DISTS == {"uniform": random.UNIFORM, "normal": random.NORMAL, "gumbel": random.GUMBEL}


def test_mdp_codes():
    m = _module("_cpu_mdp")
    assert m.BACKUP_KINDS == mdp._model._KIND


def test_categorical_codes():
    m = _module("_cpu_categorical")
    assert m.STATUS == categorical._STATUS
