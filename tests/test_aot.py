"""The ahead-of-time C of a model, compiled for this machine, against the references.

The C sources are the ones a firmware compiles; here the host C compiler builds
them so that every kernel, the arena plan and the entry function are checked
against tflite-micro (the int8 oracle) and tvmq's host build without an emulator.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.shared_assets import shared_model
from tests.test_mlperf_import import micro_outputs, model_inputs
from tests.test_planner import assert_no_live_overlap
from tvmq.backend.emit_c import emit_model
from tvmq.backend.native import NativeModel, compile_shared_library
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import quantize_model

INT8_MODELS = {
    "ad_autoencoder_int8": "ad01",
    "ic_resnet8_int8": "ic01",
    "kws_dscnn_int8": "kws01",
    "vww_mobilenet_int8": "vww01",
}


def native(model, tmp_path):
    compiled = emit_model(model, tmp_path / "model")
    library = compile_shared_library(tmp_path / "model", tmp_path / "model.so")
    return compiled, NativeModel(library, [s.shape for s in model.outputs])


def assert_plan_is_safe(compiled) -> None:
    assert_no_live_overlap(compiled.graph, compiled.plan)


@pytest.mark.parametrize("name", sorted(INT8_MODELS))
def test_int8_model_c_is_identical_to_tflite_micro(name, tmp_path):
    path = shared_model(name)
    model = load_model(path)
    inputs = model_inputs(model, INT8_MODELS[name])
    compiled, library = native(model, tmp_path)
    expected = micro_outputs(path, inputs)
    for x, reference in zip(inputs, expected, strict=True):
        np.testing.assert_array_equal(library(x)[0], reference)
    assert_plan_is_safe(compiled)
    assert compiled.plan.arena_bytes < compiled.plan.unplanned_bytes / 2


def test_quantized_example_c_matches_host_build(tmp_path):
    model = load_model(DIGITS_MODEL)
    calibration, _ = digits_split("train")
    quantized = quantize_model(model, [[x] for x in calibration[:50]])
    inputs, _ = digits_split("test")
    compiled, library = native(quantized, tmp_path)
    host = quantized.build("host")
    for x in inputs[:20]:
        # Integer all the way to the final float softmax, whose expf may differ in the
        # last bits between the C library and LLVM.
        np.testing.assert_allclose(library(x)[0], host(x)[0], rtol=1e-5, atol=1e-7)
    assert_plan_is_safe(compiled)
    assert library.build_id == compiled.build_id


def test_convolutions_and_requantization_use_the_simd_kernels(tmp_path):
    """Every int8 convolution and dense layer of an NHWC model (its first layer has one
    input channel: a copied 10x4 window) is a dot-product call (one pixel, or rows of
    pixels: KWS's rows are five long; the classifier's 12 outputs four rows at a time),
    depthwise layers (and the average pool) a depthwise call; layers with a
    requantization do it in SIMD."""
    model = load_model(shared_model("kws_dscnn_int8"))
    compiled = emit_model(model, tmp_path / "model")
    source = (tmp_path / "model" / "tvmq_kernels.c").read_text()
    bodies = source.split("TVM_DLL void ")[1:]
    kernels = {body.split("(")[0]: body for body in bodies if "{" in body.split(";")[0]}
    heavy = [name for name in compiled.graph.kernels if "conv2d" in name or "matmul" in name]
    assert len(heavy) >= 4
    for name in heavy:
        calls = ("tvmq_dot_s8_1x", "tvmq_dot_s8_rowx", "tvmq_dense_s8x4", "tvmq_dw_s8x4")
        assert any(call in kernels[name] for call in calls), name
    requantizing = [n for n in heavy if "requantize" in compiled.graph.kernels[n].script()]
    assert len(requantizing) == len(heavy) - 1  # all but the average pool
    for name in requantizing:
        assert "tvmq_requant_s8x" in kernels[name], name
