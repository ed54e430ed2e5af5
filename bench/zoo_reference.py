"""The reference runtimes of `bench.zoo`, each call in its own process.

A reference interpreter can crash or hang on a model as easily as tvmq can, so
bench.zoo runs this module as a subprocess:

    python -m bench.zoo_reference describe ENGINE MODEL          # inputs as JSON
    python -m bench.zoo_reference run ENGINE MODEL OUT.npz IN.npy ...
    python -m bench.zoo_reference qdq MODEL.onnx OUT.onnx SEED FORMAT HOW  # onnxruntime int8
        # FORMAT qdq | qoperator; HOW {"shape": {"input": [dims]}, "range": [low, high]}

Engines: tflite-micro (int8 reference kernels), litert-ref (LiteRT's BUILTIN_REF
kernels, the reference for uint8, hybrid and float TFLite: each op as TFLite defines
it, where XNNPACK, LiteRT's default, reorders float sums), litert (its default) and
onnxruntime (optimizations off for float models, so it computes what the graph
says; its default optimizations for QDQ models, as they are deployed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

TFLITE_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool"}
TFLITE_DTYPES.update({7: "int16", 9: "int8", 10: "float64"})


def _litert(model: Path, engine: str):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if engine == "litert-ref" else OpResolverType.AUTO
    return Interpreter(model_path=str(model), experimental_op_resolver_type=resolver)


def _onnx_session(model: Path):
    """A float model runs with optimizations off, as its graph says; a QDQ model as
    it is deployed, with onnxruntime's default optimizations, which run its
    quantized ops as integer kernels (QLinearConv, QLinearAdd...)."""
    import onnx
    import onnxruntime

    options = onnxruntime.SessionOptions()
    graph = onnx.load(str(model), load_external_data=False).graph
    if not any(node.op_type == "QuantizeLinear" for node in graph.node):
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def describe(engine: str, model: Path) -> list[dict]:
    """Name, shape (None for a free dim) and dtype of each input."""
    if engine == "onnxruntime":
        import onnx

        graph = onnx.load(str(model), load_external_data=False).graph
        weights = {init.name for init in graph.initializer}
        return [
            {
                "name": value.name,
                "shape": [d.dim_value or None for d in value.type.tensor_type.shape.dim],
                "dtype": _onnx_dtype(value.type.tensor_type.elem_type),
            }
            for value in graph.input
            if value.name not in weights
        ]
    graph = _tflite_graph(model)
    specs = []
    for index in graph.InputsAsNumpy():
        tensor = graph.Tensors(int(index))
        # the file's shape (batch 1 where the signature leaves it free), as TFLite runs it
        shape = list(tensor.ShapeAsNumpy()) if tensor.ShapeLength() else []
        specs.append(
            {
                "name": (tensor.Name() or b"").decode(errors="replace"),
                "shape": [None if d < 0 else int(d) for d in shape],
                "dtype": TFLITE_DTYPES.get(tensor.Type(), "?"),
            }
        )
    return specs


def _onnx_dtype(elem_type: int) -> str:
    import onnx

    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        return "?"


def _tflite_graph(model: Path):
    """The main subgraph, read with the flatbuffer schema (LiteRT refuses some valid files)."""
    import tflite

    return tflite.Model.GetRootAsModel(model.read_bytes(), 0).Subgraphs(0)


def run(engine: str, model: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The outputs of `model` on `inputs`, in the file's output order."""
    if engine == "onnxruntime":
        session = _onnx_session(model)
        feeds = {spec.name: x for spec, x in zip(session.get_inputs(), inputs, strict=True)}
        return session.run(None, feeds)
    if engine == "tflite-micro":
        from tflite_micro.python.tflite_micro import runtime

        interpreter = runtime.Interpreter.from_file(str(model), arena_size=16 << 20)
        for index, x in enumerate(inputs):
            interpreter.set_input(x, index)
        interpreter.invoke()
        count = _tflite_graph(model).OutputsLength()
        return [interpreter.get_output(index).copy() for index in range(count)]
    interpreter = _litert(model, engine)
    for detail, x in zip(interpreter.get_input_details(), inputs, strict=True):
        if list(detail["shape"]) != list(x.shape):
            interpreter.resize_tensor_input(detail["index"], x.shape)
    interpreter.allocate_tensors()
    for detail, x in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]


def qdq(model: Path, output: Path, seed: int, fmt: str, how: dict) -> None:
    """Static int8 quantization by onnxruntime (`fmt` qdq or qoperator, per-channel
    weights), calibrated on seeded inputs uniform in how["range"]; how["shape"] fixes
    free input dims."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    shapes, (low, high) = how["shape"], how["range"]
    specs = describe("onnxruntime", model)
    for spec in specs:
        spec["shape"] = shapes.get(spec["name"], spec["shape"])
    scratch = []
    if shapes:  # onnxruntime's calibration infers shapes: free dims fixed in the file
        proto = onnx.load(str(model))
        for value in proto.graph.input:
            fixed = shapes.get(value.name)
            if fixed is None:
                continue
            for dim, size in zip(value.type.tensor_type.shape.dim, fixed, strict=True):
                dim.Clear()
                dim.dim_value = size
        model = output.with_suffix(".fixed.onnx")
        onnx.save(proto, str(model))
        scratch.append(model)
    if fmt == "qoperator":  # its quantizer needs the shapes onnxruntime's pre-processing infers
        prepared = output.with_suffix(".prepared.onnx")
        scratch.append(prepared)
        quant_pre_process(str(model), str(prepared))
        model = prepared
    rng = np.random.default_rng(seed)
    samples = [
        {s["name"]: rng.uniform(low, high, s["shape"]).astype(np.float32) for s in specs}
        for _ in range(4)
    ]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(samples)

        def get_next(self):
            return next(self.items, None)

    quant_format = QuantFormat.QOperator if fmt == "qoperator" else QuantFormat.QDQ
    try:
        quantize_static(
            str(model), str(output), Reader(), quant_format=quant_format, per_channel=True
        )
    finally:
        for path in scratch:
            path.unlink(missing_ok=True)


def main(argv: list[str]) -> None:
    command = argv[0]
    if command == "describe":
        print(json.dumps(describe(argv[1], Path(argv[2]))))
    elif command == "run":
        inputs = [np.load(path) for path in argv[4:]]
        outputs = run(argv[1], Path(argv[2]), inputs)
        np.savez(argv[3], **{f"output{i}": np.asarray(y) for i, y in enumerate(outputs)})
    elif command == "qdq":
        qdq(Path(argv[1]), Path(argv[2]), int(argv[3]), argv[4], json.loads(argv[5]))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
