"""Relax constants as numbers: a constant's values, and expressions over constants
evaluated at compile time by TVM's own kernels (LegalizeOps then FoldConstant),
what an importer or a gradient needs to know as numbers (a reshape's computed
target, a resize's interpolation weights)."""

from __future__ import annotations

import numpy as np


def constant_array(expr) -> np.ndarray | None:
    """The values of a Relax tensor constant, or None for any other expression."""
    from tvm.ir.expr import Constant

    value = expr.value if isinstance(expr, Constant) else None
    return value.numpy() if hasattr(value, "numpy") else None


def evaluate_constant(expr) -> np.ndarray | None:
    """The value of `expr`, an expression over constants alone, or None when it does
    not fold to one constant."""
    from tvm import relax
    from tvm.ir.expr import Constant

    builder = relax.BlockBuilder()
    with builder.function("main", []):
        with builder.dataflow():
            out = builder.emit_output(expr)
        builder.emit_func_output(out)
    mod = relax.transform.LegalizeOps()(builder.get())
    body = relax.transform.FoldConstant()(mod)["main"].body.body
    return body.value.numpy() if isinstance(body, Constant) else None
