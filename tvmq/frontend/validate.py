"""Checks on what a model file declares, shared by every importer: each tensor's
shape and quantization parameters, and, once imported, the graph's quantize and
dequantize constants and its outputs.

Files are trusted by nothing downstream: a NaN scale or a 2**31 dimension that got
past import would surface much later as a traceback in TVM or in fixed-point code.
Each check raises TvmqError naming the tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tvmq.errors import TvmqError
from tvmq.model import QuantParams, TensorSpec

# TVM indexes tensors with int32: no dimension, and no tensor, may reach 2**31 elements.
MAX_ELEMENTS = 2**31 - 1
INTEGER_DTYPES = ("int8", "uint8", "int16", "int32", "int64")


def check_shape(name: str, shape: Sequence[int], allow_empty: bool = False) -> None:
    """Every dimension a positive integer (or zero, for an empty tensor inside a
    graph) and the whole tensor indexable in int32."""
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1 - allow_empty:
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


def check_qdq_constants(mod, names: dict[str, str]) -> None:
    """Constant scales and zero points of every quantize/dequantize in `mod` are
    usable: whatever file they came from, nothing downstream divides by a NaN scale
    or clamps to a zero point outside its type. `names` maps Relax vars to nodes."""
    import tvm
    from tvm import relax

    def constant(expr) -> np.ndarray | None:
        if not isinstance(expr, tvm.ir.expr.Constant):
            return None
        value = expr.value
        return np.ravel(value.numpy() if hasattr(value, "numpy") else value)

    for _, func in mod.functions_items():
        if not isinstance(func, relax.Function) or not isinstance(func.body, relax.SeqExpr):
            continue
        for binding in (b for block in func.body.blocks for b in block.bindings):
            call = binding.value
            kind = getattr(getattr(call, "op", None), "name", None)
            if kind not in ("relax.quantize", "relax.dequantize"):
                continue
            data, scale, zero_point = call.args[:3]
            name = names.get(binding.var.name, binding.var.name)
            scales, zero_points = constant(scale), constant(zero_point)
            if scales is not None:
                weights = kind == "relax.dequantize" and constant(data) is not None
                check_scales(name, [float(v) for v in scales], allow_zero=weights)
            dtype = str(call.attrs.out_dtype if kind == "relax.quantize" else data.ty.dtype)
            if zero_points is not None and zero_points.size and dtype in INTEGER_DTYPES:
                info = np.iinfo(dtype)
                values = zero_points.astype(np.int64)
                if values.min() < info.min or values.max() > info.max:
                    raise TvmqError(
                        f"tensor '{name}': zero point {values.min()}..{values.max()} is "
                        f"outside {dtype} [{info.min}, {info.max}]"
                    )


def signature(mod) -> tuple[list, list]:
    """What `main` takes and returns: (shape, dtype) per static tensor, else its text."""
    from tvm import relax

    main = next((f for var, f in mod.functions_items() if var.name_hint == "main"), None)
    if not isinstance(main, relax.Function):
        raise TvmqError("module has no Relax function 'main'")
    returned = main.ret_ty.fields if isinstance(main.ret_ty, relax.TupleType) else [main.ret_ty]
    return [_described(p.ty) for p in main.params], [_described(t) for t in returned]


def _described(ty) -> tuple[list[int], str] | str:
    from tvm import relax

    values = getattr(getattr(ty, "shape", None), "values", None)
    if not isinstance(ty, relax.TensorType) or values is None:
        return str(ty)[:60]
    try:
        return [int(v) for v in values], str(ty.dtype)
    except TypeError:
        return str(ty)[:60]


def check_outputs(mod, outputs: Sequence[TensorSpec]) -> None:
    """The file's declared outputs are what the graph computes: the count, each
    dtype, and the rank and every fixed dimension above 1 where the file gives a
    shape (free dimensions may have been read as 1). A file that lies about them would
    size output buffers wrongly on every backend."""
    _, returned = signature(mod)
    if len(returned) != len(outputs):
        raise TvmqError(f"declares {len(outputs)} outputs, the graph computes {len(returned)}")
    for spec, actual in zip(outputs, returned, strict=True):
        if isinstance(actual, str):
            continue  # not a static tensor: nothing to compare
        shape, dtype = actual
        fixed = all(
            d == a or d == 1 or isinstance(d, str)  # a str dim is a free one, named
            for d, a in zip(spec.shape, shape, strict=False)
        )
        if dtype != spec.dtype or (spec.shape and (len(spec.shape) != len(shape) or not fixed)):
            raise TvmqError(
                f"output '{spec.name}' is declared {spec.dtype}{list(spec.shape)}, "
                f"the graph computes {dtype}{shape}"
            )
