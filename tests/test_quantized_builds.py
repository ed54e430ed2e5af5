"""Every graph that `tvmq quantize` writes builds and runs on every target.

Shapes that quantize into one-element or 0-d tensors once crashed the build: a
single output channel made the requantization's per-channel vectors scalars
("Need to provide 0 index in tensor but 1 was provided"), a mean over every axis
has no axis list, and a 0-d kernel has no loop to schedule. The model here has
all three; it is quantized and run through the command line as a user would.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests import onnx_models
from tests.test_aot import native
from tests.test_onnx_import import ort_run
from tvmq.cli import main
from tvmq.frontend import load_model

RNG = np.random.default_rng(23)
MODES = [["--mode", "static", "--calib"], ["--mode", "static", "--per-tensor", "--calib"]]


def quantize(tmp_path, capsys, options: list[str]):
    """A float model, its calibration inputs and the .tvmq `tvmq quantize` wrote."""
    proto = onnx_models.single_channel()
    source = tmp_path / "single.onnx"
    source.write_bytes(proto.SerializeToString())
    calibration = RNG.standard_normal((16, 1, 2, 6, 6)).astype(np.float32)
    np.save(tmp_path / "calib.npy", calibration)
    quantized = tmp_path / "single.tvmq"
    arguments = ["quantize", str(source), *options, str(tmp_path / "calib.npy")]
    assert main([*arguments, "--output", str(quantized)]) == 0
    capsys.readouterr()
    return proto, calibration, quantized


@pytest.mark.parametrize("options", MODES, ids=["per-channel", "per-tensor"])
def test_quantized_single_channel_model_runs_in_c_like_on_the_host(tmp_path, capsys, options):
    proto, calibration, path = quantize(tmp_path, capsys, options)
    model = load_model(path)
    host = model.build("host")
    compiled, library = native(model, tmp_path)
    assert [s.shape for s in model.outputs] == [(1, 1), ()]
    assert any(compiled.graph.tensors[t].shape == () for t in compiled.graph.outputs)
    for x in calibration[:4]:
        reference = ort_run(proto, {"x": x})
        for in_c, on_host, expected in zip(library(x), host(x), reference, strict=True):
            # Integer arithmetic up to the final dequantize, whose float rounding may differ.
            np.testing.assert_allclose(in_c, on_host, rtol=1e-6, atol=1e-6)
            # Near the float model, as int8 goes: the dense output's rounding noise
            # reaches 3 output steps (0.12) on some inputs; a wrong scale or sign is far more.
            spread = float(np.abs(reference[0]).max() + 1)  # the outputs' own scale
            np.testing.assert_allclose(on_host, expected, atol=0.15 * spread)


@pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)
def test_tvmq_quantize_then_run_on_the_m4_board_equals_the_host(tmp_path, capsys):
    _, calibration, path = quantize(tmp_path, capsys, MODES[0])
    np.save(tmp_path / "x.npy", calibration[:3])
    results = {}
    for target in ("host", "qemu-cortex-m4"):
        output = tmp_path / f"{target}.npz"
        arguments = ["run", str(path), "--input", str(tmp_path / "x.npy"), "--target", target]
        assert main([*arguments, "--output", str(output)]) == 0
        results[target] = np.load(output)
    capsys.readouterr()
    assert sorted(results["host"].files) == ["m", "y"]
    for name in ("m", "y"):
        np.testing.assert_allclose(
            results["qemu-cortex-m4"][name], results["host"][name], rtol=1e-6, atol=1e-6
        )


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is needed (the CUDA toolkit)")
def test_float_and_quantized_single_channel_models_compile_for_cuda(tmp_path, capsys):
    """A dlight rule that fails on a kernel (here the float scalar mean) hands it on to
    the next rule instead of failing the build."""
    _, _, path = quantize(tmp_path, capsys, MODES[0])
    for model in (tmp_path / "single.onnx", path):
        output = tmp_path / f"{model.stem}{model.suffix}-cuda"
        assert main(["compile", str(model), "--target", "cuda-sm80", "-o", str(output)]) == 0
        assert "ld.global" in (output / "kernels.ptx").read_text()
    capsys.readouterr()
