"""Activations that both importers write in one form, the one the quantizer's
annotate and realize passes recognise."""

from __future__ import annotations

from tvm import relax


def prelu(x: relax.Expr, slope: relax.Expr) -> relax.Expr:
    """``maximum(x, 0) + minimum(x, 0) * slope``: exact in float (one side adds a
    zero), as TFLite's reference_ops::BroadcastPrelu4DSlow and ONNX PRelu; the slope
    broadcast by the multiply, not stored at the activation's size as TVM's
    converters of both formats do; every op of it has a layout rule, so
    channels_last carries it to NHWC whole (``where`` has none)."""
    zero = relax.const(0.0, "float32")
    negative = relax.op.multiply(relax.op.minimum(x, zero), slope)
    return relax.op.add(relax.op.maximum(x, zero), negative)
