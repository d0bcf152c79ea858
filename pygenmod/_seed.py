"""The package's randomness rule, in one place.

Every pygenmod function that draws random numbers takes ``seed=None``:

- ``seed=None`` (the default): a fresh 64-bit Philox key from the *package generator*, which
  advances on every such call, so two default calls never repeat the same noise. A call given
  its noise (the sampling functions' ``eps=``) draws none and takes no key. The package
  generator is keyed from OS entropy at import (and again in a child after ``os.fork``, so
  forked workers do not repeat their parent's noise); ``manual_seed(s)`` makes a whole sequence
  of default calls reproducible, and ``get_state()``/``set_state()`` save and restore it.
- an integer in ``[0, 2**64)``: that Philox key, statelessly: the same numbers on every
  backend, thread count, batch size and chunking, whatever the package generator's state.
- a ``numpy.random.Generator`` / ``RandomState``: one 64-bit key drawn from it (advancing it).
- a JAX PRNG key (a typed key or a raw ``uint32[2]`` key array): its two words as the key,
  high word first, so the same JAX key gives the same draw (JAX's own stateless semantics).

The derivation of the k-th fresh key is ``splitmix64(key + k * 0x9E3779B97F4A7C15)``: cheap
(a few integer operations per call) and decorrelated between neighbouring counters.
"""

from __future__ import annotations

import numbers
import operator
import os
import threading

import numpy as np

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _splitmix64(z: int) -> int:
    z = (z + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _splitmix64_block(key: int, counter: int, n: int) -> list:
    """The keys of counters ``counter .. counter + n - 1`` (mod 2**64): ``_splitmix64`` in
    wrapping uint64 arithmetic, about 0.1 us a key instead of 0.4 us for Python's big ints."""
    c = np.uint64(counter) + np.arange(n, dtype=np.uint64)  # wraps mod 2**64, as the counter
    with np.errstate(over="ignore"):
        z = np.uint64(key) + c * np.uint64(_GOLDEN) + np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (z ^ (z >> np.uint64(31))).tolist()


class _PackageGenerator:
    """(key, counter): the k-th default call gets ``splitmix64(key + k * golden)``.

    The keys are derived 64 at a time and handed out by a list iterator, whose ``next`` is one
    atomic step under the GIL: a default-seed call takes its key in ~0.1 us instead of ~0.85 us
    (a lock and three big-int multiplications). The lock guards the refills and the state. The
    first keys after a (re)seed are derived one at a time, as before: a block costs ~5 us, more
    than code that reseeds before every few draws should pay."""

    _BLOCK = 64
    _SINGLE = 16  # keys derived one at a time after a (re)seed

    def __init__(self) -> None:
        self._reseed_from_entropy()

    def _reseed_from_entropy(self) -> None:
        self._lock = threading.Lock()  # a lock held by another thread at fork time is lost
        self._start(int.from_bytes(os.urandom(8), "little"), 0)

    def _start(self, key: int, counter: int) -> None:
        """Key ``key`` with the next call at ``counter`` (under the lock, or before any thread)."""
        self._key, self._end = key, counter  # _end: the counter after the keys derived so far
        self._keys = iter(())
        self._single = self._SINGLE

    def next_key(self) -> int:
        try:
            return next(self._keys)
        except StopIteration:
            with self._lock:
                for k in self._keys:  # another thread refilled meanwhile
                    return k
                if self._single:
                    self._single -= 1
                    k, self._end = self._end, (self._end + 1) & _MASK
                    return _splitmix64((self._key + k * _GOLDEN) & _MASK)
                keys = _splitmix64_block(self._key, self._end, self._BLOCK)
                self._end = (self._end + self._BLOCK) & _MASK
                self._keys = iter(keys)
                return next(self._keys)

    def _counter(self) -> int:
        return (self._end - operator.length_hint(self._keys)) & _MASK

    def manual_seed(self, seed: int) -> None:
        seed = check_int_seed(seed)
        with self._lock:
            self._start(seed, 0)

    def get_state(self) -> dict:
        with self._lock:
            return {"key": self._key, "counter": self._counter()}

    def set_state(self, state) -> None:
        try:
            key, counter = state["key"], state["counter"]
        except (TypeError, KeyError):
            raise TypeError("state: expected the dict returned by get_state() ({'key': int, 'counter': int})") from None
        key, counter = check_int_seed(key, "state['key']"), check_int_seed(counter, "state['counter']")
        with self._lock:
            self._start(key, counter)


_GENERATOR = _PackageGenerator()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_GENERATOR._reseed_from_entropy)


def check_int_seed(seed, name: str = "seed") -> int:
    """An explicit integer key / stream / offset in [0, 2**64)."""
    if type(seed) is int and 0 <= seed < 18446744073709551616:  # the common case, without ABC checks
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name}: expected a non-negative integer, got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"{name}: must be in [0, 2**64), got {seed}")
    return seed


def _jax_key_words(seed):
    """The uint32 words of a JAX PRNG key (typed or raw), or None if ``seed`` is not one."""
    mod = type(seed).__module__ or ""
    if not (mod.startswith("jax") or mod.startswith("jaxlib")):
        return None
    import jax

    try:
        if jax.dtypes.issubdtype(seed.dtype, jax.dtypes.prng_key):
            seed = jax.random.key_data(seed)
    except AttributeError:  # pragma: no cover - very old JAX
        pass
    return np.asarray(seed)


def check_key_words(dtype, shape, name: str = "seed") -> None:
    """A JAX key's data (eager here, possibly traced in pygenmod.jax) is two uint32 words."""
    if dtype != np.uint32 or tuple(shape) != (2,):
        raise ValueError(
            f"{name}: a JAX key must hold two uint32 words (threefry2x32), got dtype {dtype} and shape {tuple(shape)}"
        )


def resolve_seed(seed, name: str = "seed") -> int:
    """The 64-bit Philox key for one call under the package's randomness rule (module doc)."""
    if seed is None:
        return _GENERATOR.next_key()
    if type(seed) is int or isinstance(seed, numbers.Integral):
        return check_int_seed(seed, name)
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**64, dtype=np.uint64))
    if isinstance(seed, np.random.RandomState):
        return int(seed.randint(0, 2**32, dtype=np.uint64)) << 32 | int(seed.randint(0, 2**32, dtype=np.uint64))
    words = _jax_key_words(seed)
    if words is not None:
        check_key_words(words.dtype, words.shape, name)
        return int(words[0]) << 32 | int(words[1])
    raise TypeError(
        f"{name}: expected None, an integer in [0, 2**64), a numpy.random.Generator "
        f"or a JAX PRNG key, got {type(seed).__name__}"
    )


def manual_seed(seed: int) -> None:
    """Seed the package generator: the default (``seed=None``) calls that follow are reproducible."""
    _GENERATOR.manual_seed(seed)


def get_state() -> dict:
    """The package generator's state (``{'key': int, 'counter': int}``), for :func:`set_state`."""
    return _GENERATOR.get_state()


def set_state(state: dict) -> None:
    """Restore a state from :func:`get_state`: the default calls that follow repeat those after it."""
    _GENERATOR.set_state(state)
