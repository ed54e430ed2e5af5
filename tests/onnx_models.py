"""Small ONNX graphs built in the tests, one per operator family."""

from __future__ import annotations

import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def seeded(name: str) -> np.random.Generator:
    """A generator seeded by `name`: a model's weights are the same whichever tests
    built models before it (one shared generator made them depend on test order)."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def weight(name: str, *shape: int, scale: float = 0.5) -> onnx.TensorProto:
    values = seeded(f"{name}{shape}").standard_normal(shape) * scale
    return numpy_helper.from_array(values.astype(np.float32), name)


def graph_model(nodes, inputs, output_shape, initializers=(), opset=13) -> onnx.ModelProto:
    """A float32 model with inputs {name: shape} and one output 'y'."""
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)],
        list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def conv() -> onnx.ModelProto:
    return graph_model(
        [
            helper.make_node(
                "Conv",
                ["x", "w", "b"],
                ["y"],
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
                strides=[2, 2],
            )
        ],
        {"x": [1, 3, 16, 16]},
        [1, 8, 8, 8],
        [weight("w", 8, 3, 3, 3), weight("b", 8)],
    )


def depthwise_conv() -> onnx.ModelProto:
    return graph_model(
        [
            helper.make_node(
                "Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=6
            )
        ],
        {"x": [1, 6, 10, 10]},
        [1, 6, 10, 10],
        [weight("w", 6, 1, 3, 3), weight("b", 6)],
    )


def gemm() -> onnx.ModelProto:
    return graph_model(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
        {"x": [2, 20]},
        [2, 12],
        [weight("w", 12, 20), weight("b", 12)],
    )


def pooling() -> onnx.ModelProto:
    return graph_model(
        [
            helper.make_node("MaxPool", ["x"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("AveragePool", ["m"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("GlobalAveragePool", ["a"], ["y"]),
        ],
        {"x": [1, 4, 12, 12]},
        [1, 4, 1, 1],
    )


def add_concat_softmax() -> onnx.ModelProto:
    return graph_model(
        [
            helper.make_node("Add", ["x1", "x2"], ["s"]),
            helper.make_node("Concat", ["s", "x1"], ["c"], axis=1),
            helper.make_node("Softmax", ["c"], ["y"], axis=-1),
        ],
        {"x1": [1, 5], "x2": [1, 5]},
        [1, 10],
    )


def batch_norm() -> onnx.ModelProto:
    variance = numpy_helper.from_array(
        seeded("batch_norm").uniform(0.5, 2.0, 4).astype(np.float32), "var"
    )
    return graph_model(
        [
            helper.make_node(
                "BatchNormalization", ["x", "g", "b", "mean", "var"], ["y"], epsilon=1e-3
            )
        ],
        {"x": [1, 4, 6, 6]},
        [1, 4, 6, 6],
        [weight("g", 4), weight("b", 4), weight("mean", 4), variance],
    )


def conv_relu_gemm() -> onnx.ModelProto:
    """A tiny CNN for static quantization."""
    return graph_model(
        [
            helper.make_node(
                "Conv", ["x", "w1", "b1"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]
            ),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node(
                "Conv", ["r", "w2", "b2"], ["d"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8
            ),
            helper.make_node("Relu", ["d"], ["e"]),
            helper.make_node("Flatten", ["e"], ["f"]),
            helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
        ],
        {"x": [1, 3, 8, 8]},
        [1, 10],
        [
            weight("w1", 8, 3, 3, 3),
            weight("b1", 8),
            weight("w2", 8, 1, 3, 3),
            weight("b2", 8),
            weight("w3", 10, 512, scale=0.05),
            weight("b3", 10),
        ],
    )


def with_unsupported_op() -> onnx.ModelProto:
    """A valid ONNX graph using an operator (in a custom domain) no importer handles."""
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu0"),
            helper.make_node("FancyActivation", ["r"], ["y"], name="fancy1", domain="com.example"),
        ],
        "unsupported",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)],
        ir_version=8,
    )


def constant(name: str, array: np.ndarray) -> onnx.NodeProto:
    """A Constant node holding `array` (weights some exporters keep out of initializers)."""
    return helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(array, name), name=f"{name}_node"
    )


def free_dims_conv() -> onnx.ModelProto:
    """A conv net whose batch, height and width are free (symbols N, H, W), its first
    weights in Constant nodes (a tensor, and a bias as `value_floats`)."""
    rng = seeded("free_dims_conv")
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.5).astype(np.float32)
    b1 = rng.standard_normal(8).astype(np.float32)
    graph = helper.make_graph(
        [
            constant("w1", w1),
            helper.make_node("Constant", [], ["b1"], value_floats=b1.tolist(), name="b1_node"),
            helper.make_node(
                "Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]
            ),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node(
                "Conv",
                ["r1", "w2", "b2"],
                ["c2"],
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
                strides=[2, 2],
                name="conv2",
            ),
            helper.make_node("MaxPool", ["c2"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
        ],
        "free_dims",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6, None, None])],
        [weight("w2", 6, 8, 3, 3, scale=0.2), weight("b2", 6)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def failing_conversion() -> onnx.ModelProto:
    """Operators TVM's importer has converters for but rejects here: LRN over a 5-D
    input (ONNX allows any rank >= 3, TVM only 3-D and 4-D), twice, around a Relu."""
    return graph_model(
        [
            helper.make_node("LRN", ["x"], ["l"], size=3, name="lrn_a"),
            helper.make_node("Relu", ["l"], ["r"], name="relu"),
            helper.make_node("LRN", ["r"], ["y"], size=3, name="lrn_b"),
        ],
        {"x": [1, 4, 3, 5, 5]},
        [1, 4, 3, 5, 5],
    )


def cumulative_sum() -> onnx.ModelProto:
    """A CumSum between elementwise ops: it imports and builds for the host, but has
    no ahead-of-time kernel, so Cortex-M lowering fails at that one node."""
    axis = numpy_helper.from_array(np.array(1, np.int64), "axis")
    return graph_model(
        [
            helper.make_node("Relu", ["x"], ["a"], name="first_relu"),
            helper.make_node("Sigmoid", ["a"], ["b"], name="squash"),
            helper.make_node("CumSum", ["b", "axis"], ["c"], name="running_total"),
            helper.make_node("Tanh", ["c"], ["y"], name="last"),
        ],
        {"x": [1, 8]},
        [1, 8],
        [axis],
    )


def multiple_outputs() -> onnx.ModelProto:
    """Outputs of every kind an ahead-of-time build must give a buffer of its own: two
    results of one kernel (Split), a model input as is, a reshaped input, a reshaped
    kernel result and a matrix product."""
    nodes = [
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Split", ["r", "split"], ["y1", "y2"], axis=1),
        helper.make_node("Identity", ["b"], ["y3"]),
        helper.make_node("Flatten", ["b"], ["y4"]),
        helper.make_node("Add", ["a", "b"], ["s"]),
        helper.make_node("Reshape", ["s", "shape"], ["y5"]),
        helper.make_node("MatMul", ["b", "w"], ["y6"]),
    ]
    outputs = {"y1": [1, 2], "y2": [1, 4], "y3": [1, 6], "y4": [1, 6], "y5": [2, 3], "y6": [1, 3]}
    graph = helper.make_graph(
        nodes,
        "multi",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 6]) for n in ("a", "b")],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
        [
            numpy_helper.from_array(np.array([2, 4], np.int64), "split"),
            numpy_helper.from_array(np.array([2, 3], np.int64), "shape"),
            weight("w", 6, 3),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def single_channel() -> onnx.ModelProto:
    """Shapes that quantize into one-element and 0-d tensors: a convolution with one
    output channel, a dense layer with one output and a bias of shape (1,), and a mean
    over every axis (a scalar output)."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1),
        helper.make_node("ReduceMean", ["c"], ["m"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "single",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1]),
            helper.make_tensor_value_info("m", TensorProto.FLOAT, []),
        ],
        [weight("w1", 1, 2, 3, 3), weight("b1", 1), weight("w2", 1, 16), weight("b2", 1)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def conv_transpose(
    channels: int = 4, group: int = 1, stride: int = 2, pads=(0, 0, 0, 0), output_padding=(0, 0)
) -> onnx.ModelProto:
    """Conv -> ConvTranspose (upsampling, as in detection/segmentation heads)."""
    kernel = 3
    height = 5
    out = [
        (height - 1) * stride - pads[i] - pads[i + 2] + kernel + output_padding[i] for i in (0, 1)
    ]
    return graph_model(
        [
            helper.make_node("Conv", ["x", "w1"], ["c"], kernel_shape=[1, 1]),
            helper.make_node(
                "ConvTranspose",
                ["c", "w2", "b2"],
                ["y"],
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=list(pads),
                output_padding=list(output_padding),
                group=group,
            ),
        ],
        {"x": [1, 3, height, height]},
        [1, 6, *out],
        [
            weight("w1", channels, 3, 1, 1),
            weight("w2", channels, 6 // group, 3, 3),
            weight("b2", 6),
        ],
    )


def clip_inputs() -> onnx.ModelProto:
    """Conv -> Clip(0, 6) with bounds as inputs (opset 13)."""
    bounds = [numpy_helper.from_array(np.float32(v), n) for n, v in (("lo", 0.0), ("hi", 6.0))]
    return graph_model(
        [
            helper.make_node("Conv", ["x", "w1"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Clip", ["c", "lo", "hi"], ["r"]),
            helper.make_node("Conv", ["r", "w2"], ["y"], kernel_shape=[1, 1]),
        ],
        {"x": [1, 3, 6, 6]},
        [1, 4, 6, 6],
        [weight("w1", 8, 3, 3, 3, scale=2.0), *bounds, weight("w2", 4, 8, 1, 1)],
    )


def shape_reshape() -> onnx.ModelProto:
    """Reshape to [batch, 8] with the batch read from the tensor's own shape, in int32
    and through Constant nodes, as paddle2onnx exports a flatten."""

    def constant(name, values, dtype=TensorProto.INT64):
        tensor = helper.make_tensor(name, dtype, [len(values)], values)
        return helper.make_node("Constant", [], [name], value=tensor)

    return graph_model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
            helper.make_node("GlobalAveragePool", ["c"], ["p"]),
            helper.make_node("Shape", ["p"], ["shape"]),
            helper.make_node("Cast", ["shape"], ["shape32"], to=TensorProto.INT32),
            *(constant(n, [v]) for n, v in [("start", 0), ("end", 1), ("axis", 0), ("step", 1)]),
            helper.make_node("Slice", ["shape32", "start", "end", "axis", "step"], ["batch32"]),
            helper.make_node("Cast", ["batch32"], ["batch"], to=TensorProto.INT64),
            constant("features32", [8], TensorProto.INT32),
            helper.make_node("Cast", ["features32"], ["features"], to=TensorProto.INT64),
            helper.make_node("Concat", ["batch", "features"], ["target"], axis=0),
            helper.make_node("Reshape", ["p", "target"], ["f"]),
            helper.make_node("Gemm", ["f", "g"], ["y"], transB=1),
        ],
        {"x": [2, 3, 6, 6]},
        [2, 4],
        [weight("w", 8, 3, 3, 3), weight("g", 4, 8)],
    )


def conv_resize(mode: str = "nearest", transform: str = "asymmetric") -> onnx.ModelProto:
    """Conv -> Resize x2 (scales input), as FPN/segmentation necks upsample."""
    options = {"nearest_mode": "floor"} if mode == "nearest" else {}
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    return graph_model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
            helper.make_node(
                "Resize",
                ["c", "", "scales"],
                ["y"],
                mode=mode,
                coordinate_transformation_mode=transform,
                **options,
            ),
        ],
        {"x": [1, 3, 5, 6]},
        [1, 4, 10, 12],
        [weight("w", 4, 3, 1, 1), scales],
    )


def qdq_resize(
    in_size: int, out_size: int, transform: str, dtype: str, scale: float, zero_point: int
) -> onnx.ModelProto:
    """A quantized bilinear Resize as onnxruntime's quantizer writes one (DequantizeLinear
    -> Resize -> QuantizeLinear, both sides sharing scale and zero point), NCHW, 2
    channels, square, resized to `out_size` by its sizes input."""
    elem = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8}[dtype]
    initializers = [
        numpy_helper.from_array(np.array(scale, np.float32), "scale"),
        numpy_helper.from_array(np.array(zero_point, dtype), "zero_point"),
        numpy_helper.from_array(np.array([1, 2, out_size, out_size], np.int64), "sizes"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("DequantizeLinear", ["x", "scale", "zero_point"], ["real"]),
            helper.make_node(
                "Resize",
                ["real", "", "", "sizes"],
                ["resized"],
                mode="linear",
                coordinate_transformation_mode=transform,
            ),
            helper.make_node("QuantizeLinear", ["resized", "scale", "zero_point"], ["y"]),
        ],
        "qdq_resize",
        [helper.make_tensor_value_info("x", elem, [1, 2, in_size, in_size])],
        [helper.make_tensor_value_info("y", elem, [1, 2, out_size, out_size])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def if_branches() -> onnx.ModelProto:
    """MatMul -> If (on a 0-d int64 input, as silero-vad picks its sample rate) ->
    Relu -> MatMul: TVM imports the If as a non-dataflow block."""

    def branch(name: str, gain: float) -> onnx.GraphProto:
        output = helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [1, 4])
        gain_tensor = numpy_helper.from_array(np.array(gain, np.float32), f"{name}_gain")
        mul = helper.make_node("Mul", ["h", f"{name}_gain"], [f"{name}_out"])
        return helper.make_graph([mul], name, [], [output], [gain_tensor])

    rng = np.random.default_rng(5)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w0"], ["h"]),
            helper.make_node("Equal", ["rate", "r16k"], ["is16k"]),
            helper.make_node(
                "If",
                ["is16k"],
                ["chosen"],
                then_branch=branch("then", 1.0),
                else_branch=branch("else", -2.0),
            ),
            helper.make_node("Relu", ["chosen"], ["r"]),
            helper.make_node("MatMul", ["r", "w1"], ["y"]),
        ],
        "if_branches",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("rate", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [
            numpy_helper.from_array(np.array(16000, np.int64), "r16k"),
            numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "w0"),
            numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "w1"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model


# Weights in 7 bits, as onnxruntime's quantizer writes them with reduce_range: on x86
# CPUs without VNNI its u8s8 kernels (vpmaddubsw) saturate int16 pair sums of full
# 8-bit weights, so its outputs depend on the CPU; within 7 bits they are exact.
QDQ_WEIGHT_RANGE = (-64, 64)


def qdq_conv(rng: np.random.Generator, group: int = 1) -> onnx.ModelProto:
    """A quantized convolution as onnxruntime's static quantizer writes one: uint8
    activations, int8 weights with one random scale per output channel, an int32
    bias at input scale x weight scale, DequantizeLinear -> Conv -> QuantizeLinear;
    NCHW, 4 output channels, 3x3, padded (`group` 4 is depthwise)."""
    channels = 4
    x_scale, y_scale = (np.float32(rng.uniform(0.005, 0.05)) for _ in range(2))
    w_scale = rng.uniform(0.002, 0.02, channels).astype(np.float32)
    bias_scale = (x_scale * w_scale).astype(np.float32)
    initializers = [
        numpy_helper.from_array(x_scale, "x_scale"),
        numpy_helper.from_array(np.array(rng.integers(0, 256), np.uint8), "x_zero_point"),
        numpy_helper.from_array(y_scale, "y_scale"),
        numpy_helper.from_array(np.array(rng.integers(0, 256), np.uint8), "y_zero_point"),
        numpy_helper.from_array(
            rng.integers(*QDQ_WEIGHT_RANGE, (channels, channels // group, 3, 3)).astype(np.int8),
            "w",
        ),
        numpy_helper.from_array(w_scale, "w_scale"),
        numpy_helper.from_array(np.zeros(channels, np.int8), "w_zero_point"),
        numpy_helper.from_array(rng.integers(-3000, 3000, channels).astype(np.int32), "b"),
        numpy_helper.from_array(bias_scale, "b_scale"),
        numpy_helper.from_array(np.zeros(channels, np.int32), "b_zero_point"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "x_scale", "x_zero_point"], ["real"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero_point"], ["weight"], axis=0),
        helper.make_node("DequantizeLinear", ["b", "b_scale", "b_zero_point"], ["bias"], axis=0),
        helper.make_node(
            "Conv", ["real", "weight", "bias"], ["conv"], pads=[1, 1, 1, 1], group=group
        ),
        helper.make_node("QuantizeLinear", ["conv", "y_scale", "y_zero_point"], ["y"]),
    ]
    return _integer_model(nodes, {"x": [1, channels, 6, 6]}, [1, channels, 6, 6], initializers)


def qdq_matmul(rng: np.random.Generator) -> onnx.ModelProto:
    """A quantized MatMul as onnxruntime's static quantizer writes one: uint8
    activations (2 x 16 x 32), int8 weights (32 x 16) with one random scale per output
    column."""
    columns = 16
    initializers = [
        numpy_helper.from_array(np.float32(rng.uniform(0.005, 0.05)), "x_scale"),
        numpy_helper.from_array(np.array(rng.integers(0, 256), np.uint8), "x_zero_point"),
        numpy_helper.from_array(np.float32(rng.uniform(0.05, 0.5)), "y_scale"),
        numpy_helper.from_array(np.array(rng.integers(0, 256), np.uint8), "y_zero_point"),
        numpy_helper.from_array(
            rng.integers(*QDQ_WEIGHT_RANGE, (32, columns)).astype(np.int8), "w"
        ),
        numpy_helper.from_array(rng.uniform(0.002, 0.02, columns).astype(np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(columns, np.int8), "w_zero_point"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "x_scale", "x_zero_point"], ["real"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero_point"], ["weight"], axis=1),
        helper.make_node("MatMul", ["real", "weight"], ["product"]),
        helper.make_node("QuantizeLinear", ["product", "y_scale", "y_zero_point"], ["y"]),
    ]
    return _integer_model(nodes, {"x": [2, 16, 32]}, [2, 16, columns], initializers)


def qdq_binary(rng: np.random.Generator, op: str = "Add") -> onnx.ModelProto:
    """A quantized Add or Mul of two uint8 tensors with random scales and zero
    points, as onnxruntime's static quantizer writes one (DequantizeLinear x2 -> op
    -> QuantizeLinear). The scales often make halves to round: an Add's inputs 1/2,
    1 or 2 times the output's, a Mul's output 2 or 4 times their product."""
    tie_or_any = [rng.choice([0.5, 1.0, 2.0, rng.uniform(0.2, 5)]) for _ in "ab"]
    if op == "Add":
        y_scale = rng.uniform(0.005, 0.05)
        scales = [tie_or_any[0] * y_scale, tie_or_any[1] * y_scale, y_scale]
    else:
        a_scale, b_scale = rng.uniform(0.02, 0.2, 2)
        factor = rng.choice([2.0, 4.0, rng.uniform(1, 50)])
        scales = [a_scale, b_scale, a_scale * b_scale * factor]
    initializers = []
    for name, scale in zip("aby", scales, strict=True):
        initializers += [
            numpy_helper.from_array(np.float32(scale), f"{name}_scale"),
            numpy_helper.from_array(np.array(rng.integers(0, 256), np.uint8), f"{name}_zp"),
        ]
    nodes = [
        helper.make_node("DequantizeLinear", ["a", "a_scale", "a_zp"], ["real_a"]),
        helper.make_node("DequantizeLinear", ["b", "b_scale", "b_zp"], ["real_b"]),
        helper.make_node(op, ["real_a", "real_b"], ["result"]),
        helper.make_node("QuantizeLinear", ["result", "y_scale", "y_zp"], ["y"]),
    ]
    shape = [1, 3, 8, 8]
    return _integer_model(nodes, {"a": shape, "b": shape}, shape, initializers)


def _integer_model(nodes, inputs, output_shape, initializers) -> onnx.ModelProto:
    """A model with uint8 inputs {name: shape} and one uint8 output 'y'."""
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info(n, TensorProto.UINT8, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, output_shape)],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def shape_if() -> onnx.ModelProto:
    """Batch-size guards as torch.onnx exports them: `If` on Shape -> Gather -> Equal,
    the taken branch holding a Constant, a Squeeze and a nested `If` of its own."""

    def constant(name, values):
        return helper.make_node(
            "Constant",
            [],
            [name],
            value=helper.make_tensor(name, TensorProto.INT64, [len(values)], values),
        )

    def branch(name, nodes, output):
        out = helper.make_tensor_value_info(output, TensorProto.FLOAT, None)
        return helper.make_graph(nodes, name, [], [out])

    inner = helper.make_node(
        "If",
        ["wide"],
        ["s2"],
        then_branch=branch("relu", [helper.make_node("Relu", ["s"], ["r"])], "r"),
        else_branch=branch("same", [helper.make_node("Identity", ["s"], ["i"])], "i"),
    )
    then_nodes = [
        constant("axes", [0]),
        helper.make_node("Squeeze", ["c", "axes"], ["s"]),
        helper.make_node("Shape", ["s"], ["s_shape"]),
        constant("zero", [0]),
        helper.make_node("Gather", ["s_shape", "zero"], ["channels"]),
        constant("eight", [8]),
        helper.make_node("Equal", ["channels", "eight"], ["wide"]),
        inner,
    ]
    else_nodes = [constant("flat", [8, 16]), helper.make_node("Reshape", ["c", "flat"], ["e"])]
    return graph_model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
            helper.make_node("Shape", ["c"], ["shape"]),
            constant("first", [0]),
            helper.make_node("Gather", ["shape", "first"], ["batch"]),
            constant("one", [1]),
            helper.make_node("Equal", ["batch", "one"], ["single"]),
            helper.make_node(
                "If",
                ["single"],
                ["picked"],
                then_branch=branch("squeeze", then_nodes, "s2"),
                else_branch=branch("reshape", else_nodes, "e"),
            ),
            helper.make_node("Add", ["picked", "picked"], ["y"]),
        ],
        {"x": [1, 3, 6, 6]},
        [8, 4, 4],
        [weight("w", 8, 3, 3, 3)],
    )


def fp16_weights() -> onnx.ModelProto:
    """Weights stored as float16 and Cast to float32 in the graph, as fp16 exports
    keep them; the Conv's and the Gemm's weights are computed from constants."""
    w = numpy_helper.from_array(
        (seeded("w16").standard_normal((8, 3, 3, 3)) * 0.5).astype(np.float16), "w16"
    )
    g = numpy_helper.from_array(
        (seeded("g16").standard_normal((8, 4)) * 0.5).astype(np.float16), "g16"
    )
    return graph_model(
        [
            helper.make_node("Cast", ["w16"], ["w"], to=TensorProto.FLOAT),
            helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("GlobalAveragePool", ["r"], ["p"]),
            helper.make_node("Flatten", ["p"], ["f"]),
            helper.make_node("Cast", ["g16"], ["g32"], to=TensorProto.FLOAT),
            helper.make_node("Transpose", ["g32"], ["g"], perm=[1, 0]),
            helper.make_node("Gemm", ["f", "g"], ["y"], transB=1),
        ],
        {"x": [1, 3, 6, 6]},
        [1, 4],
        [w, g],
    )


def _scale_and_zero_point(rng: np.random.Generator, name: str, low=0.005, high=0.05) -> list:
    return [
        numpy_helper.from_array(np.float32(rng.uniform(low, high)), f"{name}_scale"),
        numpy_helper.from_array(np.array(rng.integers(0, 256), np.uint8), f"{name}_zp"),
    ]


def _qoperator_model(node, inputs, output_shape, initializers) -> onnx.ModelProto:
    """A QOperator model (uint8 in and out), with the com.microsoft domain imported."""
    graph = helper.make_graph(
        [node],
        "qoperator",
        [helper.make_tensor_value_info(n, TensorProto.UINT8, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, output_shape)],
        initializers,
    )
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=8)
    onnx.checker.check_model(model)
    return model


def qoperator(kind: str, rng: np.random.Generator) -> onnx.ModelProto:
    """One operator of onnxruntime's QOperator format (what `quantize_static` writes
    with `QuantFormat.QOperator`, and the ONNX Model Zoo's int8 models hold), uint8
    activations with random scales and zero points: conv and depthwise (int8 weights,
    one scale per output channel, int32 bias), matmul, gemm (com.microsoft QGemm),
    add, mul, sigmoid, leaky ReLU, global and windowed average pooling, softmax,
    concat."""
    shape = [1, 4, 6, 6]
    params = _scale_and_zero_point(rng, "x") + _scale_and_zero_point(rng, "y", 0.01, 0.1)
    xyz = ["x", "x_scale", "x_zp"]
    yz = ["y_scale", "y_zp"]
    ms = {"domain": "com.microsoft"}
    if kind in ("conv", "depthwise"):
        group = 4 if kind == "depthwise" else 1
        params += [
            numpy_helper.from_array(
                rng.integers(*QDQ_WEIGHT_RANGE, (4, 4 // group, 3, 3)).astype(np.int8), "w"
            ),
            numpy_helper.from_array(rng.uniform(0.002, 0.02, 4).astype(np.float32), "w_scale"),
            numpy_helper.from_array(np.zeros(4, np.int8), "w_zp"),
            numpy_helper.from_array(rng.integers(-3000, 3000, 4).astype(np.int32), "b"),
        ]
        node = helper.make_node(
            "QLinearConv",
            [*xyz, "w", "w_scale", "w_zp", *yz, "b"],
            ["y"],
            pads=[1, 1, 1, 1],
            group=group,
        )
        return _qoperator_model(node, {"x": shape}, shape, params)
    if kind in ("matmul", "gemm"):
        columns = 8
        weights = rng.integers(*QDQ_WEIGHT_RANGE, (16, columns)).astype(np.int8)
        params += [
            numpy_helper.from_array(weights.T.copy() if kind == "gemm" else weights, "w"),
            numpy_helper.from_array(
                rng.uniform(0.002, 0.02, columns).astype(np.float32), "w_scale"
            ),
            numpy_helper.from_array(np.zeros(columns, np.int8), "w_zp"),
        ]
        if kind == "matmul":
            node = helper.make_node("QLinearMatMul", [*xyz, "w", "w_scale", "w_zp", *yz], ["y"])
            return _qoperator_model(node, {"x": [3, 16]}, [3, columns], params)
        params.append(
            numpy_helper.from_array(rng.integers(-3000, 3000, columns).astype(np.int32), "b")
        )
        node = helper.make_node(
            "QGemm", [*xyz, "w", "w_scale", "w_zp", "b", *yz], ["y"], transB=1, **ms
        )
        return _qoperator_model(node, {"x": [3, 16]}, [3, columns], params)
    if kind in ("add", "mul"):
        params += _scale_and_zero_point(rng, "b")
        op = "QLinearAdd" if kind == "add" else "QLinearMul"
        node = helper.make_node(op, [*xyz, "b", "b_scale", "b_zp", *yz], ["y"], **ms)
        return _qoperator_model(node, {"x": shape, "b": shape}, shape, params)
    if kind == "sigmoid":
        node = helper.make_node("QLinearSigmoid", [*xyz, *yz], ["y"], **ms)
        return _qoperator_model(node, {"x": shape}, shape, params)
    if kind == "leaky_relu":
        alpha = float(rng.uniform(0.05, 0.3))
        node = helper.make_node("QLinearLeakyRelu", [*xyz, *yz], ["y"], alpha=alpha, **ms)
        return _qoperator_model(node, {"x": shape}, shape, params)
    if kind == "global_average_pool":
        node = helper.make_node("QLinearGlobalAveragePool", [*xyz, *yz], ["y"], **ms)
        return _qoperator_model(node, {"x": shape}, [1, 4, 1, 1], params)
    if kind == "average_pool":
        node = helper.make_node(
            "QLinearAveragePool", [*xyz, *yz], ["y"], kernel_shape=[2, 2], strides=[2, 2], **ms
        )
        return _qoperator_model(node, {"x": shape}, [1, 4, 3, 3], params)
    if kind == "softmax":  # onnxruntime multiplies by floor(1 / y_scale): not 1/256 here
        params = [
            *_scale_and_zero_point(rng, "x", 0.02, 0.2),
            numpy_helper.from_array(np.float32(rng.uniform(0.003, 0.01)), "y_scale"),
            numpy_helper.from_array(np.array(rng.integers(0, 20), np.uint8), "y_zp"),
        ]
        node = helper.make_node("QLinearSoftmax", [*xyz, *yz], ["y"], axis=-1, opset=13, **ms)
        return _qoperator_model(node, {"x": [3, 10]}, [3, 10], params)
    if kind == "softmax_opset11":  # over the dims from axis 1 on: 2 x 5 values at once
        params = _scale_and_zero_point(rng, "x", 0.02, 0.2) + params[2:]
        node = helper.make_node("QLinearSoftmax", [*xyz, *yz], ["y"], axis=1, opset=11, **ms)
        return _qoperator_model(node, {"x": [3, 2, 5]}, [3, 2, 5], params)
    if kind == "concat":
        params += _scale_and_zero_point(rng, "b")
        node = helper.make_node(
            "QLinearConcat", [*yz, *xyz, "b", "b_scale", "b_zp"], ["y"], axis=1, **ms
        )
        return _qoperator_model(node, {"x": shape, "b": shape}, [1, 8, 6, 6], params)
    raise ValueError(kind)


def conv_prelu() -> onnx.ModelProto:
    """Conv then PRelu with a slope per channel (shape [C, 1, 1], as PyTorch exports)."""
    return graph_model(
        [
            helper.make_node(
                "Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]
            ),
            helper.make_node("PRelu", ["c", "slope"], ["y"]),
        ],
        {"x": [1, 3, 8, 8]},
        [1, 8, 8, 8],
        [weight("w", 8, 3, 3, 3), weight("b", 8), weight("slope", 8, 1, 1, scale=0.2)],
    )


def conv_max_min_clamp() -> onnx.ModelProto:
    """tf2onnx's clamp between convolutions: Max and Min with [1, 1, 1, 1] constants,
    and a three-input Sum (TVM's converters stacked them into 5-D tensors)."""
    low = numpy_helper.from_array(np.full((1, 1, 1, 1), -0.4, np.float32), "low")
    high = numpy_helper.from_array(np.full((1, 1, 1, 1), 0.7, np.float32), "high")
    conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1] * 4)
    return graph_model(
        [
            conv,
            helper.make_node("Max", ["c", "low"], ["m"]),
            helper.make_node("Min", ["m", "high"], ["n"]),
            helper.make_node("Conv", ["n", "w2"], ["d"], kernel_shape=[1, 1]),
            helper.make_node("Sum", ["d", "n", "c"], ["s"]),
            helper.make_node("Mean", ["s", "c"], ["y"]),
        ],
        {"x": [1, 3, 8, 8]},
        [1, 8, 8, 8],
        [weight("w", 8, 3, 3, 3), weight("b", 8), weight("w2", 8, 8, 1, 1), low, high],
    )
