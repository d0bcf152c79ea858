"""The one gradient call convention (docs/conventions.md#gradients), and the migration of the
older grad-first positional form.

A backward is ``<forward>_backward(<the forward's own arguments>, *, grad_<output>=...)``. The
upstream gradients are keyword-only and at least one must be given (a backward without one is
meaningless). That makes an old grad-first call recognisable: a call that passes none of them
is read in the old form, with a DeprecationWarning, or refused with a TypeError where it cannot
be read that way -- never bound silently to the wrong parameters (an old
``kl_normal_backward(g, mu, logvar)`` would otherwise bind ``g`` to ``mu``).
"""

from __future__ import annotations

import functools
import warnings


def backward(*grads: str, old: tuple[str, ...] | None = None, fill: dict | None = None):
    """Decorator of a public backward function.

    grads: its upstream-gradient keywords (``grad_<output>``); a call must pass at least one.
    old: the parameter names of the deprecated grad-first form, the upstream gradient first under
    its old name (e.g. ``("grad", "mu", "logvar")``); it is mapped to ``grads[0]``, the other
    names are the new function's own. None: there is no older form.
    fill: values for the new function's arguments that the old form did not have.
    """

    def wrap(f):
        name = f"{f.__module__.rsplit('.', 1)[-1]}.{f.__name__}"
        spell = grads[0] + "=" if len(grads) == 1 else "one or more of " + ", ".join(g + "=" for g in grads)
        new = grads[0]

        @functools.wraps(f)  # inspect.signature follows __wrapped__: the new signature is documented
        def call(*args, **kwargs):
            for g in grads:  # the new form: the common case, one dict lookup
                if g in kwargs:
                    return f(*args, **kwargs)
            return _old_form(f, name, spell, new, old, fill, args, kwargs)

        return call

    return wrap


def _old_form(f, name, spell, new, old, fill, args, kwargs):
    """A call without any grad_* keyword: the deprecated grad-first form, or a TypeError."""
    if old is None:
        raise TypeError(f"{name}: missing the upstream gradient: pass {spell} (keyword-only)")
    grad = old[0]
    if grad in kwargs:
        # The old keyword spelling (grad=g). The old form could not take positional arguments
        # after a keyword gradient, so any positional ones are the new form's: only a rename.
        warnings.warn(
            f"{name}({grad}=...) is deprecated: pass the upstream gradient as {new}=", DeprecationWarning, stacklevel=3
        )
        kwargs[new] = kwargs.pop(grad)
        return f(*args, **kwargs)
    form = f"{name}({', '.join(old)}, ...)"
    if not args:
        raise TypeError(f"{name}: missing the upstream gradient: pass {spell} (keyword-only)")
    if len(args) > len(old):
        raise TypeError(
            f"{name}: pass the upstream gradient as {spell} (keyword-only). Without it the call "
            f"reads as the deprecated grad-first form {form}, which takes at most {len(old)} "
            f"positional arguments, not {len(args)}"
        )
    bound = dict(zip(old, args))
    clash = [k for k in bound if k in kwargs]
    if clash:
        raise TypeError(
            f"{name}: pass the upstream gradient as {spell} (keyword-only). Without it the call "
            f"reads as the deprecated grad-first form {form}, which gets {clash[0]} both by "
            "position and by keyword"
        )
    warnings.warn(
        f"{name}: pass the upstream gradient as {new}=; the grad-first positional form {form} is deprecated",
        DeprecationWarning,
        stacklevel=3,
    )
    bound[new] = bound.pop(grad)
    for k, v in (fill or {}).items():
        bound.setdefault(k, v)
    try:
        return f(**bound, **kwargs)
    except (TypeError, ValueError) as e:  # a new-form call that forgot its gradient lands here
        e.add_note(
            f"({name} was called without {spell}, so its positional arguments were read as the "
            f"deprecated grad-first form {form})"
        )
        raise
