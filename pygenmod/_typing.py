"""Type aliases shared by the annotations of pygenmod's public API (docs/conventions.md#typing).

Everything here is importable at runtime (not only under TYPE_CHECKING) so that
``typing.get_type_hints`` resolves every public signature.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, Union, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "Array",
    "ArrayLike",
    "CemCovariance",
    "Clamp",
    "CoordOrder",
    "Coords",
    "CovarianceType",
    "DTypeLike",
    "EliteWeights",
    "EvaluationMethod",
    "GailRewardKind",
    "GMMInit",
    "Layout",
    "Likelihood",
    "LogProbPer",
    "MctsPolicy",
    "OnDegenerate",
    "QIs",
    "QNormalization",
    "Reduction",
    "RewardOn",
    "SeedLike",
    "Stop",
    "SupportsDLPack",
    "Device",
]


@runtime_checkable
class SupportsDLPack(Protocol):
    """An array that exports itself through DLPack (CuPy, PyTorch, JAX, ...)."""

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any: ...

    def __dlpack_device__(self) -> tuple[int, int]: ...


#: Anything array-like pygenmod accepts: NumPy arrays and what NumPy converts (nested sequences,
#: scalars, objects with ``__array__``), CuPy arrays and other DLPack producers (torch, JAX).
ArrayLike = Union[npt.ArrayLike, SupportsDLPack]

#: An array returned in the caller's array type (numpy.ndarray, cupy.ndarray, torch.Tensor, jax.Array);
#: ``Any`` because the type follows the principal input.
Array = Any

#: ``seed=``: None (package generator), an integer key, a numpy Generator/RandomState, or a JAX key.
SeedLike = Union[None, int, np.random.Generator, np.random.RandomState, Any]

DTypeLike = npt.DTypeLike

#: ``clamp=`` of the diagonal-Gaussian functions: ``(lo, hi)`` bounds of the scale parameter (None: open side).
Clamp = tuple[Union[float, None], Union[float, None]]

# String options (the values each function accepts, as checked by val.choice).
CovarianceType = Literal["full", "tied", "diag", "spherical"]
GMMInit = Literal["kmeans", "k-means++", "random_from_data", "random"]
LogProbPer = Literal["mixture", "component", "weighted"]
OnDegenerate = Literal["regularise", "raise"]
Stop = Literal["span", "sup"]
EvaluationMethod = Literal["iterative", "exact"]
RewardOn = Literal["exit", "entry"]
MctsPolicy = Literal["muzero", "gumbel", "uct"]
QNormalization = Literal["node", "tree"]
CemCovariance = Literal["diag", "full"]
EliteWeights = Literal["uniform", "rank"]
Reduction = Literal["mean", "sum", "none"]
GailRewardKind = Literal["log_d", "neg_log_one_minus_d"]
Likelihood = Literal["gaussian", "bernoulli", "categorical"]
Device = Literal["cpu", "cuda"]
Layout = Literal["NCHW", "NHWC"]  # spatial softmax: x is (B, C, H, W) or (B, H, W, C)
Coords = Literal["normalized", "pixel"]
CoordOrder = Literal["xy", "yx"]
QIs = Literal["reward", "cost"]  # categorical.pg_loss: what q_values measure
