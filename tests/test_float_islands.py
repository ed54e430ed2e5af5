"""Float kernels on the microcontroller: a softmax island of a uint8 model, float softmax.

A float softmax keeps a maximum, a row of exponentials and their sum. Once its
temporaries outgrew the stack, TVM's code asked for workspace memory and the
Cortex-M build failed ("Unknown device id"); now every step runs one row at a
time and a row that still does not fit the stack comes from the firmware's
static workspace pool. The board must give the host build's outputs.
"""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from ai_edge_litert import schema_py_generated as schema
from onnx import TensorProto, helper

from tests.tflite_models import _buffer, _code, _finish, _tensor, _typed
from tvmq.backend.emit_c import emit_model, workspace_bytes
from tvmq.backend.native import NativeModel, compile_shared_library
from tvmq.frontend import load_model

RNG = np.random.default_rng(29)

needs_qemu = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)


def softmax_uint8(path, shape: tuple[int, ...]):
    """A uint8 SOFTMAX (input scale 0.1, zero point 128; output 1/256, 0): imported as
    dequantize, float softmax, quantize."""
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, [0], [1]
    operator.builtinOptionsType = schema.BuiltinOptions.SoftmaxOptions
    operator.builtinOptions = schema.SoftmaxOptionsT()
    operator.builtinOptions.beta = 1.0
    uint8 = schema.TensorType.UINT8
    tensors = [
        _typed(_tensor("x", shape, 0.1, 128, 0), uint8),
        _typed(_tensor("y", shape, 1.0 / 256.0, 0, 0), uint8),
    ]
    code = _code(schema.BuiltinOperator.SOFTMAX, 1)
    return _finish(path, [code], [operator], tensors, [_buffer()], [0], [1])


def float_softmax(path, shape: tuple[int, ...]):
    tensors = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "y")]
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], axis=-1)], "softmax", [tensors[0]], [tensors[1]]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.save(model, path)
    return path


@needs_qemu
def test_uint8_softmax_island_on_the_m4_equals_the_host(tmp_path):
    """1,001 classes, the island's row of exponentials (4 KB) beyond the stack."""
    model = load_model(softmax_uint8(tmp_path / "softmax.tflite", (1, 1001)))
    inputs = [RNG.integers(0, 256, (1, 1001)).astype(np.uint8) for _ in range(2)]
    host = model.build("host")
    with model.build("qemu-cortex-m4") as board:
        for x in inputs:
            expected = host(x)[0]
            assert expected.max() > 0  # not a vacuous all-zero comparison
            got = board(x)[0]
            # expf of newlib and of LLVM may differ in the last bit: one step at most.
            assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


@needs_qemu
def test_float_softmax_over_channels_on_the_m4_runs_row_by_row(tmp_path):
    """A 8x8x64 map: one row of 64 exponentials at a time, on the stack, no workspace."""
    model = load_model(float_softmax(tmp_path / "softmax.onnx", (1, 8, 8, 64)))
    emit_model(model, tmp_path / "model")
    assert workspace_bytes((tmp_path / "model" / "tvmq_kernels.c").read_text()) == 0
    x = (RNG.standard_normal((1, 8, 8, 64)) * 4).astype(np.float32)
    expected = model.build("host")(x)[0]
    with model.build("qemu-cortex-m4") as board:
        got = board(x)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-5)


def test_float_softmax_of_1001_classes_takes_its_row_from_the_workspace_pool(tmp_path):
    model = load_model(float_softmax(tmp_path / "softmax.onnx", (1, 1001)))
    emit_model(model, tmp_path / "model")
    assert workspace_bytes((tmp_path / "model" / "tvmq_kernels.c").read_text()) >= 1001 * 4
    library = compile_shared_library(tmp_path / "model", tmp_path / "softmax.so")
    x = (RNG.standard_normal((1, 1001)) * 4).astype(np.float32)
    got = NativeModel(library, [(1, 1001)])(x)[0]
    np.testing.assert_allclose(got, model.build("host")(x)[0], rtol=1e-5, atol=1e-8)


@needs_qemu
def test_firmware_memory_report_counts_the_workspace_pool(tmp_path):
    from tvmq.backend.mcu import compile_firmware
    from tvmq.targets import load_target

    model = load_model(float_softmax(tmp_path / "softmax.onnx", (1, 1001)))
    report = compile_firmware(model, load_target("qemu-cortex-m4"), tmp_path / "firmware")
    assert 1001 * 4 <= report["workspace_bytes"] < report["ram"]


def test_softmax_over_one_element_builds_in_c(tmp_path):
    """Its reductions lose their loops when moved to the row: still scheduled, still 1."""
    model = load_model(float_softmax(tmp_path / "softmax.onnx", (3, 1)))
    emit_model(model, tmp_path / "model")
    library = compile_shared_library(tmp_path / "model", tmp_path / "softmax.so")
    x = RNG.standard_normal((3, 1)).astype(np.float32)
    got = NativeModel(library, [(3, 1)])(x)[0]
    np.testing.assert_array_equal(got, model.build("host")(x)[0])
    np.testing.assert_array_equal(got, np.ones((3, 1), np.float32))
