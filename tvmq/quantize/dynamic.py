"""Dynamic quantization: an activation's scale and zero point computed per inference.

The arithmetic is ONNX Runtime's DynamicQuantizeLinear (what its quantize_dynamic
inserts), so tvmq's dynamic models can be checked against it: the range is the
tensor's min and max widened to include zero, scale = (max - min) / 255 (1 when the
tensor is all zeros), zero point = round(-min / scale) halves away from zero, values
rounded half to even. ONNX Runtime keeps the result in uint8; tvmq holds the same
integers minus 128 in int8, which leaves every product and sum unchanged.
"""

from __future__ import annotations

from tvm import relax

LEVELS = 255.0
INT8_OFFSET = 128.0


def f32(value: float) -> relax.Constant:
    return relax.const(value, "float32")


def emit_dynamic_range(
    builder: relax.BlockBuilder, x: relax.Expr, name: str
) -> tuple[relax.Var, relax.Var]:
    """x's minimum widened to include zero, and the scale (max - min) / 255 of the
    range widened so (1 when x is all zeros), both computed at run time."""
    low = builder.emit(relax.op.minimum(relax.op.min(x), f32(0.0)), f"{name}_min")
    high = builder.emit(relax.op.maximum(relax.op.max(x), f32(0.0)), f"{name}_max")
    span = builder.emit(relax.op.subtract(high, low))
    scale = builder.emit(
        relax.op.where(
            relax.op.equal(span, f32(0.0)), f32(1.0), relax.op.divide(span, f32(LEVELS))
        ),
        f"{name}_scale",
    )
    return low, scale


def emit_dynamic_qdq(builder: relax.BlockBuilder, x: relax.Expr, name: str) -> relax.Var:
    """Emit ``dequantize(quantize(x))`` with parameters computed from `x` at run time."""
    low, scale = emit_dynamic_range(builder, x, name)
    # -min / scale is in [0, 255]: adding a half then flooring rounds halves away from zero.
    unsigned = relax.op.floor(
        relax.op.add(
            relax.op.clip(relax.op.negative(relax.op.divide(low, scale)), 0, 255), f32(0.5)
        )
    )
    zero_point = builder.emit(
        relax.op.astype(relax.op.subtract(unsigned, f32(INT8_OFFSET)), "int32"), f"{name}_zp"
    )
    quantized = builder.emit(relax.op.quantize(x, scale, zero_point, out_dtype="int8"), f"{name}_q")
    return builder.emit(
        relax.op.dequantize(quantized, scale, zero_point, out_dtype="float32"), f"{name}_dq"
    )
