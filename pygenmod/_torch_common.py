"""Helpers shared by the PyTorch front-ends (:mod:`pygenmod.torch` and its private
``_torch_<topic>`` modules): tensors to NumPy/CuPy views and back, torch's CUDA stream, and
seeds as custom-op arguments. Importing this module needs torch."""

from __future__ import annotations

import contextlib
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import Tensor

from ._arrays import _to_torch, to_native
from ._seed import check_int_seed, resolve_seed
from ._torch_eager import plain_eager

# A fresh key from the package generator, never traced: dynamo compiles the frames that a graph
# break leaves to run eagerly, and would turn the generator's NumPy key derivation into
# torch._numpy ops (a uint64 arange: unsupported).
_fresh_key = torch.compiler.disable(lambda: resolve_seed(None))

#: half-precision dtypes the kernels compute in float32
LOW = (torch.float16, torch.bfloat16)


def native(t: Optional[Tensor]) -> Any:
    """A NumPy (CPU) or CuPy (CUDA) view of ``t`` by to_native (contiguous first; no copy when it
    already is). bfloat16 has no DLPack/NumPy dtype: on the CPU it is handed over as
    ml_dtypes' bfloat16 (a zero-copy view of the same bits) when ml_dtypes is installed,
    otherwise (and on CUDA) it is widened to float32 here."""
    if t is None:
        return None
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        bf16 = _ml_bfloat16()
        if bf16 is None or t.is_cuda:
            return to_native(t.float())
        return to_native(t.view(torch.int16)).view(bf16)
    return to_native(t)


def _ml_bfloat16():
    try:
        import ml_dtypes
    except ImportError:
        return None
    return ml_dtypes.bfloat16


def tensor(a: Any, like: Tensor) -> Tensor:
    """The NumPy/CuPy result ``a`` as a tensor on ``like``'s device (zero-copy: from_numpy or
    DLPack)."""
    if isinstance(a, np.generic):  # a NumPy scalar (one row's reduction): its DLPack capsule is unusable
        a = np.asarray(a)
    if a.dtype.itemsize == 2 and a.dtype.name == "bfloat16":
        return torch.from_dlpack(a.view("int16")).view(torch.bfloat16).to(like.device)
    t = _to_torch(a)
    return t if t.is_cpu and like.is_cpu else t.to(like.device)  # (.to costs ~1 us even when it returns t)


def number_or_native(t: Tensor) -> Any:
    """A scalar parameter (gamma, a temperature) for the NumPy API: a 0-d CPU tensor as a Python
    number (the API's cheap scalar check instead of an array's), else native(t)."""
    return t.item() if t.dim() == 0 and t.is_cpu else native(t)


_scalars: "dict[tuple, Tensor]" = {}


def scalar_tensor(x: Any, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A Python number as a 0-d tensor for an op's tensor argument. In plain eager calls one
    tensor is kept per (number, dtype, device) and handed out again (torch.tensor costs ~5 us a
    call; the ops never write their inputs); otherwise (compiling, a mode, inference mode) a new
    one."""
    if not plain_eager() or type(x) is not float or len(_scalars) >= 64 or torch.is_inference_mode_enabled():
        # (an inference tensor cannot be saved for a later backward; a mode's tensor, a
        # FakeTensor, must not outlive it)
        return torch.tensor(x, dtype=dtype, device=device)
    key = (x.hex(), dtype, device)  # (0.0 == -0.0, but their tensors differ)
    t = _scalars.get(key)
    if t is None:
        t = _scalars[key] = torch.tensor(x, dtype=dtype, device=device)
    return t


def on_torch_stream(*tensors: Any) -> contextlib.AbstractContextManager:
    """For CUDA tensors: run the CuPy-launched kernels on torch's current stream of the first
    CUDA tensor's device, with that device current, so they are ordered with the surrounding
    torch work (and can be captured in a CUDA graph). A no-op context when no tensor is on CUDA."""
    t = next((x for x in tensors if isinstance(x, Tensor) and x.is_cuda), None)
    if t is None:
        return contextlib.nullcontext()
    import cupy

    dev = t.device.index if t.device.index is not None else torch.cuda.current_device()
    stack = contextlib.ExitStack()
    stack.enter_context(cupy.cuda.Device(dev))
    stack.enter_context(cupy.cuda.ExternalStream(torch.cuda.current_stream(dev).cuda_stream, device_id=dev))
    return stack


def empty(t: Optional[Tensor]) -> bool:
    return t is None or t.numel() == 0


def f32(t: Optional[Tensor]) -> Optional[Tensor]:
    """``t`` detached, in float32 if it is half precision (the kernels compute half in float32)."""
    if t is None:
        return None
    t = t.detach()
    return t.float() if t.dtype in LOW else t


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the kernels compute (and return reductions) in for inputs of ``dtype``."""
    return torch.float32 if dtype in LOW else dtype


# ---------------------------------------------------------------------------------------
# 64-bit keys as custom-op arguments. A schema ``int`` is int64, the package's keys, streams
# and offsets are unsigned 64-bit: the op takes the same bits as a signed value (``op_int``)
# and the implementation maps them back (``key``). Under torch.compile an ``int`` argument of
# the compiled function arrives as a SymInt (after the first recompile): it is passed through.
# ---------------------------------------------------------------------------------------
_TWO64 = 1 << 64


def op_int(value: int) -> int:
    """A [0, 2**64) integer as the int64 with the same bits."""
    return value - _TWO64 if value >= 1 << 63 else value


def key(value: int) -> int:
    """The unsigned 64-bit value of an op's int64 seed/stream/offset argument."""
    return int(value) % _TWO64


def seed_arg(seed: Any, name: str = "seed", eps: Any = None) -> Union[int, torch.SymInt]:
    """The seed of one wrapper call as an op argument: resolved once (``None`` draws a fresh
    key from the package generator), so the op's forward and backward share it. A call given
    its noise (``eps`` not None) draws none: ``None`` then takes no key (as the NumPy API)."""
    if seed is None and eps is not None:
        return 0
    if isinstance(seed, torch.SymInt):
        return seed
    if seed is None and torch.compiler.is_compiling():
        # (fullgraph=True reports this as an unsupported exception; otherwise dynamo breaks the
        # graph here and runs the call eagerly, where None draws a fresh key as it should)
        raise TypeError(
            f"{name}: under torch.compile pass an explicit integer {name} (an argument of "
            f"the compiled function, e.g. a step counter or pygenmod.torch.fresh_seed() "
            f"drawn outside it); {name}=None would be fixed into the graph as a constant"
        )
    return op_int(_fresh_key() if seed is None else resolve_seed(seed, name))


def fresh_seed() -> int:
    """A fresh key from the package generator (follows ``pygenmod.manual_seed``), in [0, 2**63)
    so that torch.compile can pass it to a compiled function as a dynamic int (a SymInt)."""
    return _fresh_key() >> 1


def int_arg(value: Any, name: str) -> Union[int, torch.SymInt]:
    """A stream / offset argument (an integer in [0, 2**64)) for an op."""
    if isinstance(value, torch.SymInt):
        return value
    return op_int(check_int_seed(value, name))
