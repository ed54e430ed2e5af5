"""ONNX files: float models and QDQ-quantized ones (QuantizeLinear/DequantizeLinear)."""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from tvmq.errors import TvmqError, UnsupportedOperatorError, first_line
from tvmq.frontend import (
    onnx_clip,
    onnx_conv_integer,
    onnx_dynamic_lstm,
    onnx_gru,
    onnx_lstm,
    onnx_pad,
    onnx_runtime_math,
    onnx_variadic,
)
from tvmq.frontend.activations import prelu
from tvmq.frontend.arg_index import valid_arg_index
from tvmq.frontend.layout import channels_last
from tvmq.frontend.onnx_batchnorm import fold_batch_norms
from tvmq.frontend.onnx_conv1d import widen_1d_convolutions
from tvmq.frontend.onnx_float16 import promote_float16
from tvmq.frontend.onnx_fold import QDQ as QDQ_OPS
from tvmq.frontend.onnx_fold import fold_constants
from tvmq.frontend.onnx_qoperator import lower_qoperators
from tvmq.frontend.shapes import UNNAMED, Shapes, fix_shapes, free_dims, relax_output_specs
from tvmq.frontend.transpose_conv import lower_transposed_convs
from tvmq.frontend.validate import check_scales, check_shape
from tvmq.model import TensorSpec

STANDARD_DOMAINS = ("", "ai.onnx")
# Constant node attributes that hold a number or a tensor, as initializers can.
CONSTANT_VALUES = ("value", "value_float", "value_floats", "value_int", "value_ints")
# Operators TVM's importer lacks or converts badly, converted by tvmq: (block builder,
# inputs, attrs) -> Expr, or None to leave a case to TVM's converter.
OWN_CONVERTERS = {
    "LSTM": onnx_lstm.convert,
    "GRU": onnx_gru.convert,
    "ConvInteger": onnx_conv_integer.convert,
    "PRelu": lambda bb, inputs, attrs: _prelu(bb, *inputs),
    "Pad": onnx_pad.convert,
    "Clip": onnx_clip.convert,
    **onnx_variadic.CONVERTERS,
}
# onnxruntime's contrib operators (domain com.microsoft) that tvmq converts.
MICROSOFT_DOMAIN = "com.microsoft"
MICROSOFT_CONVERTERS = {"DynamicQuantizeLSTM": onnx_dynamic_lstm.convert}


def _prelu(bb, data, slope):
    """The slope at the data's rank: channels_last's layout conversion moves a full
    rank constant with the data, not one that broadcasts from [C, 1, 1]."""
    from tvm import relax

    data, slope = bb.normalize(data), bb.normalize(slope)
    missing = len(data.ty.shape) - len(slope.ty.shape)
    if missing > 0:
        slope = relax.op.reshape(slope, [1] * missing + [int(d) for d in slope.ty.shape])
    return prelu(data, slope)


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    """A graph input or output; a free dim keeps its symbol (or '?' when unnamed)."""
    tensor_type = value.type.tensor_type
    shape = tuple(
        d.dim_value if d.HasField("dim_value") else d.dim_param or UNNAMED
        for d in tensor_type.shape.dim
    )
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).name
    return TensorSpec(name=value.name, shape=shape, dtype=dtype)


def _initializers(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """The weights as arrays; an unknown data type or a wrong byte count named."""
    weights = {}
    for tensor in graph.initializer:
        try:
            weights[tensor.name] = numpy_helper.to_array(tensor)
        except (KeyError, ValueError, TypeError) as error:
            types = onnx.TensorProto.DataType
            known = tensor.data_type in types.values()
            kind = types.Name(tensor.data_type) if known else f"data type {tensor.data_type}"
            raise TvmqError(
                f"initializer '{tensor.name}': data does not fit {kind}{list(tensor.dims)} "
                f"({first_line(error)})"
            ) from error
    return weights


def _check_declared(graph: onnx.GraphProto, weights: dict[str, np.ndarray]) -> None:
    """Graph inputs and outputs have a known element type and sane fixed dimensions."""
    for value in (*graph.input, *graph.output):
        if value.name in weights:
            continue
        tensor_type = value.type.tensor_type
        try:
            np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        except (KeyError, TypeError, ValueError) as error:
            raise TvmqError(
                f"tensor '{value.name}': unknown or unsupported element type "
                f"{tensor_type.elem_type}"
            ) from error
        fixed = [d.dim_value for d in tensor_type.shape.dim if d.HasField("dim_value")]
        check_shape(value.name, fixed)


def _check_quantization(graph: onnx.GraphProto, weights: dict[str, np.ndarray]) -> None:
    """QuantizeLinear/DequantizeLinear scales are finite and positive (zero allowed for
    dequantized constants, as an all-zero weight channel has)."""
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 2:
            continue
        scale = weights.get(node.input[1])
        if scale is None:
            continue
        constant = node.op_type == "DequantizeLinear" and node.input[0] in weights
        try:
            check_scales(node.input[1], [float(s) for s in np.ravel(scale)], allow_zero=constant)
        except TvmqError as error:
            node_name = node.name or node.output[0]
            raise TvmqError(f"node '{node_name}' ({node.op_type}): {error}") from error


def _set_dims(value: onnx.ValueInfoProto, shape: Sequence[int]) -> None:
    for dim, size in zip(value.type.tensor_type.shape.dim, shape, strict=True):
        dim.Clear()
        dim.dim_value = size


def _constants_to_initializers(graph: onnx.GraphProto) -> None:
    """Constant nodes holding numbers become initializers: weights like any other
    (counted as parameters, bound as Relax constants; TVM's Constant converter reads
    only `value`)."""
    kept = []
    for node in graph.node:
        attribute = node.attribute[0] if len(node.attribute) == 1 else None
        if node.op_type != "Constant" or attribute is None or attribute.name not in CONSTANT_VALUES:
            kept.append(node)
            continue
        value = onnx.helper.get_attribute_value(attribute)
        if isinstance(value, onnx.TensorProto):
            array = numpy_helper.to_array(value)
        else:
            array = np.asarray(value, np.float32 if "float" in attribute.name else np.int64)
        graph.initializer.append(numpy_helper.from_array(array, node.output[0]))
    del graph.node[:]
    graph.node.extend(kept)


def _supported_ops() -> set[str]:
    from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

    return set(_get_convert_map()) | set(OWN_CONVERTERS)


def _convertible(node: onnx.NodeProto, known: set[str]) -> bool:
    """Whether an ONNX node has a converter: a standard operator TVM or tvmq converts,
    or one of onnxruntime's contrib operators that tvmq converts."""
    if node.domain == MICROSOFT_DOMAIN:
        return node.op_type in MICROSOFT_CONVERTERS
    return node.domain in STANDARD_DOMAINS and node.op_type in known


@dataclass
class OnnxGraph:
    """A parsed, checked ONNX model."""

    path: Path
    proto: onnx.ModelProto
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    operators: Counter[str] = field(default_factory=Counter)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    quantization: dict | None = None
    format: str = "onnx"
    source_names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path, shapes: Shapes | None = None) -> OnnxGraph:
        """Parse and check `path`, fixing input dims to `shapes` ({input: shape})."""
        try:
            proto = onnx.load_model_from_string(path.read_bytes())
        except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as error:
            raise TvmqError(f"{path}: not a valid ONNX model ({error})") from error
        if not proto.graph.node:
            raise TvmqError(f"{path}: not a valid ONNX model (no graph nodes)")
        graph = proto.graph
        try:
            onnx.checker.check_model(proto)
        except (onnx.checker.ValidationError, UnicodeDecodeError) as error:
            message = str(error).strip().splitlines()[0]
            raise TvmqError(f"{path}: invalid ONNX model: {message}") from error
        operators = Counter(node.op_type for node in graph.node)
        for node in graph.node:  # reports and the importer name every node
            node.name = node.name or (node.output[0] if node.output else node.op_type)
        try:
            try:
                _constants_to_initializers(graph)
            except (KeyError, ValueError, TypeError) as error:
                detail = first_line(error)
                raise TvmqError(f"a Constant node's value is unreadable ({detail})") from error
            try:
                proto = lower_qoperators(proto)
            except (ValueError, onnx.checker.ValidationError) as error:
                raise TvmqError(first_line(error)) from error
            graph = proto.graph
            weights = _initializers(graph)
            _check_declared(graph, weights)
            _check_quantization(graph, weights)
        except TvmqError as error:
            raise TvmqError(f"{path}: {error}") from error
        values = [v for v in graph.input if v.name not in weights]
        inputs = fix_shapes(str(path), [_spec(v) for v in values], shapes or {})
        for value, spec in zip(values, inputs, strict=True):
            if spec.name in (shapes or {}):
                _set_dims(value, spec.shape)
        fixed = {spec.name: list(spec.shape) for spec in inputs if not free_dims(spec)}
        proto = fold_constants(promote_float16(proto), fixed)
        try:
            proto = onnx.shape_inference.infer_shapes(proto)
        except (onnx.shape_inference.InferenceError, UnicodeDecodeError) as error:
            message = str(error).strip().splitlines()[0]
            raise TvmqError(f"{path}: invalid ONNX model at these shapes: {message}") from error
        proto = widen_1d_convolutions(fold_batch_norms(proto))
        try:
            weights = _initializers(proto.graph)  # those folded at import included
        except TvmqError as error:
            raise TvmqError(f"{path}: {error}") from error
        return cls(
            path=path,
            proto=proto,
            inputs=inputs,
            outputs=[_spec(v) for v in proto.graph.output],
            operators=operators,
            params=weights,
        )

    def unsupported(self) -> list[tuple[str, str, str]]:
        known = _supported_ops()
        return [
            (node.name, _op_name(node), "no converter for this operator")
            for node in self.proto.graph.node
            if not _convertible(node, known)
        ]

    def to_relax(self):
        """The Relax module; fills `source_names` (Relax var name -> ONNX node name).
        Every node that fails to convert is named in one UnsupportedOperatorError."""
        from tvm.relax.frontend.onnx import onnx_frontend

        shapes = {spec.name: list(spec.shape) for spec in self.inputs}
        dtypes = {spec.name: spec.dtype for spec in self.inputs}
        failures: list[tuple[str, str, str]] = []
        importer = onnx_frontend.ONNXGraphImporter
        onnx_frontend.ONNXGraphImporter = _naming_importer(
            importer, self.source_names, failures, self.proto.graph
        )
        try:
            # TVM prints the node it failed on to stdout; failures are reported instead.
            with contextlib.redirect_stdout(io.StringIO()):
                mod = onnx_frontend.from_onnx(
                    self.proto,
                    shape_dict=shapes,
                    dtype_dict=dtypes,
                )
        except Exception:
            if failures:  # a failed node without inferred shapes stopped the import
                raise UnsupportedOperatorError(str(self.path), failures) from None
            raise
        finally:
            onnx_frontend.ONNXGraphImporter = importer
        if failures:
            raise UnsupportedOperatorError(str(self.path), failures)
        _name_output_bindings(mod, self.source_names, self.proto.graph)
        if any(free_dims(spec) for spec in self.outputs):  # left free by shape inference
            self.outputs = relax_output_specs(mod, self.outputs)
        from tvmq.quantize.realize import mark_onnx_requantize, mark_onnx_resize

        if any(node.op_type in QDQ_OPS for node in self.proto.graph.node):
            mod = mark_onnx_requantize(mod)
        else:
            # A QDQ model's quantize/dequantize pairs fix the layout they were made for.
            mod, names = channels_last(mod, dict(self.source_names))
            self.source_names.clear()
            self.source_names.update(names)
        return mark_onnx_resize(lower_transposed_convs(mod, self.source_names))


def _op_name(node: onnx.NodeProto) -> str:
    return f"{node.domain}.{node.op_type}" if node.domain else node.op_type


def _naming_importer(base, names: dict[str, str], failures: list, graph: onnx.GraphProto):
    """TVM's ONNX importer, binding each node's result as it is converted so that the
    Relax vars it creates can be traced back to the node (names[var] = node name).
    Nodes producing graph outputs are left to the importer, which binds them last.

    A node that fails to convert is recorded in `failures` as (node, op, reason) and
    stands in as zeros of its inferred output shapes, so that the nodes after it are
    checked too.

    A graph quantized at run time gets onnxruntime's own float activations
    (:mod:`tvmq.frontend.onnx_runtime_math`)."""
    from tvm import relax

    from tvmq.frontend import first_line

    converters = {**OWN_CONVERTERS, **MICROSOFT_CONVERTERS}
    if onnx_runtime_math.quantizes_at_run_time(graph):
        converters.update(onnx_runtime_math.CONVERTERS)

    nodes = {node.name: node for node in graph.node}
    known = _supported_ops()
    types = {
        value.name: value.type.tensor_type
        for value in [*graph.value_info, *graph.output]
        if value.type.HasField("tensor_type")
    }

    def stand_in(node: onnx.NodeProto):
        values = []
        for output in node.output:
            kind = types.get(output)
            dims = kind.shape.dim if kind is not None else ()
            if kind is None or not all(d.HasField("dim_value") for d in dims):
                return None
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(kind.elem_type)).name
            values.append(relax.op.zeros(relax.ShapeExpr([d.dim_value for d in dims]), dtype))
        return values[0] if len(values) == 1 else relax.Tuple(values)

    class NamingImporter(base):
        def from_onnx(self, graph, opset):
            outputs = {value.name for value in graph.output}
            self._last = {node.name for node in graph.node if set(node.output) & outputs}
            return super().from_onnx(graph, opset)

        def _check_for_unsupported_ops(self, graph):
            """Unknown operators fail in _convert_operator, one by one."""

        def _convert_operator(self, op_name, inputs, attrs, opset):
            node = attrs.get("tvm_custom", {}).get("name")
            source = nodes.get(node)
            try:
                if source is not None and not _convertible(source, known):
                    raise NotImplementedError("no converter for this operator")
                own = converters.get(op_name)
                value = own(self.bb, inputs, attrs) if own is not None else None
                if value is None:  # not tvmq's op, or a case tvmq leaves to TVM
                    value = super()._convert_operator(op_name, inputs, attrs, opset)
                else:
                    value = self.bb.normalize(value)
                if op_name in ("ArgMax", "ArgMin"):
                    data = self.bb.normalize(inputs[0])
                    axis = attrs.get("axis", 0) % len(data.ty.shape)
                    value = valid_arg_index(value, data, axis)
            except Exception as error:  # any converter's failure is reported per node
                if source is None:
                    raise
                failures.append((node, _op_name(source), first_line(error)))
                value = stand_in(source)
                if value is None:
                    raise
                return self.bb.normalize(value)
            if not node or node in self._last or not isinstance(value, relax.Call):
                return value
            var = self.bb.emit(value)
            pending = [var]
            while pending:
                current = pending.pop()
                names[current.name] = node
                bound = self.bb.lookup_binding(current)
                pending += [
                    arg
                    for arg in getattr(bound, "args", ())
                    if isinstance(arg, relax.Var)
                    and arg.name not in names
                    and self.bb.lookup_binding(arg) is not None
                ]
            return var

    return NamingImporter


def _name_output_bindings(mod, names: dict[str, str], graph: onnx.GraphProto) -> None:
    """The bindings the importer made for a single output node, after every named
    binding at the end of main, take that node's name."""
    from tvm import relax

    producer = {output: node.name for node in graph.node for output in node.output}
    last = [producer[value.name] for value in graph.output if value.name in producer]
    bindings = [b for block in mod["main"].body.blocks for b in block.bindings]
    named = [i for i, b in enumerate(bindings) if b.var.name in names]
    if len(last) != 1:
        return
    for binding in bindings[named[-1] + 1 if named else 0 :]:
        if isinstance(binding.value, relax.Call):
            names[binding.var.name] = last[0]
