"""MLAS's float arithmetic (onnxruntime's math library on x86-64), where a result must
match onnxruntime's bit for bit: its logistic is Eigen's rational polynomial on the
input clamped to [-18, 18], evaluated by an FMA3 kernel. Each fused multiply-add runs
here in float64, where the float32 product is exact; its sum is rounded twice (to
float64, then float32), which differs from the FMA's single rounding in about one
case in 2^29.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tvm import relax, te, tirx

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


def emit_logistic(bb: relax.BlockBuilder, x: relax.Expr) -> relax.Expr:
    """MlasComputeLogistic of a float32 tensor, as one kernel whose intermediate
    values are bound once: as separate Relax operators, the clamped input (read by
    every step of both polynomials) was inlined into each read, and building ddddocr's
    CRNN took 7x longer. The coefficients are a float32 tensor the kernel reads: as
    literals widened to float64, TVM's C code generator prints them with seven digits."""
    coefficients = relax.const(np.array(NUMERATOR + DENOMINATOR, np.float32))
    return bb.emit_te(
        lambda data, table: te.compute(
            data.shape, lambda *i: _logistic(data(*i), table), name="logistic"
        ),
        x,
        coefficients,
        primfunc_name_hint="mlas_logistic",
    )


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
