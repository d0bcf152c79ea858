"""The MCTS callback path reads the device at most once per simulation (issue 12, section 3).

Every host read of an array in pygenmod/mcts.py goes through bool() / int() / float(); the
test counts those calls on arrays (module-level names patched) for two simulation counts: the
difference per simulation is the number of device synchronisations per simulation on CUDA.
It runs on every backend (the count does not depend on where the arrays live).
"""

from __future__ import annotations

import builtins

from test_mcts_search import random_model

from pygenmod import mcts


def _count_array_reads(monkeypatch):
    """Replaces bool/int/float in pygenmod.mcts by counting stand-ins (isinstance still works)."""
    n = [0]

    def counting(orig):
        class Meta(type):
            def __instancecheck__(cls, obj):
                return isinstance(obj, orig)

        class Counting(metaclass=Meta):
            def __new__(cls, *a):
                if a and hasattr(a[0], "shape"):  # an array or a NumPy scalar (a device read on CUDA)
                    n[0] += 1
                return orig(*a)

        return Counting

    for kind in ("bool", "int", "float"):
        monkeypatch.setattr(mcts, kind, counting(getattr(builtins, kind)), raising=False)
    return n


def test_callback_search_syncs_once_per_simulation(backend, rng, monkeypatch):
    S, A, B = 11, 4, 6
    m = random_model(rng, S, A, invalid_frac=0.3)
    roots = rng.integers(0, S, B)
    ns, R, L, V, inv = (backend.asarray(m[k]) for k in ("ns", "R", "L", "V", "invalid"))

    def recurrent_fn(emb, act):
        s2 = ns[emb, act]
        return mcts.RecurrentOutput(R[emb, act], R[emb, act] * 0 + 0.9, L[s2], V[s2], s2, inv[s2])

    counts = []
    for sims in (5, 25):
        n = _count_array_reads(monkeypatch)
        r = backend.asarray(roots)
        mcts.search(mcts.Root(L[r], V[r], r), recurrent_fn, sims, policy="muzero", seed=0, invalid_actions=inv[r])
        counts.append(n[0])
        monkeypatch.undo()
    per_sim = (counts[1] - counts[0]) / 20
    assert per_sim <= 1, f"{per_sim} host reads per simulation"
