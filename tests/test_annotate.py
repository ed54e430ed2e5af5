"""Quantization annotation of graphs whose weights are computed from constants."""

from __future__ import annotations

import numpy as np
from tvm import relax

from tvmq.quantize.annotate import annotate


def test_sum_of_weight_slices_is_a_constant_not_an_activation():
    """(x + x) + (w[0] + w[1]): the second add works on slices of one constant (as
    an importer's bias halves are) and is no quantized op (it was, and annotation
    failed looking for the constant among the graph's tensors); the first one is."""
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 8), "float32"))
    weights = relax.const(np.arange(16, dtype=np.float32).reshape(2, 8))
    with builder.function("main", [x]):
        with builder.dataflow():
            halves = [
                builder.emit(relax.op.strided_slice(weights, [0], [i], [i + 1])) for i in (0, 1)
            ]
            bias = builder.emit(relax.op.add(*halves))
            twice = builder.emit(relax.op.add(x, x))
            out = builder.emit_output(relax.op.add(twice, bias))
        builder.emit_func_output(out)
    annotation = annotate(builder.get())
    assert [(op.kind, op.name) for op in annotation.ops] == [("add", twice.name)]
