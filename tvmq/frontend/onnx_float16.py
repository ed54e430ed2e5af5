"""ONNX graphs computed in float16, promoted to float32 at import.

Exporters write half-precision models (tf2onnx's mixed precision, torch's `.half()`):
float16 weights and float16 activations throughout. Cortex-M cores other than the
M55 have no float16 arithmetic, and tvmq quantizes float32 ops only, so such a graph
computes in float32 here: float16 initializers and Constants become float32, Casts
to float16 cast to float32, and the graph's float16 inputs and outputs keep their
type through a Cast at either end. The values are float32 computations of the
same network, closer to its real-number result than onnxruntime's float16 kernels.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

FLOAT16, FLOAT = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT


def promote_float16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """`proto` computing in float32 wherever it computed in float16 (the same model
    when it has no float16 computation)."""
    if not _computes_in_float16(proto.graph):
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    _promote_graph(graph)
    renamed = {}
    for value in graph.input:
        if _is_float16(value):
            renamed[value.name] = f"{value.name}__float32"
    _rename_inputs(graph, renamed)
    casts_in = [
        helper.make_node("Cast", [name], [new], to=FLOAT, name=new) for name, new in renamed.items()
    ]
    casts_out = []
    for value in graph.output:
        if _is_float16(value):
            inner = f"{value.name}__float32"
            _rename_outputs(graph, {value.name: inner})
            casts_out.append(
                helper.make_node("Cast", [inner], [value.name], to=FLOAT16, name=inner)
            )
    nodes = [*casts_in, *graph.node, *casts_out]
    del graph.node[:]
    graph.node.extend(nodes)
    return out


def _is_float16(value: onnx.ValueInfoProto) -> bool:
    return value.type.tensor_type.elem_type == FLOAT16


def _computes_in_float16(graph: onnx.GraphProto) -> bool:
    """Float16 values flow between its ops (not just float16 weights cast up)."""
    if any(_is_float16(v) for v in (*graph.input, *graph.output, *graph.value_info)):
        return True
    return any(
        node.op_type == "Cast" and any(a.name == "to" and a.i == FLOAT16 for a in node.attribute)
        for node in graph.node
    )


def _promote_graph(graph: onnx.GraphProto) -> None:
    """Initializers, value_info, Constants and Casts of `graph` and its subgraphs."""
    for index, tensor in enumerate(graph.initializer):
        if tensor.data_type == FLOAT16:
            graph.initializer[index].CopyFrom(_float32(tensor))
    for value in graph.value_info:
        if _is_float16(value):
            value.type.tensor_type.elem_type = FLOAT
    for node in graph.node:
        for attribute in node.attribute:
            if node.op_type in ("Cast", "CastLike") and attribute.name == "to":
                attribute.i = FLOAT if attribute.i == FLOAT16 else attribute.i
            if attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == FLOAT16:
                attribute.t.CopyFrom(_float32(attribute.t))
            for sub in (
                (attribute.g, *attribute.graphs) if attribute.HasField("g") else attribute.graphs
            ):
                _promote_graph(sub)
                for value in (*sub.input, *sub.output):
                    if _is_float16(value):
                        value.type.tensor_type.elem_type = FLOAT


def _subgraphs(attribute: onnx.AttributeProto) -> list[onnx.GraphProto]:
    return [attribute.g, *attribute.graphs] if attribute.HasField("g") else list(attribute.graphs)


def _float32(tensor: onnx.TensorProto) -> onnx.TensorProto:
    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)


def _rename_inputs(graph: onnx.GraphProto, renamed: dict[str, str]) -> None:
    """Every read of a renamed value, in subgraphs too."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)
        for attribute in node.attribute:
            for sub in (
                (attribute.g, *attribute.graphs) if attribute.HasField("g") else attribute.graphs
            ):
                _rename_inputs(sub, renamed)


def _rename_outputs(graph: onnx.GraphProto, renamed: dict[str, str]) -> None:
    """The producer of a renamed value, and every read of it."""
    for node in graph.node:
        for i, name in enumerate(node.output):
            node.output[i] = renamed.get(name, name)
    _rename_inputs(graph, renamed)
