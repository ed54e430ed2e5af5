"""PTQ of hybrid TFLite models (int8 weights, float activations): their hybrid
CONV_2D and FULLY_CONNECTED layers become integer code on the file's own weights
(no float islands), the training engine's layer finder sees them, and the Cortex-M
build gives the host's integers."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from tvm import relax

from tests import tflite_op_models as models
from tests.shared_assets import shared_data, shared_model
from tvmq.data import calibration_inputs
from tvmq.examples import DIGITS_MODEL
from tvmq.frontend import load_model
from tvmq.quantize.annotate import main_bindings
from tvmq.quantize.debug import layer_errors
from tvmq.quantize.hybrid import normalize_hybrid
from tvmq.quantize.quantizer import quantize_model
from tvmq.quantize.realize import realize
from tvmq.quantize.scheme import QuantConfig
from tvmq.train.layers import constant_array, find_layers, plain_weights

RNG = np.random.default_rng(19)
SHAPE = (1, 6, 5, 3)
SCALES = (0.02, 0.004)
HAS_ARM = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")


def _samples(count: int) -> list[list[np.ndarray]]:
    return [[RNG.normal(0, 1, SHAPE).astype(np.float32)] for _ in range(count)]


CALIBRATION = _samples(16)


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory):
    """The float hybrid model, its tvmq PTQ and the file's int8 weights."""
    conv = RNG.integers(-127, 128, (4, 3, 3, SHAPE[3])).astype(np.int8)
    dense = RNG.integers(-127, 128, (5, SHAPE[1] * SHAPE[2] * 4)).astype(np.int8)
    path = tmp_path_factory.mktemp("hybrid") / "hybrid.tflite"
    model = load_model(models.hybrid_conv_dense(path, SHAPE, conv, dense, SCALES))
    config = QuantConfig(calibrator="minmax")  # the samples scored are those calibrated on
    return model, quantize_model(model, CALIBRATION, config), conv, dense


def _float_ops(mod) -> dict[str, int]:
    """Ops of the realized graph that compute in float32, by name."""
    counts: dict[str, int] = {}
    for binding in main_bindings(realize(mod)):
        name = getattr(getattr(binding.value, "op", None), "name", None)
        if name and str(getattr(binding.var.ty, "dtype", "")) == "float32":
            counts[name] = counts.get(name, 0) + 1
    return counts


def test_hybrid_layers_quantize_to_integer_code(hybrid):
    model, quantized, _, _ = hybrid
    report = quantized.quantization
    assert [op["kind"] for op in report["quantized_ops"]] == ["conv2d", "matmul"]
    assert report["skipped_ops"] == []
    # Only the float output is dequantized: the hybrid kernels' float rescale and
    # run-time input quantization are gone.
    assert _float_ops(quantized.mod) == {"relax.dequantize": 1}
    assert _float_ops(model.mod).get("relax.multiply", 0) > 0  # the float model's are there


def test_hybrid_weights_keep_the_files_integers(hybrid):
    _, quantized, conv, dense = hybrid
    weights = list(quantized.params.values())
    assert any(np.array_equal(w, conv) for w in weights)
    assert any(np.array_equal(w, dense.T) for w in weights)


def test_quantized_hybrid_model_stays_close_to_the_float_one(hybrid):
    model, quantized, _, _ = hybrid
    float_run, int_run = model.build("host"), quantized.build("host")
    step = quantized.quantization["tensors"][-1]["scale"]
    errors = [np.abs(int_run(x)[0] - float_run(x)[0]).max() / step for (x,) in CALIBRATION[:4]]
    assert max(errors) <= 3, errors
    # The report's tensors are the float graph's (tvmq debug compares them).
    assert len(layer_errors(model, quantized, _samples(2))) == 3


def test_layer_finder_sees_hybrid_layers_at_the_files_scales(hybrid):
    _, quantized, conv, dense = hybrid
    layers = find_layers(quantized.mod)
    assert len(layers) == 2
    assert np.array_equal(layers[0].integer_weight(), conv)
    assert np.array_equal(layers[1].integer_weight(), dense.T)
    for layer, scale in zip(layers, SCALES, strict=True):
        np.testing.assert_array_equal(layer.weight_scale, np.float32(scale))


def test_hybrid_weights_at_4_bits_are_requantized(hybrid):
    model = hybrid[0]
    config = QuantConfig(layer_bits=frozenset({("conv2d#0", 4)}))
    quantized = quantize_model(model, _samples(4), config)
    assert quantized.quantization["weight_bits"] == {"conv2d#0": 4, "matmul#0": 8}
    conv = next(w for w in quantized.params.values() if w.ndim == 4)
    assert np.abs(conv).max() == 7


def test_graphs_without_hybrid_layers_are_left_alone():
    model = load_model(DIGITS_MODEL)
    assert normalize_hybrid(model) is model


@pytest.mark.skipif(not HAS_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_quantized_hybrid_model_on_cortex_m4_is_identical_to_host(hybrid):
    """The board computes the host's outputs, bit for bit (its float dequantize too,
    since the emitted C keeps the scale exact)."""
    quantized = hybrid[1]
    host = quantized.build("host")
    with quantized.build("qemu-cortex-m4") as board:
        for (x,) in _samples(2):
            np.testing.assert_array_equal(board(x)[0], host(x)[0])


def test_kws_hybrid_quantizes_and_trains_every_layer():
    """MLPerf Tiny's KWS hybrid file: its 5 hybrid CONV_2D quantize with the rest (no
    float island), the layer finder sees all 9 convolutions and the classifier, and
    the Cortex-M4 build gives the host's outputs bit for bit."""
    path, data = shared_model("kws_dscnn_hybrid"), shared_data("kws01")
    model = load_model(path)
    samples = list(calibration_inputs(data, model)[0])[:32]
    quantized = quantize_model(model, samples)
    kinds = [op["kind"] for op in quantized.quantization["quantized_ops"]]
    assert kinds.count("conv2d") == 9 and kinds.count("matmul") == 1
    assert quantized.quantization["skipped_ops"] == []
    assert _float_ops(quantized.mod) == {"relax.dequantize": 1}
    assert len(find_layers(quantized.mod)) == 10
    if HAS_ARM:  # float islands made the board differ from the host before
        (x,) = samples[-1]
        with quantized.build("qemu-cortex-m4") as board:
            np.testing.assert_array_equal(board(x)[0], quantized.build("host")(x)[0])


def test_layer_finder_sees_every_layer_of_the_kws_int8_file():
    """The int8 file's depthwise weights are reshaped after dequantize and its dense
    weight transposed before: plain_weights moves that into the constants, so the
    finder sees all 10 layers, each weight the value TVM computes for the original."""
    mod = load_model(shared_model("kws_dscnn_int8")).mod
    assert len(find_layers(mod)) == 5  # the 1 + 4 plain convolutions alone
    layers = find_layers(plain_weights(mod))
    assert len(layers) == 10
    assert sum(layer.weight.shape[-1] == 1 for layer in layers) == 4  # depthwise, HWOI
    calls = {b.var.name: b.value for b in main_bindings(relax.transform.FoldConstant()(mod))}
    for layer in layers:
        np.testing.assert_array_equal(constant_array(calls[layer.name].args[1]), layer.weight)
