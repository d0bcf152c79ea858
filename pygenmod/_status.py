"""One convention for numerical status (docs/conventions.md, "Errors and status").

- :class:`Status`: per-row bit flags (values defined once in csrc/include/pygenmod/status.hpp);
  a result that reports numerical status has a ``status`` field: a uint32 array of shape (B,)
  (a :class:`Status` for a single problem passed without its batch axis), 0 = ok.
- :class:`NumericalWarning`: the one warning class (family warnings such as
  ``gmm.GMMWarning`` subclass it, so filters on either work).
- :class:`NumericalError`: a ``ValueError`` that carries the per-row ``status``; raised for
  input that would poison a result (NaN/inf) and by ``on_status="raise"``.
- ``on_status="warn" | "raise" | "ignore"``: what a function does when a row's status is not 0.
"""

from __future__ import annotations

import enum
import warnings
from typing import Any, Literal

import numpy as np

from ._arrays import returner, to_native, xp_of

OnStatus = Literal["warn", "raise", "ignore"]
ON_STATUS = ("warn", "raise", "ignore")


class Status(enum.IntFlag):
    """Per-row numerical status flags (bitwise-or'ed; ``Status.OK`` = 0 = nothing to report)."""

    OK = 0
    #: an input row holds NaN or infinity where it would poison the result
    NONFINITE_INPUT = 1 << 0
    #: an iterative method stopped at ``max_iter`` before meeting its tolerance
    NOT_CONVERGED = 1 << 1
    #: a degenerate problem got a documented fallback (a collapsed GMM component, a data set
    #: without data)
    DEGENERATE = 1 << 2
    #: a value was regularised or clamped to keep the result finite (GMM covariance jitter)
    CLAMPED = 1 << 3
    #: finite inputs gave a non-finite result (MCTS returns too large to sum)
    OVERFLOW = 1 << 4


class NumericalWarning(UserWarning):
    """A result holds rows with a non-zero :class:`Status` (``on_status="warn"``)."""


class NumericalError(ValueError):
    """Rows with a non-zero :class:`Status` where the caller asked for an error, or input that
    would poison the result. ``status`` is the per-row flags (uint32 (B,) NumPy array) and
    ``row`` the first offending row (-1 when unknown)."""

    def __init__(self, message: str, status: Any = None, row: int = -1) -> None:
        super().__init__(message)
        self.status = None if status is None else np.asarray(status, np.uint32)
        self.row = int(row)


def check_on_status(on_status: Any) -> str:
    if on_status not in ON_STATUS:
        raise ValueError(f"on_status: expected one of {ON_STATUS}, got {on_status!r}")
    return on_status


def flags(like: Any, *pairs: tuple[Any, Status]) -> Any:
    """The (B,) uint32 status array, in the array type of ``like``, that has flag f set where
    mask m is true, for each (m, f) of pairs (masks: (B,) bool arrays of any array type, or
    Python bools for a single problem: the result is then a :class:`Status`)."""
    if all(isinstance(m, (bool, np.bool_)) for m, _ in pairs):
        out = Status.OK
        for m, f in pairs:
            if m:
                out |= f
        return out
    back = returner(like)
    xp = xp_of(to_native(pairs[0][0]))
    out = None
    for m, f in pairs:
        m = to_native(m)
        part = xp.where(m != 0, np.uint32(f), np.uint32(0)).astype(xp.uint32)
        out = part if out is None else out | part
    return back(out)


def not_converged(converged: Any) -> Any:
    """NOT_CONVERGED where ``converged`` (a (B,) bool array, or a bool) is False."""
    if isinstance(converged, (bool, np.bool_)):
        return Status.OK if converged else Status.NOT_CONVERGED
    return flags(converged, (to_native(converged) == 0, Status.NOT_CONVERGED))


def _host(a: Any) -> np.ndarray:
    """A host NumPy copy of an array of any type (scalars: one element)."""
    if isinstance(a, (bool, int, np.integer, np.bool_)):
        return np.asarray([int(a)])
    a = to_native(a)
    return np.atleast_1d(np.asarray(a.get() if hasattr(a, "get") else a))


def input_error(message: str, bad_rows: Any, flag: Status = Status.NONFINITE_INPUT) -> NumericalError:
    """The :class:`NumericalError` for input rows that would poison the result: ``bad_rows``
    (B,) bool (any array type) marks them; they get ``flag`` in the error's ``status``."""
    bad = _host(bad_rows).astype(bool).reshape(-1)
    rows = np.flatnonzero(bad)
    return NumericalError(message, np.where(bad, np.uint32(flag), np.uint32(0)), int(rows[0]) if rows.size else -1)


def summary(status: Any) -> str:
    """'2 of 4 rows: NOT_CONVERGED (2), CLAMPED (1)' for a status array or scalar."""
    st = _host(status).astype(np.uint32)
    bad = int((st != 0).sum())
    parts = [
        f"{f.name} ({int(((st & np.uint32(f)) != 0).sum())})" for f in Status if f and ((st & np.uint32(f)) != 0).any()
    ]
    return f"{bad} of {st.size} rows: " + ", ".join(parts)


def report(
    status: Any,
    on_status: str,
    where: str,
    *,
    detail: str = "",
    warning: type[Warning] = NumericalWarning,
    stacklevel: int = 3,
) -> None:
    """Warns (one ``warning`` per call) or raises :class:`NumericalError` when a row's status is
    not 0, as ``on_status`` says; ``detail`` replaces the generic summary in the message."""
    if on_status == "ignore":
        return
    host = _host(status).astype(np.uint32).reshape(-1)
    if not host.any():
        return
    msg = f"{where}: " + (detail or summary(host))
    if on_status == "raise":
        raise NumericalError(msg, host, int(np.flatnonzero(host)[0]))
    warnings.warn(msg + " (see the result's .status)", warning, stacklevel=stacklevel)


__all__ = ["NumericalError", "NumericalWarning", "ON_STATUS", "OnStatus", "Status"]
