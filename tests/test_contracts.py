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
    assert m.ROW_CODES == sampling.ROW_CODES
    assert m.MVN_HEAD_OUT == sampling._MVN_HEAD_OUT
    nbs = pytest.importorskip("pygenmod._numba.sampling", reason="numba not installed")
    assert (nbs._ROW_NONFINITE, nbs._ROW_BAD_TRIL) == (sampling.ROW_CODES["nonfinite"], sampling.ROW_CODES["bad_tril"])


def test_mdp_codes():
    m = _module("_cpu_mdp")
    assert m.BACKUP_KINDS == mdp._model._KIND
    assert m.CHECK_STATS == mdp._model._CHECK_STATS
    nbm = pytest.importorskip("pygenmod._numba.mdp", reason="numba not installed")
    assert (nbm._CS_DONE, nbm._CS_ROW_SUM_ERR, nbm._CS_MIN_ENTRY, nbm._CS_NONFINITE_ROWS) == tuple(
        mdp._model._CHECK_STATS[k] for k in ("done", "row_sum_err", "min_entry", "nonfinite_rows")
    )


def test_categorical_codes():
    m = _module("_cpu_categorical")
    assert m.STATUS == categorical._STATUS


def test_mcts_contract():
    """The tree tuple, the params array and the status codes of the MCTS kernels are named once
    (csrc/include/pygenmod/mcts_fields.hpp); the Python copies must match the binding's export."""
    from pygenmod import _mcts_fields as F
    from pygenmod import mcts

    m = _module("_cpu_mcts")
    assert m.TREE_FIELDS == {name: i for i, name in enumerate(F.TREE_FIELDS)}
    assert m.PARAM_FIELDS == {name: i for i, name in enumerate(F.PARAM_FIELDS)}
    assert m.POLICIES == F.POLICIES
    assert m.STATUS == F.STATUS
    assert m.ACTION_CODES == F.ACTION_CODES
    # the numba backend's named indices
    for name, i in m.TREE_FIELDS.items():
        assert getattr(F, name.upper()) == i, name
    for name, i in m.PARAM_FIELDS.items():
        assert getattr(F, "P_" + name.upper()) == i, name
    for name, v in m.STATUS.items():
        assert getattr(F, name) == v, name
    # the public names and the Tree's arrays
    assert mcts.TREE_FIELDS == F.TREE_FIELDS
    tree = mcts.new_tree(2, 3, 4)
    assert [a is getattr(tree, f) for a, f in zip(tree.arrays(), F.TREE_FIELDS)] == [True] * len(F.TREE_FIELDS)
    # params are built by name
    params, _ = mcts._params("gumbel", max_depth=3, max_num_considered_actions=2, num_actions=3)
    assert params.shape == (len(F.PARAM_FIELDS),)
    assert params[m.PARAM_FIELDS["max_depth"]] == 3
    assert params[m.PARAM_FIELDS["policy"]] == m.POLICIES["gumbel"]
    assert params[m.PARAM_FIELDS["max_considered"]] == 2


def test_status_flags():
    """pygenmod.Status's values are those of csrc/include/pygenmod/status.hpp."""
    from pygenmod import Status

    m = _module("_cpu_runtime")
    assert m.STATUS_FLAGS == {f.name: int(f) for f in Status if f}


def test_numba_mcts_view_follows_tree_fields():
    """The numba backend's per-tree view keeps the tuple order of TREE_FIELDS (it is indexed
    by the same named constants as the batch tuple)."""
    import inspect
    import re

    from pygenmod import _mcts_fields as F
    from pygenmod._numba import mcts as nm

    src = inspect.getsource(nm._view.py_func)
    assert re.findall(r"tree\[(\w+)\]", src) == [f.upper() for f in F.TREE_FIELDS]
    assert not re.search(r"\b(t|tree|p|params)\[\d", inspect.getsource(nm)), "a bare index into a tree or params"
