"""onnxruntime's own float arithmetic, for graphs whose outputs depend on it bit for bit.

A graph quantized at run time (DynamicQuantizeLinear, DynamicQuantizeLSTM: what
onnxruntime's `quantize_dynamic` writes) rounds float activations to uint8 steps. An
activation one float step away from onnxruntime's can round to another step, and
the difference grows through every layer after it (ddddocr's CRNN: 0.09 on outputs
of 15 with TVM's exact sigmoid). In such graphs Sigmoid is computed as onnxruntime
computes it on x86-64: MLAS's FMA3 kernel, Eigen's rational polynomial on the input
clamped to [-18, 18]. Each fused multiply-add runs in float64, where the float32
product is exact; its sum is rounded twice (to float64, then float32), which differs
from the single rounding of an FMA in about one case in 2^29.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from tvm import relax, te, tirx

RUNTIME_QUANTIZERS = ("DynamicQuantizeLinear", "DynamicQuantizeLSTM")
# MLAS's MlasLogisticConstants (onnxruntime/core/mlas/lib/logistic.cpp).
BOUND = 18.0
NUMERATOR = (
    4.37031012579801e-11,
    1.15627324459942e-07,
    6.08574864600143e-05,
    8.51377133304701e-03,
    2.48287947061529e-01,
)
DENOMINATOR = (
    6.10247389755681e-13,
    5.76102136993427e-09,
    6.29106785017040e-06,
    1.70198817374094e-03,
    1.16817656904453e-01,
    9.93151921023180e-01,
)


def quantizes_at_run_time(graph: onnx.GraphProto) -> bool:
    return any(node.op_type in RUNTIME_QUANTIZERS for node in graph.node)


def logistic(bb: relax.BlockBuilder, inputs: Sequence, attrs: dict) -> relax.Expr | None:
    """onnxruntime's Sigmoid (MlasComputeLogistic) of a float32 tensor; None (TVM's
    converter) for other types. One kernel whose intermediate values are bound once:
    as separate Relax operators, the clamped input (read by every step of both
    polynomials) was inlined into each read, and building ddddocr took 7x longer.
    The coefficients are a float32 tensor the kernel reads: as literals widened to
    float64, TVM's C code generator prints them with seven digits."""
    x = bb.normalize(inputs[0])
    if x.ty.dtype != "float32":
        return None
    coefficients = relax.const(np.array(NUMERATOR + DENOMINATOR, np.float32))
    return bb.emit_te(
        lambda data, table: te.compute(
            data.shape, lambda *i: _logistic(data(*i), table), name="logistic"
        ),
        x,
        coefficients,
        primfunc_name_hint="mlas_logistic",
    )


CONVERTERS = {"Sigmoid": logistic}


def _logistic(value: tirx.PrimExpr, table: te.Tensor) -> tirx.PrimExpr:
    clamped = tirx.Var("clamped", "float32")
    squared = tirx.Var("squared", "float32")
    numerator = [table[k] for k in range(len(NUMERATOR))]
    denominator = [table[len(NUMERATOR) + k] for k in range(len(DENOMINATOR))]
    ratio = clamped * _horner(squared, numerator) / _horner(squared, denominator)
    body = tirx.max(ratio + _f32(0.5), _f32(0.0))
    bounded = tirx.min(tirx.max(value, _f32(-BOUND)), _f32(BOUND))
    return tirx.Let(clamped, bounded, tirx.Let(squared, clamped * clamped, body))


def _horner(x: tirx.PrimExpr, coefficients: Sequence[tirx.PrimExpr]) -> tirx.PrimExpr:
    """c0 x^n + ... + cn as MLAS's chain of fused multiply-adds (c0 first)."""
    total = _fused_multiply_add(x, coefficients[0], coefficients[1])
    for coefficient in coefficients[2:]:
        total = _fused_multiply_add(x, total, coefficient)
    return total


def _fused_multiply_add(a: tirx.PrimExpr, b: tirx.PrimExpr, c: tirx.PrimExpr) -> tirx.PrimExpr:
    wide = [tirx.Cast("float64", v) for v in (a, b, c)]
    return tirx.Cast("float32", wide[0] * wide[1] + wide[2])


def _f32(value: float) -> tirx.PrimExpr:
    return tirx.const(value, "float32")
