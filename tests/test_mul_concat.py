"""Quantized mul and concat as integer ops: bit-exact with TFLite Micro."""

from __future__ import annotations

import numpy as np
import pytest

from tests import onnx_models
from tests.micro_reference import micro_run, random_int8
from tests.tflite_models import concat_int8, mul_int8
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import quantize_model
from tvmq.quantize.realize import realize

RNG = np.random.default_rng(3)


def assert_integer_only(model) -> None:
    text = realize(model.mod).script(show_meta=False)
    assert "R.quantize(" not in text and "R.dequantize(" not in text
    assert 'dtype="float32"' not in text


@pytest.mark.parametrize(
    ("shapes", "params", "relu"),
    [
        ([(1, 4, 6)] * 3, [(0.05, 3), (0.02, -7), (0.01, -5)], False),
        ([(2, 3, 5), (1, 1, 5), (2, 3, 5)], [(0.1, 0), (0.003, 20), (0.0007, 10)], False),
        ([(1, 8), (1, 8), (1, 8)], [(0.5, -128), (0.25, 127), (2.0, -20)], True),
    ],
    ids=["same-shape", "broadcast", "fused-relu"],
)
def test_mul_matches_tflite_micro(tmp_path, shapes, params, relu):
    path = mul_int8(tmp_path / "mul.tflite", shapes, params, fused_relu=relu)
    model = load_model(path)
    executable = model.build("host")
    for _ in range(5):
        inputs = [random_int8(shape) for shape in shapes[:2]]
        np.testing.assert_array_equal(executable(*inputs)[0], micro_run(path, inputs))
    assert_integer_only(model)


@pytest.mark.parametrize(
    ("shapes", "params", "axis"),
    [
        ([(1, 4, 3), (1, 4, 5), (1, 4, 8)], [(0.05, 3), (0.02, -7), (0.04, -5)], 2),
        ([(2, 3), (1, 3), (1, 3), (4, 3)], [(0.1, 0), (0.1, 0), (0.3, 100), (0.1, 0)], 0),
    ],
    ids=["requantized", "shared-parameters"],
)
def test_concat_matches_tflite_micro(tmp_path, shapes, params, axis):
    path = concat_int8(tmp_path / "concat.tflite", shapes, params, axis)
    model = load_model(path)
    executable = model.build("host")
    for _ in range(5):
        inputs = [random_int8(shape) for shape in shapes[:-1]]
        np.testing.assert_array_equal(executable(*inputs)[0], micro_run(path, inputs))
    assert_integer_only(model)


def test_quantizer_runs_add_mul_concat_on_integers(tmp_path):
    """tvmq's own PTQ of a float graph with mul and concat: integer inside, and close
    to float (within a few output steps)."""
    from onnx import helper

    proto = onnx_models.graph_model(
        [
            helper.make_node("Mul", ["x1", "x2"], ["m"]),
            helper.make_node("Concat", ["m", "x1"], ["y"], axis=1),
        ],
        {"x1": [1, 5], "x2": [1, 5]},
        [1, 10],
    )
    path = tmp_path / "mul_concat.onnx"
    path.write_bytes(proto.SerializeToString())
    float_model = load_model(path)
    calibration = [
        [RNG.uniform(-2, 2, (1, 5)).astype(np.float32) for _ in range(2)] for _ in range(32)
    ]
    model = quantize_model(float_model, calibration)
    assert [op["kind"] for op in model.quantization["quantized_ops"]] == ["mul", "concat"]
    text = realize(model.mod).script(show_meta=False)
    assert "R.multiply(lv" in text and "R.concat(" in text
    assert text.count("R.dequantize(") == 1  # only the model output
    output_scale = model.quantization["tensors"][-1]["scale"]
    run_float, run_int = float_model.build("host"), model.build("host")
    for x1, x2 in calibration[:8]:
        error = np.abs(run_int(x1, x2)[0] - run_float(x1, x2)[0]).max()
        assert error <= 3 * output_scale
