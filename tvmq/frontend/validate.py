"""Checks on what a model file declares about a tensor, shared by every importer.

Files are trusted by nothing downstream: a NaN scale or a 2**31 dimension that got
past import would surface much later as a traceback in TVM or in fixed-point code.
Each check raises TvmqError naming the tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tvmq.errors import TvmqError
from tvmq.model import QuantParams

# TVM indexes tensors with int32: no dimension, and no tensor, may reach 2**31 elements.
MAX_ELEMENTS = 2**31 - 1
INTEGER_DTYPES = ("int8", "uint8", "int16", "int32", "int64")


def check_shape(name: str, shape: Sequence[int]) -> None:
    """Every dimension a positive integer and the whole tensor indexable in int32."""
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
            raise TvmqError(f"tensor '{name}': dimension {dim!r} in shape {list(shape)}")
    if math.prod(int(d) for d in shape) > MAX_ELEMENTS:
        raise TvmqError(f"tensor '{name}': shape {list(shape)} has 2**31 or more elements")


def check_scales(name: str, scales: Sequence[float], allow_zero: bool = False) -> None:
    """Scales finite and positive (zero too for constants, as an all-zero channel has)."""
    for scale in scales:
        if not math.isfinite(scale) or scale < 0 or (scale == 0 and not allow_zero):
            raise TvmqError(f"tensor '{name}': quantization scale {scale} is not a positive number")


def check_quant(
    name: str, quant: QuantParams, dtype: str, shape: Sequence[int], constant: bool
) -> None:
    """Scales valid, zero points inside `dtype`, and one scale per index of the axis
    (a 1-D tensor has one axis whatever it names: TFLite Micro ignores it there)."""
    check_scales(name, quant.scale, allow_zero=constant)
    if dtype in INTEGER_DTYPES:
        info = np.iinfo(dtype)
        for zero_point in quant.zero_point:
            if not info.min <= zero_point <= info.max:
                raise TvmqError(
                    f"tensor '{name}': zero point {zero_point} is outside {dtype} "
                    f"[{info.min}, {info.max}]"
                )
    if len(quant.zero_point) not in (1, len(quant.scale)):
        raise TvmqError(
            f"tensor '{name}': {len(quant.scale)} scales but {len(quant.zero_point)} zero points"
        )
    if quant.per_tensor:
        return
    axis = 0 if len(shape) == 1 else quant.axis
    if axis is None or not 0 <= axis < len(shape) or shape[axis] != len(quant.scale):
        raise TvmqError(
            f"tensor '{name}': {len(quant.scale)} scales along axis {quant.axis} "
            f"of shape {list(shape)}"
        )
