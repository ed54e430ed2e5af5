"""Dense-layer weights interleaved for the DSP cores' four-row kernel.

On Cortex-M4/M7/M33 the default schedule hands a dense layer's reduction four
output rows at a time to ``tvmq_dense_s8x4`` (``kernels/tvmq_dense.h``): each group
of four inputs is loaded and widened once for the four rows, and the four rows'
bytes of that group are one 16-byte LDM. That needs the weights of each block of
four rows interleaved by groups of four inputs, which this module does to the
constants after scheduling: the same bytes in another order, so flash is unchanged.

A kernel whose weights are not one constant [N, K] matrix with N a multiple of four
(a product of two activations) calls ``tvmq_dot_s8_1x4`` instead, which has the same
arguments and reads rows as they are.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm_ffi.structural import structural_map

from tvmq.backend.graph import CONSTANT, KernelGraph
from tvmq.backend.intrinsics import DENSE_KERNEL
from tvmq.backend.schedule import extern_calls

ROWS, GROUP = 4, 4  # rows per call, inputs per group (tvmq_dense.h)
PLAIN_KERNEL = "tvmq_dot_s8_1x4"  # the same arguments on row-major weights


def interleave_rows(weights: np.ndarray) -> np.ndarray:
    """[N, K] int8 weights (N a multiple of four) in the order tvmq_dense_s8x4 reads:
    per block of four rows, for each group g of four inputs the four rows' bytes
    4g..4g+3 one row after the other, then the K % 4 inputs left, row after row.
    The shape stays [N, K]; each block keeps the offset of its first row."""
    n, k = weights.shape
    blocks = weights.reshape(n // ROWS, ROWS, k)
    whole = k - k % GROUP
    groups = blocks[:, :, :whole].reshape(n // ROWS, ROWS, whole // GROUP, GROUP)
    interleaved = groups.transpose(0, 2, 1, 3).reshape(n // ROWS, ROWS * whole)
    tail = blocks[:, :, whole:].reshape(n // ROWS, ROWS * (k - whole))
    return np.concatenate([interleaved, tail], axis=1).reshape(n, k)


def calls_dense_kernel(func: tvm.tirx.PrimFunc) -> bool:
    return DENSE_KERNEL in extern_calls(func)


def interleave_dense_weights(graph: KernelGraph, functions: dict[str, tvm.tirx.PrimFunc]) -> int:
    """Interleave the weights of every kernel of `functions` (changed in place) that
    calls ``tvmq_dense_s8x4``, in `graph`; a kernel whose weights cannot be calls
    the row-major kernel instead. The number of kernels interleaved."""
    interleaved = 0
    for name, func in functions.items():
        if not calls_dense_kernel(func):
            continue
        position = _weight_position(graph, name)
        if position is None:
            functions[name] = _with_plain_kernel(func)
            continue
        graph.relayout_constant(name, position, "i4", interleave_rows)
        interleaved += 1
    return interleaved


def _weight_position(graph: KernelGraph, kernel: str) -> int | None:
    """The argument of `kernel` that is, in every call, one int8 constant [N, K] with
    N a multiple of four; None unless exactly one argument is."""
    steps = [step for step in graph.steps if step.kernel == kernel]

    def is_weights(position: int) -> bool:
        for step in steps:
            tensor = graph.tensors[step.args[position]]
            if tensor.kind != CONSTANT or tensor.value is None or tensor.dtype != "int8":
                return False
            if len(tensor.shape) != 2 or tensor.shape[0] % ROWS:
                return False
        return True

    positions = [p for p in range(len(steps[0].args)) if is_weights(p)] if steps else []
    return positions[0] if len(positions) == 1 else None


def _with_plain_kernel(func: tvm.tirx.PrimFunc) -> tvm.tirx.PrimFunc:
    def on_call(call):
        if call.op.name == "tirx.call_extern" and call.args[0].value == DENSE_KERNEL:
            return tvm.tirx.call_extern("int32", PLAIN_KERNEL, *call.args[1:])
        return call

    return func.with_body(structural_map(func.body, [(tvm.ir.expr.Call, on_call)]))
