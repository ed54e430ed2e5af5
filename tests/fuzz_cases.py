"""Mutated model files for the fuzz test: seeded, small, one generator per format.

Each generator yields (case name, file bytes) from a few valid models: raw byte
mutations (bit flips, truncation, splices) and structured ones aimed at the
fields importers trust (quantization parameters, dims, types, names, manifests).
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema
from onnx import TensorProto, helper, numpy_helper

from tests import onnx_models, tflite_models
from tests.tflite_graphs import GraphBuilder, uint8_weights

Case = tuple[str, bytes]
BAD_SCALES = (math.nan, math.inf, -math.inf, 0.0, -0.5, 1e-45, 1e38)
BAD_ZERO_POINTS = (128, -129, 255, 1000, -(2**40))
BAD_DIMS = (2**31 - 1, -1, -7, 0)  # TFLite dims are int32; ONNX ones int64
HUGE_DIMS = (2**31, 2**40)


def byte_mutations(name: str, data: bytes, rng: np.random.Generator, count: int) -> Iterator[Case]:
    """Bit flips, truncations, splices and overwrites of `data`."""
    for i in range(count):
        buf = bytearray(data)
        kind = ("flip", "truncate", "splice", "overwrite")[i % 4]
        if kind == "flip":
            for _ in range(int(rng.integers(1, 5))):
                buf[int(rng.integers(len(buf)))] ^= 1 << int(rng.integers(8))
        elif kind == "truncate":
            del buf[int(rng.integers(1, len(buf))) :]
        elif kind == "splice":
            start, end = sorted(int(v) for v in rng.integers(0, len(buf), 2))
            at = int(rng.integers(len(buf)))
            buf[at:at] = buf[start:end]
        else:
            at = int(rng.integers(len(buf) - 4))
            buf[at : at + 4] = bytes(rng.choice([0x00, 0x7F, 0x80, 0xFF], 4).tolist())
        yield f"{name}:{kind}{i}", bytes(buf)


# ----------------------------------------------------------------------------- TFLite


def tflite_bases(directory: Path) -> dict[str, bytes]:
    """Small valid int8 TFLite files (and a 16x8 one, which TVM's importer refuses:
    its mutants exercise reading and checks only)."""
    mul = tflite_models.mul_int8(
        directory / "mul.tflite",
        [(1, 4, 4, 3), (1, 1, 1, 3), (1, 4, 4, 3)],
        [(0.1, 3), (0.05, -2), (0.2, 1)],
    )
    concat = tflite_models.concat_int8(
        directory / "concat.tflite",
        [(1, 2, 3), (1, 4, 3), (1, 6, 3)],
        [(0.1, 0), (0.3, 5), (0.2, -1)],
        axis=1,
    )
    rng = np.random.default_rng(0)
    dense = tflite_models.fully_connected_16x8(
        directory / "dense.tflite",
        rng.integers(-127, 128, (5, 8)),
        rng.integers(-500, 500, 5),
        (0.01, 0.02, 0.05),
    )
    softmax = tflite_models.softmax_int8(directory / "softmax.tflite", (1, 10), 0.1, 4)
    depthwise = _uint8_depthwise(directory / "depthwise.tflite")
    return {p.stem: p.read_bytes() for p in (mul, concat, dense, softmax, depthwise)}


def _uint8_depthwise(path: Path) -> Path:
    """A uint8 DEPTHWISE_CONV_2D with constant weights and int32 bias (TF1 style)."""
    rng = np.random.default_rng(3)
    g = GraphBuilder()
    x = g.tensor("x", (1, 6, 6, 4), "uint8", (0.03, 120))
    weights, w_quant = uint8_weights(rng, (1, 3, 3, 4))
    w = g.tensor("w", weights.shape, "uint8", w_quant, weights)
    bias = rng.integers(-2000, 2000, 4).astype(np.int32)
    b = g.tensor("b", (4,), "int32", (0.03 * w_quant[0], 0), bias)
    y = g.tensor("y", (1, 6, 6, 4), "uint8", (0.02, 0))
    options = {"strideH": 1, "strideW": 1, "depthMultiplier": 1}
    g.op("DEPTHWISE_CONV_2D", [x, w, b], [y], padding=schema.Padding.SAME, **options)
    return g.write(path, [x], [y])


def _repack(model: schema.ModelT) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def tflite_structured(name: str, data: bytes, rng: np.random.Generator) -> Iterator[Case]:
    """Quantization parameters, dims, types and indices the flatbuffer cannot police."""

    def edited(edit) -> bytes:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
        edit(model, model.subgraphs[0])
        return _repack(model)

    def pick(graph):
        return graph.tensors[int(rng.integers(len(graph.tensors)))]

    for scale in BAD_SCALES:

        def set_scale(model, graph, scale=scale):
            pick(graph).quantization.scale = [scale]

        yield f"{name}:scale={scale}", edited(set_scale)
    for zero_point in BAD_ZERO_POINTS:

        def set_zero_point(model, graph, zero_point=zero_point):
            pick(graph).quantization.zeroPoint = [zero_point]

        yield f"{name}:zero_point={zero_point}", edited(set_zero_point)
    for dim in BAD_DIMS:

        def set_dim(model, graph, dim=dim):
            tensor = pick(graph)
            tensor.shape = [dim if i == 0 else d for i, d in enumerate(tensor.shape)]

        yield f"{name}:dim={dim}", edited(set_dim)

    def two_scales(model, graph):
        tensor = pick(graph)
        tensor.quantization.scale = [0.1, 0.2]
        tensor.quantization.zeroPoint = [0, 0, 0]
        tensor.quantization.quantizedDimension = 9

    def unknown_type(model, graph):
        pick(graph).type = 99

    def bad_buffer(model, graph):
        pick(graph).buffer = 1000

    def bad_opcode(model, graph):
        graph.operators[0].opcodeIndex = 50

    def bad_operand(model, graph):
        graph.operators[0].inputs = [
            -5 if i == 0 else t for i, t in enumerate(graph.operators[0].inputs)
        ]

    def bad_input(model, graph):
        graph.inputs = [len(graph.tensors) + 3]

    def undecodable_name(model, graph):
        pick(graph).name = b"\xff\xfe\x80"

    def no_subgraph(model, graph):
        model.subgraphs = []

    def short_weights(model, graph):
        for buffer in model.buffers:
            if buffer.data is not None and len(buffer.data):
                buffer.data = buffer.data[:-1]

    for edit in (
        two_scales, unknown_type, bad_buffer, bad_opcode, bad_operand, bad_input,
        undecodable_name, no_subgraph, short_weights,
    ):  # fmt: skip
        yield f"{name}:{edit.__name__}", edited(edit)


# ----------------------------------------------------------------------------- ONNX


def qdq_conv() -> onnx.ModelProto:
    """Conv between QuantizeLinear/DequantizeLinear pairs: scales and zero points to break."""

    def scalar(name, value, dtype):
        return numpy_helper.from_array(np.array(value, dtype), name)

    weights = np.random.default_rng(1).integers(-127, 128, (4, 2, 3, 3)).astype(np.int8)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="quant_x"),
        helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"], name="dequant_x"),
        helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], name="dequant_w"),
        helper.make_node("Conv", ["xd", "wd"], ["c"], kernel_shape=[3, 3], name="conv"),
        helper.make_node("QuantizeLinear", ["c", "sy", "zy"], ["yq"], name="quant_y"),
        helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"], name="dequant_y"),
    ]
    initializers = [
        scalar("sx", 0.05, np.float32),
        scalar("zx", 3, np.int8),
        numpy_helper.from_array(weights, "wq"),
        scalar("sw", 0.01, np.float32),
        scalar("zw", 0, np.int8),
        scalar("sy", 0.1, np.float32),
        scalar("zy", -4, np.int8),
    ]
    return onnx_models.graph_model(nodes, {"x": [1, 2, 6, 6]}, [1, 4, 4, 4], initializers)


def onnx_bases() -> dict[str, bytes]:
    models = {
        "conv": onnx_models.conv(),
        "add_concat_softmax": onnx_models.add_concat_softmax(),
        "qdq_conv": qdq_conv(),
        "qoperator_add": onnx_models.qoperator("add", np.random.default_rng(0)),
    }
    return {name: model.SerializeToString() for name, model in models.items()}


def onnx_structured(name: str, data: bytes, rng: np.random.Generator) -> Iterator[Case]:
    """Wrong initializer types, unknown element types, bad dims and scales, bad names."""

    def edited(edit) -> bytes:
        model = onnx.load_model_from_string(data)
        edit(model.graph)
        return model.SerializeToString()

    initializers = [t.name for t in onnx.load_model_from_string(data).graph.initializer]
    for data_type in (TensorProto.INT64, TensorProto.STRING, TensorProto.FLOAT16, 0, 99):

        def retype(graph, data_type=data_type):
            graph.initializer[int(rng.integers(len(graph.initializer)))].data_type = data_type

        if initializers:
            yield f"{name}:initializer_type={data_type}", edited(retype)
    for elem_type in (0, 99, TensorProto.STRING, TensorProto.COMPLEX64):

        def elem(graph, elem_type=elem_type):
            graph.input[0].type.tensor_type.elem_type = elem_type

        yield f"{name}:elem_type={elem_type}", edited(elem)
    for dim in BAD_DIMS + HUGE_DIMS:

        def set_dim(graph, dim=dim):
            graph.input[0].type.tensor_type.shape.dim[-1].dim_value = dim

        yield f"{name}:dim={dim}", edited(set_dim)
    for tensor in initializers:
        if not tensor.startswith("s"):
            continue
        for scale in BAD_SCALES:

            def set_scale(graph, tensor=tensor, scale=scale):
                for i, t in enumerate(graph.initializer):
                    if t.name == tensor:
                        graph.initializer[i].CopyFrom(
                            numpy_helper.from_array(np.array(scale, np.float32), tensor)
                        )

            yield f"{name}:{tensor}={scale}", edited(set_scale)

    def scale_in_constant_node(graph, value):
        """The first scale comes from a Constant node, past the initializer checks."""
        for i, tensor in enumerate(graph.initializer):
            if tensor.name.startswith("s"):
                del graph.initializer[i]
                scale = numpy_helper.from_array(np.array(value, np.float32), tensor.name)
                node = helper.make_node("Constant", [], [tensor.name], value=scale)
                graph.node.insert(0, node)
                return

    if any(t.startswith("s") for t in initializers):
        for value in (math.nan, -1.0, 0.0):
            yield (
                f"{name}:constant_node_scale={value}",
                edited(lambda graph, value=value: scale_in_constant_node(graph, value)),
            )

    def raw_too_short(graph):
        tensor = graph.initializer[0]
        tensor.raw_data = tensor.raw_data[:-1] if tensor.raw_data else b"\x00"

    if initializers:
        yield f"{name}:raw_too_short", edited(raw_too_short)
    # Names must be UTF-8 in protobuf; write invalid bytes in place of the input's name.
    marker = b"x" if b"x1" not in data else b"x1"
    field = b"\n" + bytes([len(marker)]) + marker
    if field in data:
        yield (
            f"{name}:undecodable_name",
            data.replace(field, b"\n" + bytes([len(marker)]) + b"\xff" * len(marker), 1),
        )


# ----------------------------------------------------------------------------- .tvmq


def tvmq_base(directory: Path) -> bytes:
    """A model quantized by tvmq (a small CNN), saved as .tvmq."""
    from tvmq.frontend import load_model
    from tvmq.frontend.saved import save_model
    from tvmq.quantize.quantizer import calibrate_model, convert_model

    source = directory / "cnn.onnx"
    onnx.save(onnx_models.conv_relu_gemm(), source)
    model = load_model(source)
    rng = np.random.default_rng(2)
    samples = [[rng.standard_normal((1, 3, 8, 8)).astype(np.float32)] for _ in range(4)]
    path = directory / "cnn.tvmq"
    save_model(convert_model(calibrate_model(model, samples)), path)
    return path.read_bytes()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


def tvmq_structured(data: bytes, rng: np.random.Generator, count: int) -> Iterator[Case]:
    """Manifests missing, mistyped or disagreeing with the module; corrupt members."""
    members = _members(data)
    manifest = json.loads(members["manifest.json"])

    def with_manifest(edit) -> bytes:
        changed = json.loads(json.dumps(manifest))
        edit(changed)
        return _zip({**members, "manifest.json": json.dumps(changed).encode()})

    for key in list(manifest):
        yield f"tvmq:missing_{key}", with_manifest(lambda m, key=key: m.pop(key))
        for value in (None, 7, "x", [], {}):
            yield f"tvmq:{key}={value!r}", with_manifest(lambda m, k=key, v=value: m.update({k: v}))
    spec_edits = {
        "shape_other": ("shape", [1, 3, 9, 9]),
        "shape_rank": ("shape", [3, 8, 8]),
        "shape_text": ("shape", "abc"),
        "shape_negative": ("shape", [1, -3, 8, 8]),
        "shape_huge": ("shape", [1, 3, 2**31, 8]),
        "dtype_other": ("dtype", "int8"),
        "dtype_unknown": ("dtype", "float99"),
        "name_int": ("name", 5),
        "quant_text": ("quant", "q"),
        "quant_nan": ("quant", {"scale": [math.nan], "zero_point": [0], "axis": None}),
        "quant_missing": ("quant", {"scale": [0.1]}),
    }
    for which in ("inputs", "outputs"):
        for label, (key, value) in spec_edits.items():

            def edit(m, which=which, key=key, value=value):
                m[which][0][key] = value

            yield f"tvmq:{which}_{label}", with_manifest(edit)
        yield f"tvmq:{which}_extra", with_manifest(lambda m, w=which: m[w].append(m[w][0]))
        yield f"tvmq:{which}_none", with_manifest(lambda m, w=which: m.update({w: []}))
        yield f"tvmq:{which}_entry_text", with_manifest(lambda m, w=which: m[w].__setitem__(0, "x"))
    for member in members:
        yield f"tvmq:no_{member}", _zip({k: v for k, v in members.items() if k != member})
        for name, mutated in byte_mutations(f"tvmq:{member}", members[member], rng, count // 6):
            yield name, _zip({**members, member: mutated})
    yield from byte_mutations("tvmq:zip", data, rng, count // 2)
