"""ONNX 1-D convolutions (Conv and ConvInteger on [N, C, W]) widened to 2-D at import.

TVM imports a 1-D Conv as nn.conv1d, which tvmq's quantizer, its integer and
Cortex-M kernels and the training engine's gradients know nothing of: a 1-D CNN
(EEG and audio models, a mel front end written as convolutions) stayed a float
model after quantization and could not be fine-tuned. Widened as TFLite's converter
widens Keras's Conv1D: the input gains a height of 1 (Unsqueeze), the weights a
kernel height of 1, the attributes a leading 1 (strides, dilations, kernel_shape)
or 0 (pads), and the output loses the height again (Squeeze). The sums are the same.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

CONVOLUTIONS = ("Conv", "ConvInteger")
HEIGHT_AXIS = 2
AXES_NAME = "tvmq/conv1d_height_axis"
# Opset from which Unsqueeze and Squeeze read their axes from an input.
AXES_AS_INPUT = 13


def widen_1d_convolutions(proto: onnx.ModelProto) -> onnx.ModelProto:
    """`proto` with its 1-D convolutions as 2-D ones (the same model when it has none)."""
    ranks = _ranks(proto.graph)
    if not any(_is_1d(node, ranks) for node in proto.graph.node):
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    opset = max(
        (o.version for o in out.opset_import if o.domain in ("", "ai.onnx")), default=AXES_AS_INPUT
    )
    if opset >= AXES_AS_INPUT:
        axes = np.array([HEIGHT_AXIS], np.int64)
        graph.initializer.append(numpy_helper.from_array(axes, AXES_NAME))
    initializers = {t.name: t for t in graph.initializer}
    nodes, widened = [], set()
    for node in graph.node:
        if not _is_1d(node, ranks):
            nodes.append(node)
            continue
        name = node.name or node.output[0]
        data, weights = node.input[0], node.input[1]
        wide_data = f"{name}/wide_input"
        nodes.append(_unsqueeze(data, wide_data, f"{name}/widen_input", opset))
        wide_weights = f"{weights}/wide"
        if weights in initializers:
            widened.add(weights)
            if wide_weights not in initializers:
                array = numpy_helper.to_array(initializers[weights])
                tensor = numpy_helper.from_array(
                    array.reshape(array.shape[0], array.shape[1], 1, array.shape[2]), wide_weights
                )
                graph.initializer.append(tensor)
                initializers[wide_weights] = tensor
        else:
            nodes.append(_unsqueeze(weights, wide_weights, f"{name}/widen_weights", opset))
        wide = onnx.NodeProto()
        wide.CopyFrom(node)
        wide.input[0], wide.input[1] = wide_data, wide_weights
        wide.output[0] = f"{name}/wide_output"
        del wide.attribute[:]
        wide.attribute.extend(_widened(a) for a in node.attribute)
        nodes.append(wide)
        nodes.append(_squeeze(wide.output[0], node.output[0], f"{name}/narrow_output", opset))
    del graph.node[:]
    graph.node.extend(nodes)
    read = {name for node in graph.node for name in node.input} | {v.name for v in graph.output}
    replaced = {name for name in widened if name not in read}  # not the weights twice
    for listed in (graph.initializer, graph.input):  # IR < 4 lists weights as inputs too
        kept = [value for value in listed if value.name not in replaced]
        del listed[:]
        listed.extend(kept)
    return out


def _ranks(graph: onnx.GraphProto) -> dict[str, int]:
    ranks = {t.name: len(t.dims) for t in graph.initializer}
    for value in (*graph.input, *graph.value_info):
        if value.type.tensor_type.HasField("shape"):
            ranks.setdefault(value.name, len(value.type.tensor_type.shape.dim))
    return ranks


def _is_1d(node: onnx.NodeProto, ranks: dict[str, int]) -> bool:
    return (
        node.op_type in CONVOLUTIONS
        and node.domain in ("", "ai.onnx")
        and len(node.input) >= 2
        and ranks.get(node.input[1]) == 3
        and ranks.get(node.input[0], 3) == 3
    )


def _widened(attribute: onnx.AttributeProto) -> onnx.AttributeProto:
    value = helper.get_attribute_value(attribute)
    if attribute.name in ("kernel_shape", "strides", "dilations"):
        return helper.make_attribute(attribute.name, [1, *value])
    if attribute.name == "pads":  # [begin, end] -> [top, begin, bottom, end]
        return helper.make_attribute(attribute.name, [0, value[0], 0, value[1]])
    return attribute


def _unsqueeze(source: str, target: str, name: str, opset: int) -> onnx.NodeProto:
    if opset >= AXES_AS_INPUT:
        return helper.make_node("Unsqueeze", [source, AXES_NAME], [target], name=name)
    return helper.make_node("Unsqueeze", [source], [target], name=name, axes=[HEIGHT_AXIS])


def _squeeze(source: str, target: str, name: str, opset: int) -> onnx.NodeProto:
    if opset >= AXES_AS_INPUT:
        return helper.make_node("Squeeze", [source, AXES_NAME], [target], name=name)
    return helper.make_node("Squeeze", [source], [target], name=name, axes=[HEIGHT_AXIS])
