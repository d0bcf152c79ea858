"""The conventions of docs/conventions.md, checked on every public signature with inspect, so a
new function or family cannot drift from them."""
import importlib
import inspect

import pytest

PUBLIC_MODULES = ["pygenmod.adversarial", "pygenmod.cem", "pygenmod.elbo", "pygenmod.gmm", "pygenmod.mcts", "pygenmod.mdp",
                  "pygenmod.random", "pygenmod.returns", "pygenmod.sampling", "pygenmod.spatial"]

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
    # only as a deprecated alias (a sentinel default, not None or an int)
    assert p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not None and not isinstance(p.default, int), \
        f"{name}: the functional API takes seed=, random_state only as a deprecated alias"


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
