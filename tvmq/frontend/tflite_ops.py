"""TFLite operators TVM's Relax importer gets wrong or refuses, converted as TFLite
runs them.

- FULLY_CONNECTED on an input of rank > 2 flattens it to [-1, in_features] unless
  keep_num_dims is set (TVM multiplies the N-D input as it is).
- GATHER_ND, PACK and UNPACK on int8/uint8 tensors are data movement: TFLite (and
  TFLite Micro) copy the integer values and never requantize, so they run on the
  integers as they are.
- Hybrid CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (float input, int8 weights)
  as LiteRT's reference hybrid kernels run them: per-tensor weights with the input
  quantized symmetrically per batch at run time; per-channel ones (what dynamic-range
  quantization writes, and every hybrid depthwise) with the input quantized
  asymmetrically per batch (AsymmetricQuantizeFloats); an integer product, then a
  float rescale and the bias. Dequantized weights in a float op differ from those
  kernels by ~1e-2 relative on a real model, enough to change an SSD's detections.
- UNIDIRECTIONAL_SEQUENCE_LSTM (float) with its own input gate, not only the
  coupled input-forget variant TVM handles, and optional peephole weights,
  unrolled over time into Relax ops; int8 ones as TFLite Micro's integer kernel
  (:mod:`tvmq.frontend.lstm_int8`), as are quantized SVDF (:mod:`tvmq.frontend.svdf_int8`).
- TFLite_Detection_PostProcess (custom op, fast NMS) as one TIR kernel
  (:mod:`tvmq.frontend.detection_postprocess`) in place of TVM's vision ops.
- TRANSPOSE_CONV with SAME padding and a kernel smaller than its stride: the output
  rows and columns no input reaches (the bias alone) as output padding.
- EXPAND_DIMS (TVM's calls Relax's expand_dims with an argument too many), and
  float BATCH_MATMUL with a constant operand or broadcast batch dims (TVM's fails on
  both).
- PRELU with its slope broadcast by the op (TVM's stores it broadcast to the
  activation's size), quantized ones as an island realize runs as TFLite's kernel.
- Resource variables (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE, CALL_ONCE) read
  their initial values: :mod:`tvmq.frontend.tflite_variables`.
- MediaPipe's Convolution2DTransposeBias (custom op, float; the segmentation and
  landmark models of the mediapipe wheel) as the transposed convolution and bias its
  kernel computes (mediapipe/util/tflite/operations/transpose_conv_bias.cc).
- Float LOGISTIC (and the LSTM's sigmoid gates) as TFLite's reference kernel
  (reference/logistic.h): exp(x) below -9 and 1 above 16.619..., 1 / (1 + exp(-x))
  between. A plain sigmoid is a few ulps off below -9, enough to flip the
  rounding of an int8 QUANTIZE downstream (YOLOX-Nano int8, 6 outputs one step).
- EQUAL ... LESS_EQUAL on int8 operands as TFLite's ComparisonWithScaling (each
  operand rescaled by a fixed-point multiplier, then compared; TVM compared the
  dequantized values, which a near tie decides otherwise).
- SPLIT_V with a size of -1 (the rest of the axis; TVM took it for a size).
- RFFT2D from the shape its input has in the graph, not the one the file declares:
  a converter writing a graph with a dynamic batch leaves placeholder shapes
  (word-activation-recognition's in-graph STFT: [1, 1, 1, 2048] for 43 frames and
  1025 bins); TVM's FFT kernels then run on the real shapes. SQUEEZE of a complex
  tensor counts negative axes from TFLite's last axis, not from the trailing
  (real, imaginary) axis of TVM's representation; SLICE's size -1 (to the end) is
  read from the graph's shape too, not the declared one.

:func:`refusal` names the ops tvmq cannot run exactly, so import and ``inspect``
say so in one line instead of failing inside TVM.
"""

from __future__ import annotations

import functools
import struct

import numpy as np
from tflite.Padding import Padding
from tflite.TensorType import TensorType
from tvm import relax
from tvm.relax.frontend.tflite import tflite_frontend
from tvm.relax.frontend.tflite.tflite_frontend import OperatorConverter, to_int_list

from tvmq.errors import TvmqError
from tvmq.frontend import detection_postprocess, fft, lstm_int8, svdf_int8, tflite_variables
from tvmq.frontend.activations import prelu
from tvmq.frontend.tflite_import import CUSTOM_OPERATORS, per_tensor_params
from tvmq.quantize.fixed_point import IntegerBuilder, quantize_multiplier

# Quantized ops that are plain copies of integer values in TFLite's kernels.
QUANTIZED_DATA_MOVEMENT = frozenset({"GATHER_ND", "PACK", "UNPACK"})
# Quantized ops converted here as dequantize -> float op -> quantize, for realize.
QUANTIZED_ISLANDS = frozenset({"PRELU"})
# Quantized ops converted straight to integer kernels here, not as QDQ islands.
QUANTIZED_INTEGER_KERNELS = {
    "UNIDIRECTIONAL_SEQUENCE_LSTM": lstm_int8,
    "SVDF": svdf_int8,
}
# Comparisons of quantized operands, rescaled as TFLite does (convert_comparison).
COMPARISONS = {
    "EQUAL": relax.op.equal,
    "NOT_EQUAL": relax.op.not_equal,
    "GREATER": relax.op.greater,
    "GREATER_EQUAL": relax.op.greater_equal,
    "LESS": relax.op.less,
    "LESS_EQUAL": relax.op.less_equal,
}
# Ops tvmq refuses when any of their tensors is quantized, and why.
# DIV: TFLite Micro divides by a fixed-point reciprocal (GetReciprocal); a float
# island differs by a step, and saturates otherwise where the divisor is zero.
_NO_KERNEL = "quantized: neither TFLite Micro nor LiteRT has an int8 kernel to match"
REFUSED_QUANTIZED = {
    "LSTM": "quantized: no exact integer kernel in tvmq",
    "DIV": "quantized: no exact integer kernel in tvmq",
    **dict.fromkeys(("FLOOR", "CEIL", "ROUND", "SIN", "COS", "TAN", "POW", "ATAN2"), _NO_KERNEL),
    **dict.fromkeys(
        ("FLOOR_DIV", "FLOOR_MOD"),
        "quantized: TFLite Micro has no int8 kernel and LiteRT's divides the stored integers",
    ),
    "REDUCE_PROD": "quantized: TFLite Micro has no int8 kernel; LiteRT rescales every "
    "product, which tvmq does not reproduce",
}
# LSTM inputs: gate weights (input, forget, cell, output), then the same order for
# recurrent weights, peephole weights and biases; projection, states (18, 19: zero
# at the start) and layer norm after.
_LSTM_INPUT, _LSTM_RECURRENT, _LSTM_PEEPHOLE, _LSTM_BIAS = 1, 5, 9, 12
_LSTM_PROJECTION, _LSTM_LAYER_NORM = (16, 17), (20, 21, 22, 23)
# Gate index (input, forget, output) -> its peephole weight; the cell gate has none.
_PEEPHOLE = {0: 0, 1: 1, 3: 2}
# TfLiteTransposeConvParams, Convolution2DTransposeBias's raw custom options: padding
# (TfLitePadding: 1 same, 2 valid), stride width, stride height.
TRANSPOSE_CONV_PARAMS = struct.Struct("<3i")
TFLITE_PADDING_SAME = 1
# reference_ops::Logistic's cut-offs for float32.
_LOGISTIC_UPPER, _LOGISTIC_LOWER = 16.619047164916992188, -9.0


class TFLiteOpsMixin:
    """Converters that replace TVM's for the ops listed in the module docstring."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._substituted: dict[int, relax.Expr] = {}
        self.convert_map["CONVOLUTION_2D_TRANSPOSE_BIAS"] = self.convert_transpose_conv_bias
        self._variables = tflite_variables.initial_values(self.model, self.subgraph)
        self._handles: dict[int, str] = {}
        for name, compare in COMPARISONS.items():
            self.convert_map[name] = functools.partial(self.convert_comparison, compare=compare)
        self.convert_map.update(
            VAR_HANDLE=self.convert_var_handle,
            READ_VARIABLE=self.convert_read_variable,
            ASSIGN_VARIABLE=self.convert_without_effect,
            CALL_ONCE=self.convert_without_effect,
        )

    def check_unsupported_ops(self):
        """TVM's check, blind to the variable ops: an ASSIGN_VARIABLE of an int8 state
        looks to it like a hybrid op (a plain handle, then a quantized "weight")."""
        graph = self.subgraph
        kept = [
            i
            for i in range(graph.OperatorsLength())
            if self.get_op_code_str(graph.Operators(i)) not in tflite_variables.VARIABLE_OPS
        ]
        self.subgraph = _SomeOperators(graph, kept)
        try:
            super().check_unsupported_ops()
        finally:
            self.subgraph = graph

    def get_op_code_str(self, op):
        """Custom ops tvmq converts under the names of CUSTOM_OPERATORS."""
        code = self.model.OperatorCodes(op.OpcodeIndex())
        custom = code.CustomCode()
        if custom is not None:
            name = CUSTOM_OPERATORS.get(f"CUSTOM:{custom.decode(errors='replace')}")
            if name is not None:
                return name
        return super().get_op_code_str(op)

    def get_tensor_expr(self, tensor, is_sparse=False):
        if tensor.tensor_idx in self._substituted:
            return self._substituted[tensor.tensor_idx]
        return super().get_tensor_expr(tensor, is_sparse)

    def convert_fully_connected(self, op):
        """Flatten an N-D input as TFLite does; hybrid ones as TFLite's hybrid kernel."""
        from tflite.FullyConnectedOptions import FullyConnectedOptions

        inputs = self.get_input_tensors(op)
        options = FullyConnectedOptions()
        options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        in_features = to_int_list(self.get_tensor_shape(inputs[1]))[-1]
        weights = self._hybrid_weights(inputs)
        # Asymmetric inputs and kept dims stay on dequantized weights (weight-only).
        if weights is not None and not (
            options.AsymmetricQuantizeInputs() or options.KeepNumDims()
        ):
            data = relax.op.reshape(self.get_tensor_expr(inputs[0]), [-1, in_features])
            quantized, scale = _symmetric_quantize_per_batch(data, 2)
            values, weight_scale = weights
            accumulator = relax.op.matmul(
                quantized, relax.const(np.ascontiguousarray(values.T)), out_dtype="int32"
            )
            return self._hybrid_output(
                accumulator, relax.op.multiply(scale, relax.const(weight_scale)), inputs, options
            )
        if options.KeepNumDims() or len(self.get_tensor_shape(inputs[0])) == 2:
            return super().convert_fully_connected(op)
        data = self.get_tensor_expr(inputs[0])
        self._substituted[inputs[0].tensor_idx] = relax.op.reshape(data, [-1, in_features])
        try:
            return super().convert_fully_connected(op)
        finally:
            del self._substituted[inputs[0].tensor_idx]

    def convert_detection_postprocess(self, op):
        """The custom op as one call of its TIR kernel; its scratch outputs are dropped."""
        reason = _detection_refusal(self, op)
        if reason is not None:
            raise TvmqError(reason)
        encodings, scores, anchors = self.get_input_tensors(op)
        options = _detection_options(op)
        values = detection_postprocess.anchors_array(self.get_tensor_value(anchors))
        shape = [int(d) for d in self.get_tensor_shape(encodings)]
        classes = int(self.get_tensor_shape(scores)[2])
        func = detection_postprocess.kernel(options, shape[1], shape[2], classes)
        kernel = self.bb.add_func(func, "detection_postprocess")
        results = [(s, "float32") for s in detection_postprocess.output_shapes(options)]
        results += detection_postprocess.scratch_shapes(options, shape[1])
        call = self.bb.emit(
            relax.call_tir(
                kernel,
                [
                    self.get_tensor_expr(encodings),
                    self.get_tensor_expr(scores),
                    relax.const(values),
                    relax.const(detection_postprocess.scales_array(options)),
                ],
                [relax.TensorType(s, dtype) for s, dtype in results],
            )
        )
        return relax.Tuple([relax.TupleGetItem(call, i) for i in range(4)])

    def convert_var_handle(self, op):
        """Remembers which variable the handle tensor names; no value of its own."""
        self._handles[int(op.Outputs(0))] = tflite_variables.variable_name(op)

    def convert_read_variable(self, op):
        """The variable's initial value (module docstring of tflite_variables): zeros
        where no init subgraph assigns it, as TFLite Micro allocates it."""
        name = self._handles.get(int(op.Inputs(0)))
        output = self.get_output_tensors(op)[0]
        shape = [int(d) for d in self.get_tensor_shape(output)]
        dtype = self.get_tensor_type_str(output.tensor.Type())
        value = self._variables.get(name)
        if value is None:
            value = np.zeros(shape, dtype)
        elif value.size != int(np.prod(shape)):
            raise TvmqError(f"variable {name}: initial value of {value.size} values for {shape}")
        return relax.const(value.astype(dtype).reshape(shape))

    def convert_without_effect(self, op):
        """ASSIGN_VARIABLE and CALL_ONCE: no state outlives a call (tflite_variables)."""

    def convert_transpose_conv(self, op):
        """TVM's, with the rows and columns a SAME output has past the kernel's reach
        (a kernel smaller than its stride: out = in * stride) as output padding,
        where TFLite's kernel writes the bias alone; TVM's output stopped short."""
        out = super().convert_transpose_conv(op)
        shape, weights, data = self.get_input_tensors(op)[:3]
        wanted = [int(d) for d in self.get_tensor_value(shape)][1:3]
        sizes = [int(d) for d in self.get_tensor_shape(data)][1:3]
        kernel = [int(d) for d in self.get_tensor_shape(weights)][1:3]  # OHWI
        return _with_transpose_conv(out, lambda call: _output_padded(call, sizes, kernel, wanted))

    def convert_transpose_conv_bias(self, op):
        """MediaPipe's Convolution2DTransposeBias: OHWI weights, a bias, and an output
        of stride * (in - 1) + kernel - P, where P = max(0, kernel - (in - 1) % stride - 1)
        for SAME padding (0 for VALID) and P // 2 is cut from the start."""
        reason = _transpose_conv_bias_refusal(self, op)
        if reason is not None:
            raise TvmqError(reason)
        data, weights, bias = self.get_input_tensors(op)
        padding, stride_w, stride_h = TRANSPOSE_CONV_PARAMS.unpack(
            op.CustomOptionsAsNumpy().tobytes()
        )
        kernel = self.get_tensor_value_or_prefetched(weights).astype(np.float32)  # OHWI
        _, in_h, in_w, _ = (int(d) for d in self.get_tensor_shape(data))
        pads = []
        for size, extent, stride in (
            (in_h, kernel.shape[1], stride_h),
            (in_w, kernel.shape[2], stride_w),
        ):
            total = (
                max(0, extent - (size - 1) % stride - 1) if padding == TFLITE_PADDING_SAME else 0
            )
            pads.append((total // 2, total - total // 2))
        out = relax.op.nn.conv2d_transpose(
            self.get_tensor_expr(data),
            relax.const(np.ascontiguousarray(kernel.transpose(3, 0, 1, 2))),  # IOHW
            strides=(stride_h, stride_w),
            padding=(pads[0][0], pads[1][0], pads[0][1], pads[1][1]),
            data_layout="NHWC",
            kernel_layout="IOHW",
            out_dtype="float32",
        )
        values = self.get_tensor_value_or_prefetched(bias).astype(np.float32)
        return relax.op.add(out, relax.const(values))

    def _hybrid_weights(self, inputs) -> tuple[np.ndarray, np.float32] | None:
        """(int8 values, scale) of a hybrid op's per-tensor int8 weights, else None."""
        hybrid = self._hybrid_channel_weights(inputs)
        if hybrid is None or hybrid[1].size != 1:
            return None
        return hybrid[0], np.float32(hybrid[1][0])

    def _hybrid_channel_weights(self, inputs) -> tuple[np.ndarray, np.ndarray] | None:
        """(int8 values, float32 scales) of a hybrid op's int8 weights with symmetric
        quantization (one scale, or one per output channel), else None."""
        weight = self.subgraph.Tensors(inputs[1].tensor_idx)
        quant = weight.Quantization()
        if (
            inputs[0].tensor.Type() != TensorType.FLOAT32
            or weight.Type() != TensorType.INT8
            or quant is None
            or quant.ScaleLength() == 0
            or (quant.ZeroPointLength() and np.any(quant.ZeroPointAsNumpy()))
        ):
            return None
        raw = self.model.Buffers(weight.Buffer()).DataAsNumpy()
        if not isinstance(raw, np.ndarray):
            return None
        values = np.frombuffer(raw.tobytes(), np.int8).reshape(weight.ShapeAsNumpy())
        scales = np.asarray(quant.ScaleAsNumpy(), np.float32)
        if scales.size not in (1, values.shape[0], values.shape[-1]):
            return None
        return values, scales

    def _hybrid_output(self, accumulator, scale, inputs, options) -> relax.Expr:
        """accumulator x (input scale x weight scale) + bias, then the activation."""
        out = relax.op.multiply(relax.op.astype(accumulator, "float32"), scale)
        if len(inputs) > 2 and inputs[2].tensor_idx != -1:
            out = relax.op.add(out, self.get_tensor_expr(inputs[2]))
        return self.convert_fused_activation_function(out, options.FusedActivationFunction())

    def convert_conv(self, op, conv_type):
        """Hybrid CONV_2D and DEPTHWISE_CONV_2D as LiteRT's reference kernels run them
        (EvalHybrid: per-tensor weights; EvalHybridPerChannel: one scale per output
        channel, the input quantized asymmetrically), else TVM's."""
        inputs = self.get_input_tensors(op)
        hybrid = self._hybrid_channel_weights(inputs)
        if hybrid is None:
            return super().convert_conv(op, conv_type)
        values, scales = hybrid
        if conv_type == "conv2d":
            from tflite.Conv2DOptions import Conv2DOptions as Options
        else:
            from tflite.DepthwiseConv2DOptions import DepthwiseConv2DOptions as Options
        options = Options()
        options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        strides = (options.StrideH(), options.StrideW())
        dilation = (options.DilationHFactor(), options.DilationWFactor())
        per_channel = conv_type != "conv2d" or scales.size > 1
        if conv_type == "conv2d" and per_channel and dilation != (1, 1):
            # TFLite's per-channel hybrid conv ignores dilation: run the float op instead.
            return super().convert_conv(op, conv_type)
        in_shape = to_int_list(self.get_tensor_shape(inputs[0]))
        kernel_hw = (values.shape[1], values.shape[2])
        padding = [0, 0, 0, 0]
        if options.Padding() == Padding.SAME:
            padding = _same_padding(in_shape, kernel_hw, strides, dilation)
        data = self.get_tensor_expr(inputs[0])
        if conv_type == "conv2d":
            kernel, layout, groups = values, "OHWI", 1
        else:  # [1, H, W, C * M] as grouped HWOI
            kernel = values.reshape(*kernel_hw, values.shape[3], 1)
            layout, groups = "HWOI", in_shape[3]
        if not per_channel:
            quantized, scale = _symmetric_quantize_per_batch(data, 4)
            accumulator = _conv_nhwc(quantized, kernel, layout, groups, strides, padding, dilation)
            factor = relax.op.multiply(scale, relax.const(np.float32(scales[0])))
            return self._hybrid_output(accumulator, factor, inputs, options)
        quantized, scale, offset = _asymmetric_quantize_per_batch(data)
        centred = relax.op.subtract(relax.op.astype(quantized, "int32"), offset)
        weights = kernel.astype(np.int32)
        accumulator = _conv_nhwc(centred, weights, layout, groups, strides, padding, dilation)
        channel = relax.const(scales.astype(np.float32).reshape(1, 1, 1, -1))
        value = relax.op.astype(accumulator, "float32")
        if conv_type == "conv2d":  # (acc * channel scale) * input scale, in that order
            out = relax.op.multiply(relax.op.multiply(value, channel), scale)
        else:  # acc * (channel scale * input scale)
            out = relax.op.multiply(value, relax.op.multiply(channel, scale))
        if len(inputs) > 2 and inputs[2].tensor_idx != -1:
            out = relax.op.add(out, self.get_tensor_expr(inputs[2]))
        return self.convert_fused_activation_function(out, options.FusedActivationFunction())

    def convert_logistic(self, op):
        """Float LOGISTIC as TFLite's reference kernel; quantized ones as TVM's."""
        (data,) = self.get_input_tensors(op)
        (out,) = self.get_output_tensors(op)
        if data.qnn_params is not None or out.qnn_params is not None:
            return super().convert_logistic(op)
        return tflite_logistic(self.get_tensor_expr(data))

    def convert_prelu(self, op):
        """x where x >= 0, else x * alpha, with alpha broadcast by the op, not stored at
        the activation's size (TVM's does: MediaPipe's iris model grows to 3.9 MB);
        quantized as a dequantize -> float -> quantize island that realize runs as
        TFLite's integer PRELU."""
        data, alpha = self.get_input_tensors(op)
        (out,) = self.get_output_tensors(op)
        x, slope = self.get_tensor_expr(data), self.get_tensor_expr(alpha)
        if data.qnn_params is not None:
            x = self.dequantize(x, data)
        if alpha.qnn_params is not None:
            slope = self.dequantize(slope, alpha)
        result = prelu(self.bb.normalize(x), slope)
        return result if out.qnn_params is None else self.quantize(result, out)

    def convert_expand_dims(self, op):
        """A new axis of size 1 (TVM's passed Relax's expand_dims a third argument:
        every EXPAND_DIMS failed); quantized tensors are copied as they are."""
        data, axis = self.get_input_tensors(op)
        position = int(np.asarray(self.get_tensor_value(axis)).ravel()[0])
        if position < 0:
            position += len(self.get_tensor_shape(data)) + 1
        return relax.op.expand_dims(self.get_tensor_expr(data), position)

    def convert_batch_matmul(self, op):
        """Float BATCH_MATMUL as one Relax matmul, which broadcasts batch dims itself:
        TVM's looked a constant operand up as a graph tensor (a KeyError), and failed
        on operands of different batch dims; quantized ones stay TVM's (refused)."""
        from tflite.BatchMatMulOptions import BatchMatMulOptions

        tensors = self.get_input_tensors(op)[:2]
        if any(t.qnn_params for t in tensors):
            return super().convert_batch_matmul(op)
        options = BatchMatMulOptions()
        options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        operands = []
        for tensor, adjoint in zip(tensors, (options.AdjX(), options.AdjY()), strict=True):
            value = self.bb.normalize(self.get_tensor_expr(tensor))
            if adjoint:
                rank = len(value.ty.shape)
                value = relax.op.permute_dims(value, [*range(rank - 2), rank - 1, rank - 2])
            operands.append(value)
        return relax.op.matmul(*operands)

    def convert_gather_nd(self, op):
        """TFLite indices end in the coordinate axis, as Relax's gather_nd expects."""
        data, indices = (self.get_tensor_expr(t) for t in self.get_input_tensors(op))
        return relax.op.gather_nd(data, relax.op.astype(indices, "int64"))

    def convert_pack(self, op):
        """Stack along the new axis; quantized inputs are copied as they are."""
        from tflite.PackOptions import PackOptions

        options = PackOptions()
        options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        values = [self.get_tensor_expr(t) for t in self.get_input_tensors(op)]
        return relax.op.stack(values, axis=options.Axis())

    def convert_split_v(self, op):
        """Constant sizes, one of which may be -1 (the rest of the axis; TVM's
        conversion took it for a size)."""
        data, sizes, axis = self.get_input_tensors(op)
        if self.has_expr(sizes.tensor_idx):
            return super().convert_split_v(op)
        shape = to_int_list(self.get_tensor_shape(data))
        axis = int(self.get_tensor_value(axis)) % len(shape)
        sizes = [int(n) for n in self.get_tensor_value(sizes)]
        if -1 in sizes:
            sizes[sizes.index(-1)] = shape[axis] - sum(n for n in sizes if n != -1)
        bounds = [int(n) for n in np.cumsum(sizes)[:-1]]
        out = relax.op.split(self.get_tensor_expr(data), bounds, axis)
        return out[0] if len(sizes) == 1 else out

    def convert_rfft2d(self, op):
        """The real 2-D FFT of the input's last two dims, from the shape the input
        has in the graph (see the module docstring); complex values as TVM holds
        them, a trailing axis of (real, imaginary)."""
        data, lengths = self.get_input_tensors(op)
        (out,) = self.get_output_tensors(op)
        if data.tensor.Type() != TensorType.FLOAT32 or self.has_expr(lengths.tensor_idx):
            return super().convert_rfft2d(op)
        value = self.bb.normalize(self.get_tensor_expr(data))
        shape = tuple(int(d) for d in value.ty.shape)
        height, width = (int(n) for n in np.asarray(self.get_tensor_value(lengths)).ravel())
        if len(shape) < 2 or (height, width) != shape[-2:]:
            raise ValueError(
                f"fft_length ({height}, {width}) other than the input's last two dims "
                f"{list(shape[-2:])} (padding or truncation) is not supported"
            )
        pairs = (*shape[:-2], height, width // 2 + 1, 2)
        add_func = self.conversion_state["module_builder"].add_func
        if height == 1 and fft.is_power_of_two(width):
            return fft.row_fft(value, add_func)
        if fft.is_power_of_two(height) and fft.is_power_of_two(width):
            kernel = tflite_frontend._build_tflite_rfft2d_fft_primfunc(shape, pairs)
        else:
            kernel = tflite_frontend._build_tflite_rfft2d_primfunc(shape, pairs)
        function = add_func(kernel, f"tflite_rfft2d_{out.tensor_idx}")
        return relax.call_tir(function, [value], relax.TensorType(pairs, "float32"))

    def convert_slice(self, op):
        data, begin, size = self.get_input_tensors(op)
        if self.has_expr(begin.tensor_idx) or self.has_expr(size.tensor_idx):
            return super().convert_slice(op)
        value = self.bb.normalize(self.get_tensor_expr(data))
        starts = [int(b) for b in self.get_tensor_value(begin)]
        sizes = [int(n) for n in self.get_tensor_value(size)]
        dims = [int(d) for d in value.ty.shape][: len(starts)]  # not a complex pair axis
        ends = [d if n == -1 else b + n for b, n, d in zip(starts, sizes, dims, strict=True)]
        return relax.op.strided_slice(value, list(range(len(starts))), starts, ends)

    def convert_squeeze(self, op):
        from tflite.SqueezeOptions import SqueezeOptions

        (data,) = self.get_input_tensors(op)
        if data.tensor.Type() != TensorType.COMPLEX64:
            return super().convert_squeeze(op)
        options = SqueezeOptions()
        options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        value = self.bb.normalize(self.get_tensor_expr(data))
        rank = len(value.ty.shape) - 1  # TFLite's rank: the pair axis is not its own
        dims = [options.SqueezeDims(i) for i in range(options.SqueezeDimsLength())]
        axes = [d % rank for d in dims] or [
            axis for axis in range(rank) if int(value.ty.shape[axis]) == 1
        ]
        return relax.op.squeeze(value, axes)

    def convert_quantize(self, op):
        """An integer QUANTIZE to int32 as TFLite's Requantize (TVM's quantize has no
        int32 output); the others as TVM's."""
        (data,) = self.get_input_tensors(op)
        (out,) = self.get_output_tensors(op)
        if out.tensor.Type() != TensorType.INT32:
            return super().convert_quantize(op)
        in_scale, in_zero = per_tensor_params(data.tensor)
        out_scale, out_zero = per_tensor_params(out.tensor)
        ints = IntegerBuilder(self.bb)
        centred = ints.centre(self.get_tensor_expr(data), in_zero)
        scaled = ints.multiply_by_quantized_multiplier(
            centred, *quantize_multiplier(in_scale / out_scale)
        )
        return ints.emit(relax.op.add(scaled, ints.const(out_zero, "int32")))

    def convert_comparison(self, op, compare):
        """Quantized operands compared as TFLite's ComparisonWithScaling does: each
        centred, shifted left by 8 bits and scaled by its own scale as a fixed-point
        multiplier, the two int32 results compared (not the real values: near ties
        the rounding decides)."""
        if not _quantized(self, op):
            return self._convert_elemwise(op, relax_op=compare, comparison_op=True)
        ints = IntegerBuilder(self.bb)
        scaled = []
        for tensor in self.get_input_tensors(op):
            scale, zero_point = per_tensor_params(tensor.tensor)
            centred = ints.centre(self.get_tensor_expr(tensor), zero_point)
            shifted = ints.emit(relax.op.multiply(centred, ints.const(1 << 8, "int32")))
            multiplier = quantize_multiplier(scale)
            scaled.append(ints.multiply_by_quantized_multiplier(shifted, *multiplier))
        return compare(*scaled)

    def convert_svdf(self, op):
        """A quantized SVDF as TFLite Micro's integer kernel; float ones as TVM's."""
        if _quantized(self, op):
            return svdf_int8.convert(self, op)
        return super().convert_svdf(op)

    def convert_unidirectional_sequence_lstm(self, op):
        """A float LSTM over the time axis, unrolled; state starts at zero as in TFLite."""
        from tflite.UnidirectionalSequenceLSTMOptions import UnidirectionalSequenceLSTMOptions

        if _quantized(self, op):
            return lstm_int8.convert(self, op)
        inputs = self.get_input_tensors(op)
        options = UnidirectionalSequenceLSTMOptions()
        options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        present = [t.tensor_idx != -1 for t in inputs]

        def tensor(index: int) -> relax.Expr | None:
            return self.get_tensor_expr(inputs[index]) if present[index] else None

        weights = [tensor(_LSTM_INPUT + g) for g in range(4)]
        recurrent = [tensor(_LSTM_RECURRENT + g) for g in range(4)]
        peephole = [tensor(_LSTM_PEEPHOLE + g) for g in range(3)]
        bias = [tensor(_LSTM_BIAS + g) for g in range(4)]
        data = self.get_tensor_expr(inputs[0])
        if options.TimeMajor():
            data = relax.op.permute_dims(data, [1, 0, 2])
        steps = to_int_list(self.get_tensor_shape(inputs[0]))[0 if options.TimeMajor() else 1]
        state = (None, None)  # zero at the start: its products are left out
        cell = _LstmCell(weights, recurrent, peephole, bias, options, self)
        outputs = []
        for step in range(steps):
            x = relax.op.squeeze(relax.op.strided_slice(data, [1], [step], [step + 1]), [1])
            state = cell(x, *state)
            outputs.append(state[0])
        out = relax.op.stack(outputs, axis=1)
        return relax.op.permute_dims(out, [1, 0, 2]) if options.TimeMajor() else out


class _LstmCell:
    """One LSTM step in TFLite's order (lstm_eval.cc): gates, clipped cell, output."""

    def __init__(self, weights, recurrent, peephole, bias, options, converter):
        self.weights = [None if w is None else relax.op.permute_dims(w) for w in weights]
        self.recurrent = [None if r is None else relax.op.permute_dims(r) for r in recurrent]
        self.peephole, self.bias = peephole, bias
        self.cell_clip = options.CellClip()
        self.activation = options.FusedActivationFunction()
        self.converter = converter

    def gate(self, index: int, x, h, c, activate):
        total = relax.op.matmul(x, self.weights[index])
        if h is not None:
            total = relax.op.add(total, relax.op.matmul(h, self.recurrent[index]))
        peephole = self.peephole[_PEEPHOLE[index]] if index in _PEEPHOLE else None
        if peephole is not None and c is not None:
            total = relax.op.add(total, relax.op.multiply(c, peephole))
        if self.bias[index] is not None:
            total = relax.op.add(total, self.bias[index])
        return activate(total)

    def __call__(self, x, h, c):
        forget = self.gate(1, x, h, c, tflite_logistic)
        if self.weights[0] is None:  # coupled input-forget gate (CIFG)
            input_gate = relax.op.subtract(relax.const(1.0, "float32"), forget)
        else:
            input_gate = self.gate(0, x, h, c, tflite_logistic)
        candidate = self.gate(2, x, h, c, self._activate)
        update = relax.op.multiply(input_gate, candidate)
        c = update if c is None else relax.op.add(relax.op.multiply(forget, c), update)
        if self.cell_clip > 0:
            c = relax.op.clip(c, -self.cell_clip, self.cell_clip)
        output_gate = self.gate(3, x, h, c, tflite_logistic)
        # Without projection weights TFLite ignores proj_clip.
        return relax.op.multiply(output_gate, self._activate(c)), c

    def _activate(self, value):
        return self.converter.convert_fused_activation_function(value, self.activation)


def tflite_logistic(x: relax.Expr) -> relax.Expr:
    """Float32 sigmoid bit for bit as reference_ops::Logistic: 1 above the upper
    cut-off, exp(x) below the lower one, 1 / (1 + exp(-x)) (Relax's sigmoid) between."""
    upper = relax.op.greater(x, relax.const(_LOGISTIC_UPPER, "float32"))
    lower = relax.op.less(x, relax.const(_LOGISTIC_LOWER, "float32"))
    tail = relax.op.where(lower, relax.op.exp(x), relax.op.sigmoid(x))
    return relax.op.where(upper, relax.const(1.0, "float32"), tail)


def _same_padding(in_shape, kernel_hw, strides, dilation) -> list[int]:
    """TFLite's SAME padding of an NHWC input: (top, left, bottom, right)."""
    padding = [0, 0, 0, 0]
    for axis in range(2):
        size, kernel = in_shape[1 + axis], (kernel_hw[axis] - 1) * dilation[axis] + 1
        out = -(-size // strides[axis])
        total = max((out - 1) * strides[axis] + kernel - size, 0)
        padding[axis], padding[axis + 2] = total // 2, total - total // 2
    return padding


def _conv_nhwc(data, kernel: np.ndarray, layout: str, groups: int, strides, padding, dilation):
    """An integer NHWC convolution summed in int32, zeros outside the input."""
    return relax.op.nn.conv2d(
        data,
        relax.const(kernel),
        strides=strides,
        padding=padding,
        dilation=dilation,
        groups=groups,
        data_layout="NHWC",
        kernel_layout=layout,
        out_dtype="int32",
    )


def _with_transpose_conv(expr: relax.Expr, replace) -> relax.Expr:
    """`expr` (a converter's nested calls) with its conv2d_transpose call replaced."""
    if not isinstance(expr, relax.Call):
        return expr
    if getattr(expr.op, "name", None) == "relax.nn.conv2d_transpose":
        return replace(expr)
    args = [_with_transpose_conv(arg, replace) for arg in expr.args]
    return relax.Call(expr.op, args, expr.attrs, expr.ty_args)


def _output_padded(
    call: relax.Call, sizes: list[int], kernel: list[int], wanted: list[int]
) -> relax.Expr:
    """The conv2d_transpose `call` (NHWC) extended to the `wanted` height and width
    by output padding, from input `sizes` and `kernel` height and width."""
    attrs = call.attrs
    strides, pads = [int(s) for s in attrs.strides], [int(p) for p in attrs.padding]
    reached = [
        (size - 1) * stride + extent - before - after
        for size, stride, extent, before, after in zip(
            sizes, strides, kernel, pads[:2], pads[2:], strict=True
        )
    ]
    extra = [want - got for want, got in zip(wanted, reached, strict=True)]
    if extra == [0, 0] or not all(0 <= e < s for e, s in zip(extra, strides, strict=True)):
        return call
    return relax.op.nn.conv2d_transpose(
        *call.args,
        strides=strides,
        padding=pads,
        output_padding=extra,
        dilation=[int(d) for d in attrs.dilation],
        groups=int(attrs.groups),
        data_layout=str(attrs.data_layout),
        kernel_layout=str(attrs.kernel_layout),
        out_layout=str(attrs.out_layout),
        out_dtype=str(attrs.out_dtype) if str(attrs.out_dtype) else None,
    )


def _round_away(value: relax.Expr, dtype: str) -> relax.Expr:
    """Halves away from zero (TfLiteRound, C's round), from floor alone: the C backend
    for microcontrollers has no round."""
    zero, half = (relax.const(v, dtype) for v in (0.0, 0.5))
    negative = relax.op.less(value, zero)
    magnitude = relax.op.where(negative, relax.op.negative(value), value)
    whole = relax.op.floor(magnitude)
    # magnitude - whole is exact: halves round up without the error of floor(m + 0.5).
    up = relax.op.greater_equal(relax.op.subtract(magnitude, whole), half)
    rounded = relax.op.add(whole, relax.op.astype(up, dtype))
    return relax.op.where(negative, relax.op.negative(rounded), rounded)


def _asymmetric_quantize_per_batch(data: relax.Expr) -> tuple[relax.Expr, ...]:
    """TFLite's AsymmetricQuantizeFloats on each batch of a 4-D float tensor, as LiteRT
    computes it: the range [min(0, min x), max(0, max x)], its width in float32, over
    255 steps in double (scale 1 and offset 0 for an all-zero batch); the zero point of
    the smaller error, nudged into [-128, 127] and rounded away from zero; then
    q = round(x * float(1 / scale)) + offset, the product in float32 rounded away from
    zero before the offset is added, clamped. Returns (q int8, scale float32, offset
    int32), one per batch."""
    axes = [1, 2, 3]
    narrow_zero = relax.const(0.0, "float32")
    low32 = relax.op.minimum(relax.op.min(data, axis=axes, keepdims=True), narrow_zero)
    high32 = relax.op.maximum(relax.op.max(data, axis=axes, keepdims=True), narrow_zero)
    zero, one = (relax.const(v, "float64") for v in (0.0, 1.0))
    low, high = relax.op.astype(low32, "float64"), relax.op.astype(high32, "float64")
    empty = relax.op.equal(low, high)
    span = relax.op.astype(relax.op.subtract(high32, low32), "float64")  # float32 difference
    step = relax.op.divide(span, relax.const(255.0, "float64"))
    step = relax.op.where(empty, one, step)
    low_steps, high_steps = relax.op.divide(low, step), relax.op.divide(high, step)
    from_min = relax.op.subtract(relax.const(-128.0, "float64"), low_steps)
    from_max = relax.op.subtract(relax.const(127.0, "float64"), high_steps)
    # |qmin| + |low / step| < |qmax| + |high / step|, with low <= 0 <= high
    from_min_better = relax.op.less(
        relax.op.subtract(relax.const(128.0, "float64"), low_steps),
        relax.op.add(relax.const(127.0, "float64"), high_steps),
    )
    point = relax.op.where(from_min_better, from_min, from_max)
    point = relax.op.clip(_round_away(point, "float64"), -128, 127)
    offset = relax.op.where(empty, zero, point)
    scale = relax.op.astype(step, "float32")
    inverse = relax.op.astype(relax.op.divide(one, relax.op.astype(scale, "float64")), "float32")
    rounded = _round_away(relax.op.multiply(data, inverse), "float32")
    shifted = relax.op.add(rounded, relax.op.astype(offset, "float32"))
    quantized = relax.op.astype(relax.op.clip(shifted, -128, 127), "int8")
    return quantized, scale, relax.op.astype(offset, "int32")


def _symmetric_quantize_per_batch(data: relax.Expr, rank: int) -> tuple[relax.Expr, relax.Expr]:
    """TFLite's SymmetricQuantizeFloats on each batch: scale = max|x| / 127 (1 for
    all zeros), q = round(x * (127 / max|x|)) halves away from zero, in [-127, 127].
    Written without abs or round, which the C backend for microcontrollers lacks."""
    axes = list(range(1, rank))
    span = relax.op.maximum(
        relax.op.max(data, axis=axes, keepdims=True),
        relax.op.negative(relax.op.min(data, axis=axes, keepdims=True)),
    )
    zero, one = (relax.const(v, "float32") for v in (0.0, 1.0))
    empty = relax.op.equal(span, zero)
    levels = relax.const(127.0, "float32")
    scale = relax.op.where(empty, one, relax.op.divide(span, levels))
    inverse = relax.op.where(empty, zero, relax.op.divide(levels, span))
    rounded = _round_away(relax.op.multiply(data, inverse), "float32")
    quantized = relax.op.astype(relax.op.clip(rounded, -127, 127), "int8")
    return quantized, scale


class _SomeOperators:
    """A TFLite subgraph showing only some of its operators."""

    def __init__(self, graph, kept: list[int]):
        self._graph, self._kept = graph, kept

    def OperatorsLength(self) -> int:
        return len(self._kept)

    def Operators(self, index: int):
        return self._graph.Operators(self._kept[index])

    def __getattr__(self, name: str):
        return getattr(self._graph, name)


def _quantized(converter: OperatorConverter, op) -> bool:
    """True when any tensor of `op` carries quantization parameters."""
    tensors = converter.get_input_tensors(op) + converter.get_output_tensors(op)
    return any(t.tensor_idx != -1 and t.qnn_params is not None for t in tensors)


def refusal(converter: OperatorConverter, op) -> str | None:
    """Why tvmq cannot run `op`, or None when it can."""
    name = converter.get_op_code_str(op)
    inputs = converter.get_input_tensors(op)
    if name in REFUSED_QUANTIZED and _quantized(converter, op):
        return REFUSED_QUANTIZED[name]
    if name in COMPARISONS and _quantized(converter, op):
        return _comparison_refusal(inputs)
    if name in QUANTIZED_INTEGER_KERNELS and _quantized(converter, op):
        return QUANTIZED_INTEGER_KERNELS[name].refusal(converter, op)
    if name == "UNIDIRECTIONAL_SEQUENCE_LSTM" and any(
        inputs[i].tensor_idx != -1 for i in _LSTM_PROJECTION + _LSTM_LAYER_NORM
    ):
        return "projection or layer normalisation is not supported"
    if name == "DETECTION_POSTPROCESS":
        return _detection_refusal(converter, op)
    if name == "CONVOLUTION_2D_TRANSPOSE_BIAS":
        return _transpose_conv_bias_refusal(converter, op)
    outputs = converter.get_output_tensors(op)
    if name == "QUANTIZE" and any(t.tensor.Type() == TensorType.INT32 for t in outputs):
        tensors = [t.tensor for t in inputs + outputs]
        if len(tensors) != 2 or tensors[0].Type() not in (TensorType.INT8, TensorType.INT16):
            return "QUANTIZE to int32 is supported from int8 and int16 only"
        if any(per_tensor_params(t) is None for t in tensors):
            return "QUANTIZE to int32 needs one scale per tensor"
    return None


def _comparison_refusal(inputs) -> str | None:
    """Why tvmq cannot compare these quantized operands as TFLite does, or None."""
    params = [per_tensor_params(t.tensor) if t.qnn_params else None for t in inputs]
    if any(p is None for p in params):
        return "quantized comparison needs both operands quantized per tensor"
    if any(scale >= 1.0 for scale, _ in params):
        return "quantized comparison with a scale of 1 or more (TFLite's kernels take less)"
    return None


def _transpose_conv_bias_refusal(converter: OperatorConverter, op) -> str | None:
    """Why tvmq cannot run this Convolution2DTransposeBias, or None."""
    raw = op.CustomOptionsAsNumpy()
    if not isinstance(raw, np.ndarray) or raw.size != TRANSPOSE_CONV_PARAMS.size:
        return f"custom options are not the {TRANSPOSE_CONV_PARAMS.size} bytes of its parameters"
    _, stride_w, stride_h = TRANSPOSE_CONV_PARAMS.unpack(raw.tobytes())
    if min(stride_w, stride_h) < 1:
        return f"stride {stride_h}x{stride_w} is not positive"
    tensors = converter.get_input_tensors(op)
    if len(tensors) != 3 or len(converter.get_output_tensors(op)) != 1:
        return "needs 3 inputs (data, weights, bias) and 1 output"
    if _quantized(converter, op):
        return "quantized: MediaPipe's kernel is float only"
    for tensor, rank in zip(tensors, (4, 4, 1), strict=True):
        if len(converter.get_tensor_shape(tensor)) != rank:
            return f"tensor '{tensor.tensor.Name().decode()}' is not of rank {rank}"
    if not all(_constant_or_dequantized(converter, t.tensor_idx) for t in tensors[1:]):
        return "weights and bias must be constants"
    return None


def _constant_or_dequantized(converter: OperatorConverter, index: int) -> bool:
    """A constant tensor, or the DEQUANTIZE of one (float16 weights are folded)."""
    graph = converter.subgraph
    if (
        converter.is_prefetched(index)
        or converter.model.Buffers(graph.Tensors(index).Buffer()).DataLength()
    ):
        return True
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if index in op.OutputsAsNumpy() and converter.get_op_code_str(op) == "DEQUANTIZE":
            return _constant_or_dequantized(converter, int(op.InputsAsNumpy()[0]))
    return False


def _detection_options(op) -> detection_postprocess.DetectionOptions:
    raw = op.CustomOptionsAsNumpy()  # 0 when the op has none
    if not isinstance(raw, np.ndarray):
        raise TvmqError("no custom options")
    return detection_postprocess.DetectionOptions.parse(raw.tobytes())


def _detection_refusal(converter: OperatorConverter, op) -> str | None:
    """Why tvmq cannot run this TFLite_Detection_PostProcess, or None."""
    try:
        options = _detection_options(op)
    except TvmqError as error:
        return str(error)
    reason = options.refusal()
    if reason is not None:
        return reason
    tensors = converter.get_input_tensors(op)
    if len(tensors) != 3 or len(converter.get_output_tensors(op)) != 4:
        return "needs 3 inputs and 4 outputs"
    if _quantized(converter, op) or any(t.tensor.Type() != TensorType.FLOAT32 for t in tensors):
        return "quantized or non-float inputs are not supported (TFLite Micro: float only)"
    if tensors[2].buffer.DataLength() == 0:
        return "the anchors are not a constant"
    encodings, scores, anchors = (
        tuple(int(d) for d in converter.get_tensor_shape(t)) for t in tensors
    )
    return detection_postprocess.shape_refusal(options, encodings, scores, anchors)
