"""The conventions of docs/conventions.md, checked on every public signature with inspect, so a
new function or family cannot drift from them."""
import importlib
import inspect

import pytest

from pygenmod._validate import DEPRECATED

PUBLIC_MODULES = ["pygenmod.adversarial", "pygenmod.categorical", "pygenmod.cem", "pygenmod.elbo", "pygenmod.gmm",
                  "pygenmod.goals", "pygenmod.mcts", "pygenmod.mdp", "pygenmod.random", "pygenmod.returns",
                  "pygenmod.sampling", "pygenmod.spatial", "pygenmod.trpo"]

# Functions whose seed is the leading positional argument by design (jax.random style: key first).
SEED_FIRST = {"pygenmod.random." + f for f in ("uniform", "normal", "gumbel", "bits")}
# Example-data builders: a fixed example problem, not a random draw (docs/conventions.md);
# manual_seed's seed is the value it sets, not a draw's key.
EXAMPLE_DATA = {"pygenmod.mdp.random_mdp", "pygenmod.random.manual_seed"}
KEYWORD_ONLY_OPTIONS = ("seed", "stream", "offset", "out")


def _public_functions():
    for modname in PUBLIC_MODULES:
        mod = importlib.import_module(modname)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if inspect.isfunction(obj):
                yield f"{obj.__module__}.{obj.__qualname__}", f"{modname}.{name}", obj


FUNCTIONS = sorted({(q, n): f for q, n, f in _public_functions()}.items())
IDS = [n for (_, n), _ in FUNCTIONS]


@pytest.mark.parametrize("modname", PUBLIC_MODULES)
def test_every_public_module_declares_all(modname):
    mod = importlib.import_module(modname)
    assert hasattr(mod, "__all__"), f"{modname} has no __all__"
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing, f"{modname}.__all__ names missing attributes: {missing}"


@pytest.mark.parametrize("key, fn", FUNCTIONS, ids=IDS)
def test_seed_defaults_to_fresh_draws(key, fn):
    _, name = key
    p = inspect.signature(fn).parameters.get("seed")
    if p is None or name in EXAMPLE_DATA:
        return
    assert p.default is None, f"{name}: seed must default to None (fresh draws), got {p.default!r}"


@pytest.mark.parametrize("key, fn", FUNCTIONS, ids=IDS)
def test_options_are_keyword_only(key, fn):
    _, name = key
    for opt in KEYWORD_ONLY_OPTIONS:
        p = inspect.signature(fn).parameters.get(opt)
        if p is None or (opt == "seed" and (name in SEED_FIRST or name in EXAMPLE_DATA)):
            continue
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, f"{name}: {opt} must be keyword-only"


@pytest.mark.parametrize("key, fn", FUNCTIONS, ids=IDS)
def test_functional_api_spells_randomness_seed(key, fn):
    _, name = key
    p = inspect.signature(fn).parameters.get("random_state")
    if p is None:
        return
    assert p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is DEPRECATED, \
        f"{name}: the functional API takes seed=, random_state only as a deprecated alias"


# One name per idea (docs/conventions.md#signatures): the old spellings exist only as deprecated,
# keyword-only aliases whose default is the sentinel.
OLD_NAMES = {"random_state": "seed", "validate": "check", "tau": "temperature", "method": "evaluation",
             "init_params": "init"}


@pytest.mark.parametrize("key, fn", FUNCTIONS, ids=IDS)
def test_one_name_per_idea(key, fn):
    _, name = key
    params = inspect.signature(fn).parameters
    for old, new in OLD_NAMES.items():
        p = params.get(old)
        if p is not None:
            assert p.default is DEPRECATED and p.kind is inspect.Parameter.KEYWORD_ONLY, \
                f"{name}: {old}= is spelled {new}= in pygenmod (keep {old} only as a deprecated alias)"
    if name.startswith("pygenmod.gmm.") and "weights" in params:
        assert params["weights"].default is DEPRECATED, f"{name}: point weights are sample_weight="


def _data():
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 2))
    return np, X


@pytest.mark.parametrize("call", [
    "gmm.fit(X, 2, weights=w, seed=0, warn=False)",
    "gmm.fit(X, 2, init_params=gmm.fit(X, 2, seed=0, warn=False).params, max_iter=2, warn=False)",
    "gmm.e_step(X, p, weights=w)",
    "gmm.em_step(X, p, weights=w)",
    "gmm.m_step(X, np.full((30, 2), 0.5), weights=w)",
    "gmm.bic(X, p, weights=w)",
    "gmm.aic(X, p, weights=w)",
    "mdp.policy_evaluation(P, R, 0.9, np.zeros(12, np.int64), method='iterative')",
    "sampling.gumbel_softmax(X, tau=0.5, seed=0)",
    "sampling.gumbel_softmax_backward(X, sampling.gumbel_softmax(X, seed=0).y_soft, tau=0.5)",
    "sampling.rsample_mvn(X, np.eye(2), seed=0, validate=False)",
    "sampling.mvn_head(X, np.eye(2), seed=0, validate=False)",
])
def test_old_spellings_warn_and_agree(call):
    """A deprecated spelling still works for one release, warns, and gives the new spelling's result;
    giving both spellings is a TypeError."""
    import numpy as np

    from pygenmod import gmm, mdp, sampling

    _, X = _data()
    w = np.ones(30)
    p = gmm.fit(X, 2, seed=0, warn=False).params
    P, R, _ = mdp.gridworld()
    env = dict(np=np, gmm=gmm, mdp=mdp, sampling=sampling, X=X, w=w, p=p, P=P, R=R)
    with pytest.warns(DeprecationWarning, match="deprecated"):
        old = eval(call, env)
    new_call = (call.replace("weights=w", "sample_weight=w").replace("init_params=", "init=")
                .replace("method=", "evaluation=").replace("tau=", "temperature=").replace("validate=", "check="))
    new = eval(new_call, env)
    for a, b in zip(old if isinstance(old, tuple) else (old,), new if isinstance(new, tuple) else (new,)):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)


def test_both_spellings_is_a_type_error():
    import numpy as np

    from pygenmod import gmm, sampling

    _, X = _data()
    with pytest.raises(TypeError, match="not both"), pytest.warns(DeprecationWarning):
        gmm.fit(X, 2, np.ones(30), weights=np.ones(30))
    with pytest.raises(TypeError, match="not both"), pytest.warns(DeprecationWarning):
        sampling.gumbel_softmax(X, 0.5, tau=0.5)


@pytest.mark.parametrize("key, fn", FUNCTIONS, ids=IDS)
def test_out_defaults_to_none(key, fn):
    _, name = key
    p = inspect.signature(fn).parameters.get("out")
    if p is not None:
        assert p.default is None, f"{name}: out must default to None"


def test_package_generator_is_exported():
    import pygenmod
    from pygenmod import random

    for f in ("manual_seed", "get_rng_state", "set_rng_state"):
        assert f in pygenmod.__all__ and callable(getattr(pygenmod, f))
    for f in ("manual_seed", "get_state", "set_state"):
        assert callable(getattr(random, f))
