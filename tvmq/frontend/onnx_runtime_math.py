"""onnxruntime's own float arithmetic, for graphs whose outputs depend on it bit for bit.

A graph quantized at run time (DynamicQuantizeLinear, DynamicQuantizeLSTM: what
onnxruntime's `quantize_dynamic` writes) rounds float activations to uint8 steps. An
activation one float step away from onnxruntime's can round to another step, and
the difference grows through every layer after it (ddddocr's CRNN: 0.09 on outputs
of 15 with TVM's exact sigmoid). In such graphs Sigmoid is computed as onnxruntime
computes it (:mod:`tvmq.quantize.mlas`).
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx
from tvm import relax

from tvmq.quantize.mlas import emit_logistic

RUNTIME_QUANTIZERS = ("DynamicQuantizeLinear", "DynamicQuantizeLSTM")


def quantizes_at_run_time(graph: onnx.GraphProto) -> bool:
    return any(node.op_type in RUNTIME_QUANTIZERS for node in graph.node)


def logistic(bb: relax.BlockBuilder, inputs: Sequence, attrs: dict) -> relax.Expr | None:
    """onnxruntime's Sigmoid of a float32 tensor; None (TVM's converter) for other types."""
    x = bb.normalize(inputs[0])
    if x.ty.dtype != "float32":
        return None
    return emit_logistic(bb, x)


CONVERTERS = {"Sigmoid": logistic}
