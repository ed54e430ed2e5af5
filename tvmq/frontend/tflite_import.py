"""TFLite files: float, full-integer (int8/uint8, per-tensor or per-channel) and
hybrid models whose weights are int8 while activations stay float.

TVM's importer rejects hybrid ("dynamic range") models. tvmq runs hybrid CONV_2D
and FULLY_CONNECTED as TFLite's hybrid kernels do (:mod:`tvmq.frontend.tflite_ops`);
the int8 weights of other hybrid ops are dequantized to float constants, which is
what the weight-only mode of the quantizer produces too.

Resource variables (a streaming model's state) read their initial values
(:mod:`tvmq.frontend.tflite_variables`).

Files TFLite accepts that TVM's importer does not are mended on the way in: sparse
constants are made dense (:mod:`tvmq.frontend.sparsity`), float16 constants behind
a DEQUANTIZE become float32 constants, and the quantized dimension of a tensor with
one scale (a bias copied from its weights' axis) is ignored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import tflite
from tflite.BuiltinOperator import BuiltinOperator
from tflite.TensorType import TensorType

from tvmq.constants import evaluate_constant
from tvmq.errors import TvmqError, UnsupportedOperatorError
from tvmq.frontend.shapes import UNNAMED, Shapes, fix_shapes, relax_output_specs
from tvmq.frontend.sparsity import densify
from tvmq.frontend.validate import check_quant, check_shape
from tvmq.model import QuantParams, TensorSpec

TFLITE_IDENTIFIER = b"TFL3"
NUMPY_TYPES = {
    TensorType.FLOAT32: "float32",
    TensorType.FLOAT16: "float16",
    TensorType.INT32: "int32",
    TensorType.UINT8: "uint8",
    TensorType.INT64: "int64",
    TensorType.BOOL: "bool",
    TensorType.INT16: "int16",
    TensorType.INT8: "int8",
    TensorType.UINT32: "uint32",
    TensorType.COMPLEX64: "complex64",  # inside a graph only (RFFT2D's output)
}
# Quantized ops TVM refuses although its conversion only moves or copies integers.
INTEGER_LAYOUT_OPS = frozenset(
    {
        "DEPTH_TO_SPACE",
        "EXPAND_DIMS",
        "GATHER",
        "PACK",
        "PAD",
        "PADV2",
        "RESIZE_NEAREST_NEIGHBOR",
        "SLICE",
        "SPACE_TO_DEPTH",
        "SPLIT",
        "SPLIT_V",
        "SQUEEZE",
        "STRIDED_SLICE",
        "TRANSPOSE",
    }
)
# Custom ops tvmq converts, by the name TVM's converter knows them under.
CUSTOM_OPERATORS = {
    "CUSTOM:TFLite_Detection_PostProcess": "DETECTION_POSTPROCESS",
    "CUSTOM:Convolution2DTransposeBias": "CONVOLUTION_2D_TRANSPOSE_BIAS",  # MediaPipe's
}
OPERATOR_NAMES = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
TYPE_NAMES = {v: k for k, v in vars(TensorType).items() if not k.startswith("_")}


def _quant_params(tensor) -> QuantParams | None:
    q = tensor.Quantization()
    if q is None or q.ScaleLength() == 0:
        return None
    scale = tuple(float(s) for s in q.ScaleAsNumpy())
    zero_point = tuple(int(z) for z in q.ZeroPointAsNumpy()) if q.ZeroPointLength() else (0,)
    axis = int(q.QuantizedDimension()) if len(scale) > 1 else None
    return QuantParams(scale=scale, zero_point=zero_point, axis=axis)


def per_tensor_params(tensor) -> tuple[float, int] | None:
    """(scale, zero point) of a tensor quantized with one scale, else None."""
    quant = _quant_params(tensor)
    if quant is None or len(quant.scale) != 1:
        return None
    return quant.scale[0], quant.zero_point[0]


def tensor_name(graph, index: int) -> str:
    """The tensor's name; unnamed tensors (valid TFLite) get the name TVM's importer
    gives them, so specs and Relax inputs agree."""
    name = graph.Tensors(index).Name()
    return name.decode() if name is not None else f"tvmgen_tensor_{index}"


def _spec(graph, index: int) -> TensorSpec:
    tensor = graph.Tensors(index)
    shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    dtype = NUMPY_TYPES.get(tensor.Type())
    name = tensor_name(graph, index)
    if dtype is None:
        raise TvmqError(f"tensor '{name}': unsupported TFLite type {tensor.Type()}")
    return TensorSpec(name, shape, dtype, _quant_params(tensor))


def _checked_spec(graph, index: int, constant: bool, boundary: bool) -> TensorSpec:
    """The tensor's spec once its shape and quantization parameters are sane (empty
    tensors are legal inside a graph, not as its inputs or outputs)."""
    spec = _spec(graph, index)
    if boundary and spec.dtype == "complex64":
        raise TvmqError(
            f"tensor '{spec.name}': complex64 model inputs or outputs are not supported"
        )
    check_shape(spec.name, spec.shape, allow_empty=not boundary)
    if spec.quant is not None:
        check_quant(spec.name, spec.quant, spec.dtype, spec.shape, constant)
    return spec


def _constant(spec: TensorSpec, raw: np.ndarray) -> np.ndarray:
    size = np.dtype(spec.dtype).itemsize * int(np.prod(spec.shape))
    if raw.size != size:
        raise TvmqError(
            f"tensor '{spec.name}': {raw.size} bytes of data for {spec.dtype}{list(spec.shape)}"
        )
    return np.frombuffer(raw.tobytes(), spec.dtype).reshape(spec.shape)


def _resized_inputs(
    path: Path, graph, inputs: list[TensorSpec], shapes: Shapes
) -> list[TensorSpec]:
    """`inputs` at the shapes given: only the dims `shape_signature` marks free (-1)
    may change. The others keep the file's `shape`, at which TFLite runs too."""
    declared = []
    for index, spec in zip(graph.InputsAsNumpy(), inputs, strict=True):
        tensor = graph.Tensors(int(index))
        signature = (
            [int(d) for d in tensor.ShapeSignatureAsNumpy()]
            if tensor.ShapeSignatureLength()
            else []
        )
        if len(signature) != len(spec.shape):  # none, or unusable: every dim as in `shape`
            signature = list(spec.shape)
        dims = tuple(UNNAMED if s == -1 else d for d, s in zip(spec.shape, signature, strict=True))
        declared.append(replace(spec, shape=dims))
    fixed = fix_shapes(str(path), declared, shapes)
    return [new if new.name in shapes else old for new, old in zip(fixed, inputs, strict=True)]


@dataclass
class TFLiteGraph:
    """A parsed, structurally checked TFLite flatbuffer (its first subgraph)."""

    path: Path
    model: tflite.Model
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    operators: Counter[str] = field(default_factory=Counter)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    nodes: list[tuple[str, str]] = field(default_factory=list)
    quantization: dict | None = None
    source_names: dict[str, str] = field(default_factory=dict)
    format: str = "tflite"
    # Inputs given a shape other than the file's (dims free in shape_signature).
    resized: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # Inner tensors of a type tvmq has no dtype for (index -> TFLite type): the ops
    # that touch them are reported unsupported, by inspect too.
    untyped: dict[int, int] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path, shapes: Shapes | None = None) -> TFLiteGraph:
        data = path.read_bytes()
        if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
            raise TvmqError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier)")
        try:
            source = cls._parse(path, data)
        except TvmqError as error:
            raise TvmqError(f"{path}: {error}") from error
        except Exception as error:  # flatbuffers reads past the end as IndexError/struct.error
            raise TvmqError(f"{path}: truncated or corrupt TFLite file ({error})") from error
        if shapes:
            graph = source.model.Subgraphs(0)
            inputs = _resized_inputs(path, graph, source.inputs, shapes)
            source.resized = {
                new.name: new.shape
                for new, old in zip(inputs, source.inputs, strict=True)
                if new.shape != old.shape
            }
            source.inputs = inputs
        return source

    @classmethod
    def _parse(cls, path: Path, data: bytes) -> TFLiteGraph:
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise TvmqError("no subgraph")
        graph = model.Subgraphs(0)
        nodes, params = [], {}
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            op_name = OPERATOR_NAMES.get(builtin, f"BUILTIN_{builtin}")
            if op_name == "CUSTOM":
                op_name = f"CUSTOM:{code.CustomCode().decode()}"
            outputs = op.OutputsAsNumpy()
            for index in (*op.InputsAsNumpy(), *outputs):
                if not -1 <= index < graph.TensorsLength():
                    raise TvmqError(f"operator {i} ({op_name}): tensor index {index} out of range")
            node = tensor_name(graph, int(outputs[0])) if len(outputs) else f"op{i}"
            nodes.append((node, op_name))
        boundary = {int(i) for i in (*graph.InputsAsNumpy(), *graph.OutputsAsNumpy())}
        untyped = {}
        for i in range(graph.TensorsLength()):
            tensor = graph.Tensors(i)
            if tensor.Type() == TensorType.RESOURCE:  # a variable's handle: no data
                continue
            if tensor.Type() not in NUMPY_TYPES and i not in boundary:
                untyped[i] = tensor.Type()
                continue
            raw = model.Buffers(tensor.Buffer()).DataAsNumpy()
            constant = isinstance(raw, np.ndarray) and raw.size > 0
            spec = _checked_spec(graph, i, constant, i in boundary)
            if constant and tensor.Sparsity() is not None:
                params[spec.name] = densify(tensor, np.frombuffer(raw.tobytes(), spec.dtype))
            elif constant:
                params[spec.name] = _constant(spec, raw)
        return cls(
            path=path,
            model=model,
            inputs=[_spec(graph, int(i)) for i in graph.InputsAsNumpy()],
            outputs=[_spec(graph, int(i)) for i in graph.OutputsAsNumpy()],
            operators=Counter(op for _, op in nodes),
            params=params,
            nodes=nodes,
            untyped=untyped,
        )

    def unsupported(self) -> list[tuple[str, str, str]]:
        from tvm import relax

        from tvmq.frontend.tflite_ops import refusal

        graph = self.model.Subgraphs(0)
        converter = _weight_only_converter([])(self.model, graph, None, relax.BlockBuilder())
        bad = [
            (node, op, "no converter for this operator")
            for node, op in self.nodes
            if CUSTOM_OPERATORS.get(op, op) not in converter.convert_map
        ]
        for i, (node, op) in enumerate(self.nodes):
            known = CUSTOM_OPERATORS.get(op, op) in converter.convert_map
            reason = self._untyped_reason(graph.Operators(i)) if known else None
            if known and reason is None:
                reason = refusal(converter, graph.Operators(i))
            if reason is not None:
                bad.append((node, op, reason))
        return bad

    def _untyped_reason(self, op) -> str | None:
        """Why tvmq cannot hold a tensor `op` reads or writes, or None."""
        graph = self.model.Subgraphs(0)
        for index in (*op.InputsAsNumpy(), *op.OutputsAsNumpy()):
            if int(index) in self.untyped:
                kind = TYPE_NAMES.get(self.untyped[int(index)], self.untyped[int(index)])
                return f"tensor '{tensor_name(graph, int(index))}' has type {kind}, unsupported"
        return None

    def to_relax(self):
        from tvm.relax.frontend.tflite import from_tflite

        from tvmq.frontend.transpose_conv import lower_transposed_convs

        unsupported = self.unsupported()
        if unsupported:
            raise UnsupportedOperatorError(str(self.path), unsupported)
        failures: list[tuple[str, str, str]] = []
        try:
            mod = from_tflite(
                self.model,
                shape_dict=self.resized or None,
                op_converter=_weight_only_converter(failures),
            )
        except Exception:
            if failures:  # a later op could not take a failed op's stand-in
                raise UnsupportedOperatorError(str(self.path), failures) from None
            raise
        if failures:
            raise UnsupportedOperatorError(str(self.path), failures)
        # The file's output shapes are those at its own input shapes; a detection
        # op's outputs are sized at run time (shape [] in the file).
        if self.resized or any(op in CUSTOM_OPERATORS for op in self.operators):
            self.outputs = relax_output_specs(mod, self.outputs)
        return lower_transposed_convs(mod, self.source_names)


def _weight_only_converter(failures: list[tuple[str, str, str]]):
    """TVM's OperatorConverter, taught to read hybrid ops' int8 weights as float, to
    mend what TFLite accepts (module docstring), to import quantized ops that only move
    integers (TFLite requires their input and output to share parameters, and TVM's
    conversions of them copy values as they are) and quantized ARG_MAX/ARG_MIN, and
    with the converters of :mod:`tvmq.frontend.tflite_ops`.

    An op whose converter fails is recorded in `failures` as (output tensor, op,
    reason) and stands in as zeros of its output shapes, so that later ops are
    checked too."""
    from tvm import relax
    from tvm.relax.frontend.tflite.tflite_frontend import OperatorConverter, TensorWrapper

    from tvmq.frontend import first_line
    from tvmq.frontend.tflite_ops import (
        QUANTIZED_DATA_MOVEMENT,
        QUANTIZED_INTEGER_KERNELS,
        QUANTIZED_ISLANDS,
        TFLiteOpsMixin,
    )
    from tvmq.frontend.tflite_variables import VARIABLE_OPS

    class WeightOnlyConverter(TFLiteOpsMixin, OperatorConverter):
        # Quantized data movement copies integers; the index of the largest (smallest)
        # quantized value is that of the real one; SHAPE reads only the shape.
        _SUPPORTED_QUANTIZED_OPS = (
            OperatorConverter._SUPPORTED_QUANTIZED_OPS
            | INTEGER_LAYOUT_OPS
            | QUANTIZED_DATA_MOVEMENT
            | QUANTIZED_ISLANDS
            | QUANTIZED_INTEGER_KERNELS.keys()
            | VARIABLE_OPS
            | {"ARG_MAX", "ARG_MIN", "SHAPE"}
        )

        def __init__(self, model, subgraph, *args, **kwargs):
            super().__init__(model, subgraph, *args, **kwargs)
            self._dequantized = _hybrid_weights(model, subgraph)
            self.convert_map = {op: self._reporting(f) for op, f in self.convert_map.items()}

        def _reporting(self, convert):
            def converted(op):
                try:
                    result = convert(op=op)  # as TVM calls it (partials bind relax_op)
                    return self._folded(op, result)
                except Exception as error:  # any converter's failure is reported per op
                    indices = [w.tensor_idx for w in self.get_output_tensors(op)]
                    node = tensor_name(self.subgraph, indices[0]) if indices else "?"
                    failures.append((node, self.get_op_code_str(op), first_line(error)))
                    specs = [_spec(self.subgraph, i) for i in indices]
                    zeros = [relax.op.zeros(relax.ShapeExpr(s.shape), s.dtype) for s in specs]
                    return zeros[0] if len(zeros) == 1 else relax.Tuple(zeros)

            return converted

        def convert_pad(self, op):
            """TFLite Micro pads an int8 tensor with its output's zero point (or the
            constant given) and copies the rest as is, whatever the input's parameters."""
            tensors = self.get_input_tensors(op)
            output = self.get_output_tensors(op)[0]
            if tensors[0].qnn_params is None or output.qnn_params is None:
                return super().convert_pad(op)
            widths = [int(w) for pair in self.get_tensor_value(tensors[1]) for w in pair]
            if len(tensors) == 3:
                value = float(np.ravel(self.get_tensor_value(tensors[2]))[0])
            else:
                value = float(output.qnn_params["zero_point"].value.numpy())
            return relax.op.nn.pad(self.get_expr(tensors[0].tensor_idx), widths, "constant", value)

        def convert_transpose_conv(self, op):
            """The bias is optional (index -1, or left out): TVM's converter takes any
            fourth input for one, so it sees the first three only."""
            inputs = op.InputsAsNumpy()
            if len(inputs) == 4 and inputs[3] < 0:
                op = _FirstInputs(op, 3)
            return super().convert_transpose_conv(op)

        def convert_resize_nearest_neighbor(self, op):
            """TFLite picks the nearest input with its round-half-away-from-zero, for
            align_corners too (TVM's conversion then rounds halves to even)."""
            from tflite.ResizeNearestNeighborOptions import ResizeNearestNeighborOptions

            options = ResizeNearestNeighborOptions()
            table = op.BuiltinOptions()
            if table is None:
                return super().convert_resize_nearest_neighbor(op)
            options.Init(table.Bytes, table.Pos)
            if not options.AlignCorners() or options.HalfPixelCenters():
                return super().convert_resize_nearest_neighbor(op)
            tensors = self.get_input_tensors(op)
            size = tuple(int(d) for d in self.get_tensor_value(tensors[1]))
            data = self.get_expr(tensors[0].tensor_idx)
            if 1 in size:  # TVM's align_corners divides by (size - 1): gather instead
                shape = [int(d) for d in self.get_tensor_shape(tensors[0])]
                for axis, (before, after) in enumerate(zip(shape[1:3], size, strict=True), 1):
                    index = relax.const(_nearest_aligned(before, after))
                    data = relax.op.take(data, index, axis)
                return data
            return relax.op.image.resize2d(
                data, size, None, "NHWC", "nearest_neighbor", "align_corners", "round_prefer_ceil"
            )

        def _folded(self, op, result):
            """An integer op whose inputs are all constants (a reshape's shape
            arithmetic) as a constant known at import, so that RESHAPE, TILE and the
            like, which need their shape operand's values, can read it."""
            outputs = self.get_output_tensors(op)
            inputs = [t for t in self.get_input_tensors(op) if t.tensor_idx >= 0]
            if (
                not isinstance(result, relax.Expr)
                or len(outputs) != 1
                or outputs[0].tensor.Type() not in (TensorType.INT32, TensorType.INT64)
                or any(self.has_expr(t.tensor_idx) for t in inputs)
            ):
                return result
            values = evaluate_constant(result)
            if values is None:
                return result
            self.set_prefetched_node(outputs[0].tensor_idx, values)
            return None

        def get_expr(self, input_tensor_idx):
            """A constant (from the file, or folded at import) where a converter asks
            for an expression: TVM's FILL and others read their operands this way."""
            if not self.has_expr(input_tensor_idx) and input_tensor_idx >= 0:
                (wrapper,) = self.get_tensors([input_tensor_idx])
                if self.is_prefetched(input_tensor_idx) or wrapper.buffer.DataLength():
                    return self.get_tensor_expr(wrapper)
            return super().get_expr(input_tensor_idx)

        def convert_shape(self, op):
            """The shape of a tensor of static shape is a constant (a Keras reshape reads
            its batch size this way), also of a quantized tensor: only its shape is read."""
            (source,) = self.get_input_tensors(op)
            shape = _static_shape(self.get_tensor_expr(source))
            if shape is None:
                return super().convert_shape(op)
            output = self.get_output_tensors(op)[0]
            self.set_prefetched_node(
                output.tensor_idx, np.array(shape, NUMPY_TYPES[output.tensor.Type()])
            )

        def get_tensors(self, tensors_idx_list):
            return [self._mended(w) for w in super().get_tensors(tensors_idx_list)]

        def _mended(self, wrapper):
            """A hybrid weight as float, a sparse constant as dense, and a per-tensor
            quantization without its (meaningless) quantized dimension."""
            if wrapper.tensor_idx in self._dequantized:
                values = self._dequantized[wrapper.tensor_idx]
                return TensorWrapper(
                    wrapper.tensor_idx, _FloatTensor(wrapper.tensor), _Buffer(values)
                )
            if wrapper.tensor_idx < 0:
                return wrapper
            if wrapper.tensor.Sparsity() is not None:
                stored = np.frombuffer(
                    wrapper.buffer.DataAsNumpy().tobytes(), self.get_tensor_type_as_numpy(wrapper)
                )
                dense = densify(wrapper.tensor, stored)
                wrapper = TensorWrapper(
                    wrapper.tensor_idx,
                    _DenseTensor(wrapper.tensor),
                    _Buffer(dense),
                    wrapper.qnn_params,
                )
            params = wrapper.qnn_params
            rank = wrapper.tensor.ShapeLength()
            if (
                params
                and params["axis"]
                and (_scalar_scale(params["scale"]) or params["axis"] >= rank)
            ):
                wrapper.qnn_params = {**params, "axis": 0}
            return wrapper

        def get_tensor_value(self, tensor_wrapper, is_sparse=False):
            """Constants folded at import (DENSIFY, DEQUANTIZE of float16) wherever a
            converter reads a constant's value."""
            if tensor_wrapper.tensor_idx >= 0 and self.is_prefetched(tensor_wrapper.tensor_idx):
                return self.get_prefetched_node(tensor_wrapper.tensor_idx)
            return super().get_tensor_value(tensor_wrapper, is_sparse)

        def _convert_arg_min_max(self, op, relax_op):
            """TVM's ARG_MAX/ARG_MIN give int64 whatever the output tensor's type, and
            -1 where every value is the type's extreme (:mod:`tvmq.frontend.arg_index`)."""
            from tvm import relax

            from tvmq.frontend.arg_index import valid_arg_index

            data, axis = self.get_input_tensors(op)
            expr = self.get_tensor_expr(data)
            axis = int(np.ravel(self.get_tensor_value(axis))[0]) % len(expr.ty.shape)
            out = valid_arg_index(super()._convert_arg_min_max(op, relax_op), expr, axis)
            dtype = NUMPY_TYPES[self.get_output_tensors(op)[0].tensor.Type()]
            return relax.op.astype(out, dtype)

        def convert_densify(self, op):
            """The dense constant, known at import (the input was densified above)."""
            (source,) = self.get_input_tensors(op)
            output = self.get_output_tensors(op)[0]
            self.set_prefetched_node(output.tensor_idx, self.get_tensor_value_or_prefetched(source))

        def convert_dequantize(self, op):
            """DEQUANTIZE of a float16 constant: a float32 constant, folded at import, so
            that consumers see float weights as in any float model."""
            (source,) = self.get_input_tensors(op)
            constant = self.is_prefetched(source.tensor_idx) or not self.has_expr(source.tensor_idx)
            if source.tensor.Type() != TensorType.FLOAT16 or not constant:
                return super().convert_dequantize(op)
            values = self.get_tensor_value_or_prefetched(source).astype(np.float32)
            output = self.get_output_tensors(op)[0]
            self.set_prefetched_node(output.tensor_idx, values)

    return WeightOnlyConverter


def _static_shape(expr) -> list[int] | None:
    """The dims of a tensor expression whose shape is known at import, or None."""
    try:
        return [int(d) for d in expr.ty.shape.values]
    except (AttributeError, TypeError):  # not a tensor, or a dim is symbolic
        return None


def _hybrid_weights(model, graph) -> dict[int, np.ndarray]:
    """Dequantized float values of int8 constants feeding ops with float activations."""
    weights = {}
    for i in range(graph.OperatorsLength()):
        indices = [int(j) for j in graph.Operators(i).InputsAsNumpy() if j >= 0]
        if not indices or graph.Tensors(indices[0]).Type() != TensorType.FLOAT32:
            continue
        for j in indices[1:]:
            tensor = graph.Tensors(j)
            quant = _quant_params(tensor)
            raw = model.Buffers(tensor.Buffer()).DataAsNumpy()
            if tensor.Type() != TensorType.INT8 or quant is None or not isinstance(raw, np.ndarray):
                continue
            values = np.frombuffer(raw.tobytes(), np.int8).reshape(tensor.ShapeAsNumpy())
            shape = [1] * values.ndim
            if quant.axis is not None:
                shape[quant.axis] = -1
            scale = np.asarray(quant.scale, np.float32).reshape(shape)
            zero = np.asarray(quant.zero_point, np.float32).reshape(
                shape if len(quant.zero_point) > 1 else [1]
            )
            weights[j] = ((values.astype(np.float32) - zero) * scale).astype(np.float32)
    return weights


def _scalar_scale(scale) -> bool:
    """True for the scale of a per-tensor quantization (one value)."""
    return int(np.prod(scale.ty.shape)) == 1 if scale.ty.shape else True


def _nearest_aligned(size: int, out_size: int) -> np.ndarray:
    """The input index of each output of TFLite's align_corners nearest resize
    (reference_ops.h GetNearestNeighbor): scale (size - 1) / (out_size - 1), or
    size / out_size for one output, in float32; halves rounded away from zero."""
    scale = np.float32(size - 1 if out_size > 1 else size) / np.float32(max(out_size - 1, 1))
    position = np.arange(out_size, dtype=np.float32) * scale
    return np.minimum(np.floor(position + np.float32(0.5)), size - 1).astype("int32")


class _DenseTensor:
    """A sparse TFLite tensor seen as the dense tensor it stands for."""

    def __init__(self, tensor):
        self._tensor = tensor

    def __getattr__(self, name):
        return getattr(self._tensor, name)

    def Sparsity(self):
        return None


class _FloatTensor:
    """A TFLite tensor seen as float32 without quantization parameters."""

    def __init__(self, tensor):
        self._tensor = tensor

    def __getattr__(self, name):
        return getattr(self._tensor, name)

    def Type(self):
        return TensorType.FLOAT32

    def Quantization(self):
        return None


class _Buffer:
    """A TFLite buffer holding replacement data."""

    def __init__(self, values: np.ndarray):
        self._bytes = np.frombuffer(values.tobytes(), np.uint8)

    def DataAsNumpy(self):
        return self._bytes

    def DataLength(self):
        return self._bytes.size


class _FirstInputs:
    """A TFLite operator seen with only its first `count` inputs."""

    def __init__(self, op, count: int):
        self._op, self._count = op, count

    def __getattr__(self, name):
        return getattr(self._op, name)

    def InputsAsNumpy(self):
        return self._op.InputsAsNumpy()[: self._count]

    def InputsLength(self):
        return min(self._op.InputsLength(), self._count)
