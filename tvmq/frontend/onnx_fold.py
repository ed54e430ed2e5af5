"""Shape arithmetic folded into constants before the Relax import.

Exporters (paddle2onnx, torch.onnx) compute a Reshape's target from the tensor's
own shape: Shape -> Slice -> Cast -> Concat -> Reshape. TVM's importer turns
that chain into tensor ops and then refuses a Reshape whose shape is a tensor.
tvmq compiles static shapes, so every Shape of a tensor whose dims are known is a
constant, and so is everything computed from constants alone: each such node is
evaluated here (ONNX's reference evaluator) and replaced by an initializer.
Nodes on large constants (weights) are left to the importer.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

SMALL = 1024  # elements: shape-sized values, never weights


def fold_shape_computations(
    proto: onnx.ModelProto, input_shapes: dict[str, list[int]]
) -> onnx.ModelProto:
    """`proto` with static Shape nodes and the small constant arithmetic after them
    replaced by initializers (the same model when there is nothing to fold).
    `input_shapes` are the inputs' fixed shapes (those --shape gave included), from
    which ONNX's shape inference derives the inner tensors' shapes."""
    graph = proto.graph
    if not any(node.op_type == "Shape" for node in graph.node):
        return proto
    shapes = _static_shapes(_inferred(proto, input_shapes).graph)
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    folded: dict[str, np.ndarray] = {}
    kept = []
    for node in graph.node:
        result = _evaluate(node, values, shapes, proto.opset_import)
        if result is None:
            kept.append(node)
            continue
        for name, value in zip(node.output, result, strict=True):
            values[name] = folded[name] = value
    if not folded:
        return proto
    used = {name for node in kept for name in node.input} | {v.name for v in graph.output}
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    del out.graph.node[:]
    out.graph.node.extend(kept)
    out.graph.initializer.extend(
        numpy_helper.from_array(np.asarray(value), name)
        for name, value in folded.items()
        if name in used
    )
    return out


def _inferred(proto: onnx.ModelProto, input_shapes: dict[str, list[int]]) -> onnx.ModelProto:
    """A copy of `proto` at `input_shapes`, its value_info filled in where ONNX's
    shape inference can (the model as it was where inference fails)."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    for value in fixed.graph.input:
        if value.name in input_shapes:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, input_shapes[value.name], strict=False):
                dim.Clear()
                dim.dim_value = int(size)
    try:
        return onnx.shape_inference.infer_shapes(fixed)
    except Exception:  # an op inference rejects: fold what the file states
        return fixed


def _static_shapes(graph: onnx.GraphProto) -> dict[str, list[int]]:
    shapes = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    return shapes


def _evaluate(node, values, shapes, opsets) -> list[np.ndarray] | None:
    """The outputs of `node` when they are constants worth folding, else None."""
    if node.domain not in ("", "ai.onnx") or node.op_type in ("If", "Loop", "Scan"):
        return None
    if node.op_type == "Shape":
        shape = shapes.get(node.input[0])
        if shape is None:
            return None
        attrs = {a.name: a.i for a in node.attribute}
        return [np.array(shape[attrs.get("start", 0) : attrs.get("end")], np.int64)]
    inputs = [name for name in node.input if name]
    if node.op_type == "Constant":
        # Kept for the importer, which reads it itself; its value feeds folding.
        values.update(zip(node.output, _run(node, [], values, opsets) or [], strict=False))
        return None
    if not inputs or any(name not in values for name in inputs):
        return None
    if any(np.asarray(values[name]).size > SMALL for name in inputs):
        return None
    results = _run(node, inputs, values, opsets)
    if results is None or any(r.size > SMALL for r in results):
        return None
    return results


def _run(node, inputs: list[str], values, opsets) -> list[np.ndarray] | None:
    """`node` evaluated by ONNX's reference implementation (None if it cannot be:
    an op or a type the evaluator lacks stays for the importer)."""
    names = list(dict.fromkeys(inputs))
    try:
        graph = helper.make_graph(
            [node],
            "fold",
            [
                helper.make_tensor_value_info(
                    name, helper.np_dtype_to_tensor_dtype(np.asarray(values[name]).dtype), None
                )
                for name in names
            ],
            [
                helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None)
                for name in node.output
            ],
        )
        model = helper.make_model(graph, opset_imports=opsets)
        results = ReferenceEvaluator(model).run(None, {name: values[name] for name in names})
    except Exception:
        return None
    return [np.asarray(r) for r in results]
