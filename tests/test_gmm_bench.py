"""The GMM benchmark's subprocess candidate (scikit-learn's array-API path needs SCIPY_ARRAY_API=1
before scipy is imported, so the runner times it in a child process)."""

import pytest

from pygenmod.benchmarks import gmm as bgmm
from pygenmod.benchmarks.runner import Candidate, InSubprocess, Missing, Workload, measure


def test_array_api_candidate_runs_in_a_child_with_the_variable_set():
    pytest.importorskip("sklearn")
    pytest.importorskip("torch")
    pytest.importorskip("array_api_compat")
    job = InSubprocess(f"{bgmm.__name__}:_sk_torch_setup", ("full", "f64", 500), env={"SCIPY_ARRAY_API": "1"})
    w = Workload("t", "tiny", [Candidate("child", lambda: job)])
    ((cand, seconds, note),) = measure(w, repeats=1)
    assert seconds is not None and seconds > 0, note
    # without the variable the child reports the candidate as missing (never a fake time)
    off = InSubprocess(job.target, job.args, env={"SCIPY_ARRAY_API": "0"})
    with pytest.raises(Missing, match="SCIPY_ARRAY_API"):
        off.time(repeats=1)
    ((_, seconds, note),) = measure(Workload("t", "tiny", [Candidate("child", lambda: off)]), repeats=1)
    assert seconds is None and note.startswith("missing")


def test_child_failure_is_reported():
    bad = InSubprocess("pygenmod.benchmarks.gmm:no_such_function")
    ((_, seconds, note),) = measure(Workload("t", "tiny", [Candidate("bad", lambda: bad)]), repeats=1)
    assert seconds is None and note.startswith("failed") and "no_such_function" in note
