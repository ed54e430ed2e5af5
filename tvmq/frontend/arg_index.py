"""The index an ArgMax/ArgMin returns where every value is the extreme of its type.

TVM's argmax (argmin) starts from the dtype's lowest (highest) value at index -1 and
moves on a strict comparison, so a reduction whose values all equal that extreme
(an int8 row of -128, a float row of -inf) returns -1, and ONNX's
`select_last_index`, computed on the flipped data, returns the axis' extent. TFLite
and onnxruntime return the first (last) index there. Both wrong values lie just
outside [0, extent - 1], and every other result inside it, so clipping into that
range is the exact mend.
"""

from __future__ import annotations

from tvm import relax


def valid_arg_index(index: relax.Expr, data: relax.Expr, axis: int) -> relax.Expr:
    """`index` (an argmax/argmin of `data` over `axis`) clipped into the axis."""
    extent = int(data.ty.shape[axis])
    return relax.op.clip(index, 0, extent - 1)
