"""ONNX's operator-oriented quantization (QLinearConv, QLinearMatMul, com.microsoft
QLinearAdd...) rewritten as the QDQ form the importer and realize already read.

onnxruntime's quantizer writes this format with `QuantFormat.QOperator`, and the
ONNX Model Zoo's int8 models use it. Each QLinear op means dequantize its inputs,
run the float op, quantize the result (the ONNX and onnxruntime contrib specs say
so): rewritten that way, realize turns every pattern back into integer code with
onnxruntime's arithmetic (see ONNX_REQUANTIZE_ATTR in tvmq.quantize.realize).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

MS_DOMAIN = "com.microsoft"


class _Rewriter:
    """Replaces the QOperator nodes of one graph, naming new tensors after the node."""

    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.weights = {t.name: t for t in graph.initializer}
        self.nodes: list[onnx.NodeProto] = []
        self.count = 0  # new tensors are unique even where a node reads one value twice

    def tensor(self, name: str) -> np.ndarray | None:
        found = self.weights.get(name)
        return None if found is None else numpy_helper.to_array(found)

    def add_initializer(self, name: str, array: np.ndarray) -> str:
        tensor = numpy_helper.from_array(array, name)
        self.graph.initializer.append(tensor)
        self.weights[name] = tensor
        return name

    def emit(self, op: str, inputs: list[str], output: str, name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attrs))
        return output

    def dequantize(self, node, value: str, scale: str, zero_point: str, axis: int = 1) -> str:
        """DequantizeLinear of `value`; per-axis when its scale has several entries."""
        _given(value, scale)
        inputs = [value, scale] + ([zero_point] if zero_point else [])
        attrs = {"axis": axis} if _size(self.tensor(scale)) > 1 else {}
        self.count += 1
        output, name = f"{value}/dq{self.count}@{node.name}", f"{node.name}/dq{self.count}"
        return self.emit("DequantizeLinear", inputs, output, name, **attrs)

    def quantize(self, node, value: str, scale: str, zero_point: str, output: str) -> str:
        _given(value, scale)
        inputs = [value, scale] + ([zero_point] if zero_point else [])
        return self.emit("QuantizeLinear", inputs, output, f"{node.name}/q")

    def bias(self, node, bias: str, x_scale: str, w_scale: str) -> str:
        """An int32 bias at x_scale * w_scale (float32), dequantized per channel."""
        x_s, w_s = self.tensor(x_scale), self.tensor(w_scale)
        if x_s is None or w_s is None:
            raise ValueError("its scales must be constants")
        product = (np.float32(x_s.ravel()[0]) * w_s.astype(np.float32)).astype(np.float32)
        scale = self.add_initializer(f"{bias}/scale@{node.name}", product)
        return self.dequantize(node, bias, scale, "", axis=0)

    def float_op(self, node, op: str, inputs: list[str], **attrs) -> str:
        return self.emit(op, inputs, f"{node.output[0]}/float", f"{node.name}/float", **attrs)


def _given(value: str, scale: str) -> None:
    """A QLinear op's quantized operand and its scale are not optional."""
    if not value or not scale:
        missing = "value" if not value else f"scale of {value}"
        raise ValueError(f"the {missing} is missing")


def _size(array: np.ndarray | None) -> int:
    return 1 if array is None else int(array.size)


def _attrs(node: onnx.NodeProto, drop: tuple[str, ...] = ()) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name not in drop}


def _conv(r: _Rewriter, node) -> None:
    x, xs, xz, w, ws, wz, ys, yz = list(node.input[:8])
    inputs = [r.dequantize(node, x, xs, xz), r.dequantize(node, w, ws, wz, axis=0)]
    if len(node.input) > 8 and node.input[8]:
        inputs.append(r.bias(node, node.input[8], xs, ws))
    value = r.float_op(node, "Conv", inputs, **_attrs(node))
    r.quantize(node, value, ys, yz, node.output[0])


def _matmul(r: _Rewriter, node) -> None:
    a, a_s, a_z, b, b_s, b_z, ys, yz = node.input
    b_rank = len(r.weights[b].dims) if b in r.weights else 2
    inputs = [r.dequantize(node, a, a_s, a_z), r.dequantize(node, b, b_s, b_z, axis=b_rank - 1)]
    r.quantize(node, r.float_op(node, "MatMul", inputs), ys, yz, node.output[0])


def _gemm(r: _Rewriter, node) -> None:
    """com.microsoft QGemm: A, B and an optional int32 C; float out without y_scale."""
    names = list(node.input) + [""] * (9 - len(node.input))
    a, a_s, a_z, b, b_s, b_z, c, ys, yz = names
    attrs = _attrs(node)
    b_axis = 0 if attrs.get("transB", 0) else 1
    inputs = [r.dequantize(node, a, a_s, a_z), r.dequantize(node, b, b_s, b_z, axis=b_axis)]
    if c:
        inputs.append(r.bias(node, c, a_s, b_s))
    if not ys:
        r.emit("Gemm", inputs, node.output[0], f"{node.name}/float", **attrs)
        return
    r.quantize(node, r.float_op(node, "Gemm", inputs, **attrs), ys, yz, node.output[0])


def _binary(op: str):
    def rewrite(r: _Rewriter, node) -> None:
        a, a_s, a_z, b, b_s, b_z, ys, yz = (list(node.input) + [""] * 8)[:8]
        inputs = [r.dequantize(node, a, a_s, a_z), r.dequantize(node, b, b_s, b_z)]
        r.quantize(node, r.float_op(node, op, inputs), ys, yz, node.output[0])

    return rewrite


def _unary(op: str, keep: tuple[str, ...] = ()):
    def rewrite(r: _Rewriter, node) -> None:
        x, xs, xz, ys, yz = (list(node.input) + [""] * 5)[:5]
        attrs = {k: v for k, v in _attrs(node).items() if k in keep}
        value = r.float_op(node, op, [r.dequantize(node, x, xs, xz)], **attrs)
        r.quantize(node, value, ys, yz, node.output[0])

    return rewrite


def _pool(op: str):
    def rewrite(r: _Rewriter, node) -> None:
        if _attrs(node).get("channels_last", 0):
            raise ValueError("channels_last=1")
        _unary(op, keep=tuple(_attrs(node, drop=("channels_last",))))(r, node)

    return rewrite


def _softmax(r: _Rewriter, node) -> None:
    """QLinearSoftmax; its `opset` attribute says what `axis` means: before opset 13 the
    softmax runs over all dims from `axis` on (flattened, then reshaped back)."""
    attrs = _attrs(node)
    opset = attrs.get("opset", 13)
    axis = attrs.get("axis", -1 if opset >= 13 else 1)
    x, xs, xz, ys, yz = (list(node.input) + [""] * 5)[:5]
    real = r.dequantize(node, x, xs, xz)
    if opset >= 13 or axis == -1:
        value = r.float_op(node, "Softmax", [real], axis=axis)
        r.quantize(node, value, ys, yz, node.output[0])
        return
    # Reshaped back after the quantize, so that realize sees quantize(softmax(...)).
    flat = r.emit("Flatten", [real], f"{real}/flat", f"{node.name}/flatten", axis=axis)
    value = r.float_op(node, "Softmax", [flat], axis=-1)
    quantized = r.quantize(node, value, ys, yz, f"{node.output[0]}/flat")
    shape = r.emit("Shape", [x], f"{x}/shape@{node.name}", f"{node.name}/shape")
    r.emit("Reshape", [quantized, shape], node.output[0], f"{node.name}/unflatten")


def _concat(r: _Rewriter, node) -> None:
    ys, yz, *triples = node.input
    inputs = [
        r.dequantize(node, triples[i], triples[i + 1], triples[i + 2])
        for i in range(0, len(triples), 3)
    ]
    value = r.float_op(node, "Concat", inputs, **_attrs(node))
    r.quantize(node, value, ys, yz, node.output[0])


REWRITES = {
    ("", "QLinearConv"): _conv,
    ("", "QLinearMatMul"): _matmul,
    (MS_DOMAIN, "QGemm"): _gemm,
    (MS_DOMAIN, "QLinearAdd"): _binary("Add"),
    (MS_DOMAIN, "QLinearMul"): _binary("Mul"),
    (MS_DOMAIN, "QLinearSigmoid"): _unary("Sigmoid"),
    (MS_DOMAIN, "QLinearLeakyRelu"): _unary("LeakyRelu", keep=("alpha",)),
    (MS_DOMAIN, "QLinearGlobalAveragePool"): _pool("GlobalAveragePool"),
    (MS_DOMAIN, "QLinearAveragePool"): _pool("AveragePool"),
    (MS_DOMAIN, "QLinearConcat"): _concat,
    (MS_DOMAIN, "QLinearSoftmax"): _softmax,
}


def _key(node: onnx.NodeProto) -> tuple[str, str]:
    return ("" if node.domain == "ai.onnx" else node.domain, node.op_type)


def lower_qoperators(proto: onnx.ModelProto) -> onnx.ModelProto:
    """`proto` with its QOperator nodes rewritten as DequantizeLinear -> float op ->
    QuantizeLinear (the same model when it has none), at opset 13 or later, where
    DequantizeLinear takes per-channel scales. Raises ValueError naming a node whose
    form tvmq cannot express."""
    if not any(_key(node) in REWRITES for node in proto.graph.node):
        return proto
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=1)
    if opset < 13:
        try:
            proto = onnx.version_converter.convert_version(proto, 13)
        except (RuntimeError, ValueError, onnx.checker.ValidationError) as error:
            raise ValueError(f"opset {opset} cannot be converted to 13 ({error})") from error
    rewriter = _Rewriter(proto.graph)
    for node in proto.graph.node:
        rewrite = REWRITES.get(_key(node))
        if rewrite is None:
            rewriter.nodes.append(node)
            continue
        try:
            rewrite(rewriter, node)
        except (ValueError, KeyError, IndexError) as error:
            raise ValueError(f"node '{node.name}' ({node.op_type}): {error}") from error
    del proto.graph.node[:]
    proto.graph.node.extend(rewriter.nodes)
    return proto
