"""pygenmod's torch custom ops, with a direct path for plain eager calls.

Every op of pygenmod.torch is a ``torch.library.custom_op`` (so torch.compile, export, FakeTensor,
opcheck and vmap's errors see a real op). Going through torch's dispatcher and the custom op's
generated autograd wrapper costs ~15-40 us a call, several times the kernel's time at the sizes
of a policy step. So a plain eager call (see plain_eager: no torch.compile or jit tracing, no
dispatch or function mode, no functorch transform, no profiler; every argument a CPU/CUDA tensor
or Python scalar of its schema type) runs the op's own kernel function directly, and when a tensor requires grad, through one
``torch.autograd.Function`` built from the op's registered ``setup_context`` and ``backward``:
the same functions, the same results, without the dispatcher's layers. Anything else takes the
op itself.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from torch.nn import Parameter

#: what a schema argument accepts on the direct path (an Optional one: None too); another type
#: in an op's schema keeps that op on the dispatcher
_ACCEPT = {
    "Tensor": (Tensor, Parameter),
    "int": (int,),
    "SymInt": (int,),
    "float": (float, int),
    "bool": (bool,),
    "str": (str,),
}


def _arg_types(op) -> "tuple | None":
    """Per positional argument: (accepted types, None allowed); None if the schema has keyword-only
    arguments or a type outside _ACCEPT."""
    out = []
    for arg in op._opoverload._schema.arguments:
        name = str(arg.type)  # "Tensor", "Optional[Tensor]", "int", ...
        optional = name.startswith("Optional[")
        accepted = _ACCEPT.get(name[9:-1] if optional else name)
        if accepted is None or arg.kwarg_only:
            return None
        out.append((accepted, optional))
    return tuple(out)


def plain_eager() -> bool:
    """True outside everything that must see the ops themselves: torch.compile's tracing (read
    first: dynamo takes it as a constant), a torch function or dispatch mode (FakeTensor, ...), a
    functorch transform, torch.jit tracing, and the profiler (its per-op events)."""
    return not (
        torch.compiler.is_compiling()
        or torch._C._len_torch_dispatch_stack()
        or torch._C._len_torch_function_stack()
        or torch._C._are_functorch_transforms_active()
        or torch._C._get_tracing_state() is not None
        or torch.autograd._profiler_enabled()
    )


def _plain_call(types, args) -> bool:
    """Every argument of its schema type; tensors on the CPU or CUDA (a meta tensor has no data:
    the op's fake kernel gives its outputs)."""
    if len(args) != len(types):
        return False
    for a, (accepted, optional) in zip(args, types):
        if type(a) not in accepted:
            if not (optional and a is None):
                return False
        elif accepted[0] is Tensor and not (a.is_cpu or a.is_cuda):
            return False
    return True


class EagerOp:
    """A custom op (``op``, whose registrations it forwards: register_fake, register_autograd, ...)
    called directly when the call is plain eager (see the module docstring)."""

    def __init__(self, op) -> None:
        self.op = op
        self._types = _arg_types(op)
        self._autograd: "type | None" = None

    def __getattr__(self, name: str) -> Any:
        if name == "op":  # (not set yet, e.g. in copy.copy: no recursion)
            raise AttributeError(name)
        return getattr(self.op, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not plain_eager() or kwargs or self._types is None or not _plain_call(self._types, args):
            return self.op(*args, **kwargs)
        if torch.is_grad_enabled() and torch._C._any_requires_grad(*args):
            fn = self._autograd or self._make_autograd()
            return self.op(*args) if fn is None else fn.apply(*args)
        return self.op._init_fn(*args)

    def _make_autograd(self) -> "type | None":
        """One autograd.Function from the op's kernel and its registered autograd formula (None
        before register_autograd: the op then raises torch's own error)."""
        kernel: Callable = self.op._init_fn
        setup: Callable = self.op._setup_context_fn
        backward: Callable = self.op._backward_fn
        if setup is None or backward is None:
            return None

        def forward(ctx, *args):
            out = kernel(*args)
            setup(ctx=ctx, inputs=args, output=out)
            return out

        def grads(ctx, *g):
            res = backward(ctx, *g)
            return res if isinstance(res, tuple) else (res,)

        name = "EagerBackwardFor_" + self.op._qualname.replace("::", "_")
        self._autograd = type(
            name, (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(grads)}
        )
        return self._autograd


#: every op made by custom_op, by qualified name ("pygenmod::gae"): for the tests
OPS: "dict[str, EagerOp]" = {}


def custom_op(name: str, *, mutates_args=()) -> Callable[[Callable], EagerOp]:
    """``torch.library.custom_op(name, mutates_args=...)`` as an :class:`EagerOp`."""
    if mutates_args:
        raise ValueError("the direct path is for ops that mutate nothing")

    def wrap(fn: Callable) -> EagerOp:
        OPS[name] = EagerOp(torch.library.custom_op(name, mutates_args=())(fn))
        return OPS[name]

    return wrap
