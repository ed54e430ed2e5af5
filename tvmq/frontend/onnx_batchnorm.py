"""ONNX BatchNormalization (inference) folded at import.

Exporters leave a BatchNormalization after each convolution (paddle2onnx, older
torch.onnx, keras2onnx). TVM imports it as nn.batch_norm, which has no gradient and
no integer kernel: a quantized model kept a float island after every convolution
(35 in PP-OCR's direction classifier), and fine-tuning refused the model. Folded,
as TFLite's converter and onnxruntime's graph optimizer fold it: after a Conv whose
weights are constants and whose output feeds only the BatchNormalization, into
the Conv's weights and bias (w * s per output channel, (b - mean) * s + beta, with
s = scale / sqrt(var + epsilon)); elsewhere into a Mul and an Add by constants.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def fold_batch_norms(proto: onnx.ModelProto) -> onnx.ModelProto:
    """`proto` without inference BatchNormalization nodes whose parameters are
    constants (the same model when it has none)."""
    graph = proto.graph
    if not any(node.op_type == "BatchNormalization" for node in graph.node):
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    values = {t.name: t for t in graph.initializer}
    ranks = {
        v.name: len(v.type.tensor_type.shape.dim)
        for v in (*graph.input, *graph.value_info)
        if v.type.tensor_type.HasField("shape")
    }
    producers = {name: node for node in graph.node for name in node.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    for value in graph.output:
        readers[value.name] = readers.get(value.name, 0) + 1
    kept, added = [], []
    for node in graph.node:
        folded = _folded(node, values, producers, readers, ranks)
        if folded is None:
            kept.append(node)
            continue
        replaced, nodes, constants = folded
        if replaced is not None:  # the Conv now computes the BatchNormalization's output
            kept.remove(replaced)
        kept.extend(nodes)
        added.extend(constants)
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in kept for name in node.input}
    initializers = [t for t in graph.initializer if t.name in used] + added
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    return out


def _folded(node, values, producers, readers, ranks):
    """(the Conv the BatchNormalization folds into or None, the nodes that replace
    them, new constants), or None to keep `node`."""
    if node.op_type != "BatchNormalization" or node.domain not in ("", "ai.onnx"):
        return None
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attributes.get("training_mode", 0) or len(node.output) != 1:
        return None
    params = [values.get(name) for name in node.input[1:5]]
    if len(node.input) < 5 or any(p is None for p in params):
        return None
    scale, shift, mean, variance = (numpy_helper.to_array(p).astype(np.float64) for p in params)
    multiplier = scale / np.sqrt(variance + float(attributes.get("epsilon", 1e-5)))
    offset = shift - mean * multiplier
    x, (y,) = node.input[0], node.output
    conv = producers.get(x)
    if _foldable_conv(conv, values) and readers.get(x) == 1:
        weights = numpy_helper.to_array(values[conv.input[1]])
        bias = (
            numpy_helper.to_array(values[conv.input[2]]).astype(np.float64)
            if len(conv.input) > 2 and conv.input[2]
            else np.zeros(weights.shape[0])
        )
        scaled = weights * multiplier.reshape(-1, *[1] * (weights.ndim - 1))
        names = (f"{node.name or y}/folded_weight", f"{node.name or y}/folded_bias")
        constants = [
            numpy_helper.from_array(scaled.astype(weights.dtype), names[0]),
            numpy_helper.from_array((bias * multiplier + offset).astype(weights.dtype), names[1]),
        ]
        replacement = onnx.NodeProto()
        replacement.CopyFrom(conv)
        del replacement.input[:]
        replacement.input.extend([conv.input[0], *names])
        del replacement.output[:]
        replacement.output.append(y)
        return conv, [replacement], constants
    rank = ranks.get(x)
    if rank is None or rank < 2:
        return None
    shape = [-1] + [1] * (rank - 2)  # the channel axis is 1
    names = (f"{node.name or y}/scale", f"{node.name or y}/shift", f"{node.name or y}/scaled")
    constants = [
        numpy_helper.from_array(multiplier.reshape(shape).astype(np.float32), names[0]),
        numpy_helper.from_array(offset.reshape(shape).astype(np.float32), names[1]),
    ]
    nodes = [
        helper.make_node("Mul", [x, names[0]], [names[2]], name=names[2]),
        helper.make_node("Add", [names[2], names[1]], [y], name=node.name or y),
    ]
    return None, nodes, constants


def _foldable_conv(conv, values) -> bool:
    """A Conv whose weights (and bias, if any) are constants, output channels first."""
    if conv is None or conv.op_type != "Conv" or conv.domain not in ("", "ai.onnx"):
        return False
    constant = [name in values for name in conv.input[1:] if name]
    return len(conv.input) >= 2 and all(constant) and len(conv.output) == 1
