"""Constants folded before the Relax import: shape arithmetic, static `If`s and
weights computed from constants.

Exporters (paddle2onnx, torch.onnx) compute a Reshape's target from the tensor's
own shape: Shape -> Slice -> Cast -> Concat -> Reshape. TVM's importer turns
that chain into tensor ops and then refuses a Reshape whose shape is a tensor.
tvmq compiles static shapes, so every Shape of a tensor whose dims are known is a
constant, and so is everything computed from constants alone: each such node is
evaluated here (ONNX's reference evaluator) and replaced by an initializer.
torch.onnx also guards code on shapes with `If` (batch size 1 or not): an `If`
whose condition folds is replaced by the branch it takes, which is folded in turn;
one whose condition depends on the data (a second stage run when the first fires)
becomes both branches and a Where, where their outputs agree in shape and type.
Concat drops constant operands with no elements. Weights computed from constants
(an fp16 weight Cast to float32, LSTM gates sliced and reordered) become
initializers too, so they count as parameters and quantize. Integer
DequantizeLinear/QuantizeLinear stay: they are a QDQ model's quantization, which
the importer reads.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

QDQ = ("QuantizeLinear", "DequantizeLinear")
SMALL = 1024  # elements: shape-sized values, never weights


def fold_constants(proto: onnx.ModelProto, input_shapes: dict[str, list[int]]) -> onnx.ModelProto:
    """`proto` with static Shape nodes, `If`s on constant conditions and every node
    computed from constants alone replaced by initializers (the same model when
    there is nothing to fold). `input_shapes` are the inputs' fixed shapes (those
    --shape gave included), from which ONNX's shape inference derives the inner
    tensors' shapes. Repeats while a pass changed the graph: an inlined `If` may hold
    more, and a folded Reshape target gives the next Shape a static input."""
    while True:
        proto, changed = _fold_once(proto, input_shapes)
        if not changed:
            return proto


def _fold_once(
    proto: onnx.ModelProto, input_shapes: dict[str, list[int]]
) -> tuple[onnx.ModelProto, bool]:
    """One pass over the nodes: (the folded model, whether it changed)."""
    graph = proto.graph
    shapes = _static_shapes(_inferred(proto, input_shapes).graph)
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    values_before = set(values)
    folded: dict[str, np.ndarray] = {}
    kept: list[onnx.NodeProto] = []
    rewritten = False
    for node in graph.node:
        inlining = _inlined_if(node, values)
        if inlining is not None:
            rewritten = True
            nodes, constants = inlining
            for tensor in constants:
                values[tensor.name] = folded[tensor.name] = numpy_helper.to_array(tensor)
            kept.extend(nodes)
            continue
        trimmed = _without_empty_operands(node, values)
        if trimmed is not None:
            rewritten, node = True, trimmed
        result = _evaluate(node, values, shapes, proto.opset_import)
        if result is None:
            kept.append(node)
            continue
        for name, value in zip(node.output, result, strict=True):
            values[name] = folded[name] = value
    if not folded and not rewritten:
        return proto, False
    used = {name for node in kept for name in _inputs(node)} | {v.name for v in graph.output}
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    del out.graph.node[:]
    out.graph.node.extend(kept)
    # Weights only the folded nodes read are gone with them, not counted twice.
    used |= {v.name for v in graph.input}
    del out.graph.initializer[:]
    out.graph.initializer.extend(t for t in graph.initializer if t.name in used)
    out.graph.initializer.extend(
        numpy_helper.from_array(np.asarray(value), name)
        for name, value in folded.items()
        if name in used and name not in values_before
    )
    return out, True


def _inputs(node: onnx.NodeProto) -> set[str]:
    """The names `node` reads, those its subgraphs read from outside included."""
    names = set(node.input)
    for attribute in node.attribute:
        for graph in (attribute.g, *attribute.graphs):
            for inner in graph.node:
                names |= _inputs(inner)
    return names


def _without_empty_operands(node: onnx.NodeProto, values) -> onnx.NodeProto | None:
    """A Concat without its constant operands of no elements (an exporter's empty
    tensor beside an activation: nothing to join, and an empty constant that TVM's
    module serialization cannot read back), or None when it has none."""
    if node.op_type != "Concat" or node.domain not in ("", "ai.onnx"):
        return None
    kept = [name for name in node.input if name not in values or values[name].size]
    if len(kept) in (0, len(node.input)):
        return None
    trimmed = onnx.NodeProto()
    trimmed.CopyFrom(node)
    del trimmed.input[:]
    trimmed.input.extend(kept)
    return trimmed


def _inlined_if(
    node: onnx.NodeProto, values
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]] | None:
    """An `If` as plain nodes and the constants they need, or None to keep it.

    On a constant condition, the branch it takes. On a computed one, both branches
    and a Where per output, when their outputs have one static shape and type and
    their names do not clash: ahead-of-time code has no control flow, and a select
    of two side-effect-free branches gives what the `If` gives (both are computed)."""
    if node.op_type != "If" or node.domain not in ("", "ai.onnx"):
        return None
    branches = {a.name: a.g for a in node.attribute}
    condition = values.get(node.input[0])
    if condition is not None and np.asarray(condition).size == 1:
        taken = branches["then_branch" if np.asarray(condition).item() else "else_branch"]
        identities = [
            helper.make_node("Identity", [inner.name], [outer], name=f"{node.name}/{outer}")
            for inner, outer in zip(taken.output, node.output, strict=True)
        ]
        return [*taken.node, *identities], list(taken.initializer)
    then, other = branches["then_branch"], branches["else_branch"]
    if not _selectable(then, other):
        return None
    scalar = f"{node.name}/scalar_shape"
    flag = f"{node.name}/condition"
    nodes = [
        *then.node,
        *other.node,
        helper.make_node("Reshape", [node.input[0], scalar], [flag], name=flag),
    ]
    nodes.extend(
        helper.make_node("Where", [flag, a.name, b.name], [outer], name=f"{node.name}/{outer}")
        for a, b, outer in zip(then.output, other.output, node.output, strict=True)
    )
    shape = numpy_helper.from_array(np.zeros(0, np.int64), scalar)
    return nodes, [*then.initializer, *other.initializer, shape]


def _selectable(then: onnx.GraphProto, other: onnx.GraphProto) -> bool:
    """Both branches give outputs of the same static shapes and types, and name
    their values apart (so that both can be inlined side by side)."""

    def made(graph: onnx.GraphProto) -> set[str]:
        return {name for inner in graph.node for name in inner.output} | {
            t.name for t in graph.initializer
        }

    if made(then) & made(other) or len(then.output) != len(other.output):
        return False
    pairs = zip(then.output, other.output, strict=True)
    types = [(_static_type(a), _static_type(b)) for a, b in pairs]
    return all(a is not None and a == b for a, b in types)


def _static_type(value: onnx.ValueInfoProto) -> tuple[int, list[int]] | None:
    """(element type, dims) of a value whose shape is declared and static, else None."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape") or not all(d.HasField("dim_value") for d in tensor.shape.dim):
        return None
    return tensor.elem_type, [d.dim_value for d in tensor.shape.dim]


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
    if node.op_type == "Constant":  # from a branch: numbers become initializers
        results = _run(node, [], values, opsets) or []
        if all(r.dtype.kind in "biuf" for r in results):
            return results or None
        values.update(zip(node.output, results, strict=False))  # read by the importer
        return None
    if not inputs or any(name not in values for name in inputs):
        return None
    if node.op_type in QDQ and np.asarray(values[inputs[0]]).dtype.kind in "iu":
        return None
    results = _run(node, inputs, values, opsets)
    if results is None:
        return None
    small = all(np.asarray(values[name]).size <= SMALL for name in inputs)
    if small and any(r.size > SMALL for r in results):
        return None  # a fill (ConstantOfShape, Expand) of activation size, not a weight
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
