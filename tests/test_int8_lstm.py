"""int8 UNIDIRECTIONAL_SEQUENCE_LSTM (tvmq.quantize.lstm): TFLite Micro's integer
kernel bit for bit, on random one-op models, on its int16 activations over every
input value, on a real model, and on a Cortex-M board (with the integer SVDF, whose
host tests are in test_tflite_ops); other variants refused."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
import tvm
from ai_edge_litert import schema_py_generated as schema
from hypothesis import given
from hypothesis import strategies as st
from tvm import te

from tests import tflite_op_models as models
from tests.micro_reference import micro_run, random_int8
from tests.test_mul_concat import assert_integer_only
from tests.test_tflite_ops import ZOO, assert_matches_micro
from tests.tflite_ops import BUILD_EXAMPLES, quantized, single_op
from tvmq.errors import UnsupportedOperatorError
from tvmq.frontend import load_model, read_source
from tvmq.quantize.lstm import SIGMOID_TABLE, sigmoid_int16, tanh_int16

RNG = np.random.default_rng(23)
PARAMS = {
    # Batch-major, two batches, the hidden zero point folded into the products.
    "clipped": {"input": (0.05, 3), "hidden": (2 / 256, -1), "cell": 2.0**-11, "clip": 3.0},
    # Input products with a left shift (micro_speech_lstm's input scale), a small cell
    # scale (tanh's input shifted right), no clip.
    "left-shift": {"input": (0.6, -128), "hidden": (0.01, 10), "cell": 2.0**-15, "clip": 0.0},
    # A large cell scale, a clip that bites.
    "coarse-cell": {"input": (0.02, 0), "hidden": (0.004, -5), "cell": 2.0**-8, "clip": 0.5},
}


@pytest.mark.parametrize(
    ("shape", "params", "time_major"),
    [
        ((2, 7, 3), "clipped", False),
        ((6, 3, 6), "left-shift", True),
        ((1, 8, 4), "coarse-cell", False),
    ],
    ids=list(PARAMS),
)
def test_int8_lstm_matches_tflite_micro(tmp_path, shape, params, time_major):
    path = models.lstm_int8(tmp_path / "lstm.tflite", shape, 5, RNG, PARAMS[params], time_major)
    assert_matches_micro(path, [shape])
    assert_integer_only(load_model(path))


@BUILD_EXAMPLES
@given(data=st.data())
def test_int8_lstm_with_drawn_scales_matches_tflite_micro(data):
    """Drawn shapes, scales, zero points, cell scale and clip."""

    def params() -> tuple[float, int]:
        scale = float(np.float32(2.0 ** data.draw(st.floats(-9.0, 0.0))))
        return scale, data.draw(st.integers(-128, 127))

    drawn = {
        "input": params(),
        "hidden": params(),
        "cell": 2.0 ** data.draw(st.integers(-15, -7)),
        "clip": data.draw(st.sampled_from([0.0, 0.5, 3.0, 10.0])),
    }
    shape = tuple(data.draw(st.integers(1, 4)) for _ in range(3))
    units = data.draw(st.integers(1, 6))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    with tempfile.TemporaryDirectory() as folder:
        path = models.lstm_int8(Path(folder) / "l.tflite", shape, units, rng, drawn)
        assert_matches_micro(path, [shape], runs=2)


@pytest.mark.parametrize(
    ("builtin", "scale", "activation"),
    [
        (schema.BuiltinOperator.LOGISTIC, 2.0**-12, lambda x, t: sigmoid_int16(x, t)),
        (schema.BuiltinOperator.TANH, 2.0**-12, lambda x, t: tanh_int16(x, t, 3, 0)),
        (schema.BuiltinOperator.TANH, 2.0**-11, lambda x, t: tanh_int16(x, t, 6, 0)),
    ],
    ids=["sigmoid-gates", "tanh-cell-gate", "tanh-cell-state"],
)
def test_int16_activations_match_tflite_micro_on_every_value(tmp_path, builtin, scale, activation):
    """The LSTM's sigmoid and tanh are TFLite Micro's int16 LOGISTIC and TANH at
    power-of-two input scales (2**-11: tanh of a cell state at that scale)."""
    values = np.arange(-(2**15), 2**15, dtype=np.int16)
    path = single_op(
        tmp_path / "a.tflite",
        builtin,
        [quantized("x", values.shape, (scale, 0), "int16")],
        [quantized("y", values.shape, (2.0**-15, 0), "int16")],
    )
    x = te.placeholder(values.shape, "int16", name="x")
    table = te.placeholder(SIGMOID_TABLE.shape, "int32", name="table")
    y = te.compute(values.shape, lambda i: activation(x[i].astype("int32"), table).astype("int16"))
    kernel = tvm.compile(te.create_prim_func([x, table, y]), tvm.target.Target({"kind": "llvm"}))
    got = tvm.runtime.tensor(np.zeros_like(values))
    kernel(tvm.runtime.tensor(values), tvm.runtime.tensor(SIGMOID_TABLE), got)
    np.testing.assert_array_equal(got.numpy(), micro_run(path, [values]))


def _edited(path: Path, edit) -> Path:
    """`path`'s model after `edit` of its schema.ModelT, written back."""
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    edit(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())
    return path


def _per_channel_weights(model) -> None:
    weights = model.subgraphs[0].tensors[1].quantization
    weights.scale, weights.zeroPoint = [0.01] * 5, [0] * 5


def _relu_cell(model) -> None:
    options = model.subgraphs[0].operators[0].builtinOptions
    options.fusedActivationFunction = schema.ActivationFunctionType.RELU


def _float_cell_state(model) -> None:
    model.subgraphs[0].tensors[14].type = schema.TensorType.FLOAT32


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (_per_channel_weights, "weights must be int8 with one scale and zero point 0"),
        (_relu_cell, "only a tanh cell activation is supported"),
        (_float_cell_state, "the cell state must be per-tensor int16"),
    ],
    ids=["per-channel-weights", "relu-cell", "float-cell-state"],
)
def test_int8_lstm_variants_are_refused_by_node(tmp_path, edit, reason):
    path = models.lstm_int8(tmp_path / "l.tflite", (1, 2, 3), 5, RNG, PARAMS["clipped"])
    path = _edited(path, edit)
    assert read_source(path).unsupported() == [("y", "UNIDIRECTIONAL_SEQUENCE_LSTM", reason)]
    with pytest.raises(UnsupportedOperatorError, match=reason):
        load_model(path)


def test_micro_speech_lstm_matches_tflite_micro():
    """The real model, on the input bench.zoo recorded, when the zoo cache has it."""
    work = ZOO / "work" / "micro_speech_lstm"
    if not (ZOO / "micro_speech_lstm.tflite").is_file() or not (work / "reference.npz").is_file():
        pytest.skip(f"micro_speech_lstm is not in {ZOO}")
    reference = np.load(work / "reference.npz")
    got = load_model(ZOO / "micro_speech_lstm.tflite").build("host")(np.load(work / "input0.npy"))
    np.testing.assert_array_equal(got[0], reference[reference.files[0]])


@pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)
def test_int8_lstm_and_svdf_run_on_a_cortex_m_board(tmp_path):
    """The unrolled integer LSTM and the integer SVDF build for the MCU's C backend,
    equal to the host."""
    lstm = models.lstm_int8(tmp_path / "l.tflite", (1, 3, 4), 4, RNG, PARAMS["clipped"])
    svdf = models.svdf_int8(tmp_path / "s.tflite", state=("int8", 0.8, -50))
    for path, shape in ((lstm, (1, 3, 4)), (svdf, (1, 6))):
        model = load_model(path)
        x = random_int8(shape)
        with model.build("qemu-cortex-m4") as board:
            np.testing.assert_array_equal(board(x)[0], model.build("host")(x)[0])
