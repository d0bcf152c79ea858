"""Ctrl-C for the numba loops: a long loop runs as a series of calls, each resuming where the
last stopped, so Python gets control (and raises KeyboardInterrupt) between them.

numba's compiled code cannot check for signals itself; the compiled backend polls them
inside its loops (csrc/include/pygenmod/interrupt.hpp). Here the caller's loop asks
:func:`budgets` for the amount of work (sweeps, iterations, simulations) of its next call:
it starts small and doubles while a call takes under ~25 ms, so a signal is seen within
about 0.1 s while the per-call overhead stays negligible.
"""

import time

_TARGET_S = 0.05


def budgets(first: int = 4, target_s: float = _TARGET_S):
    """Endless generator of per-call work budgets (the caller stops when its loop is done)."""
    n = max(1, int(first))
    while True:
        t0 = time.perf_counter()
        yield n
        dt = time.perf_counter() - t0
        if dt < target_s / 2:
            n = min(2 * n, 1 << 40)
        elif dt > 2 * target_s and n > 1:
            n //= 2
