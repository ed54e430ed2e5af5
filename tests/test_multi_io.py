"""Models with several inputs and outputs on every backend and through the C API.

Ahead of time, every output needs a buffer of its own that the caller owns; a
model output may be a kernel's result, one result of a kernel that writes
several, a reshape of either, or a model input as is. Each backend's outputs
must equal the reference: onnxruntime for float, tflite-micro bit for bit for
int8, and the host build for the boards.
"""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import pytest

from tests import onnx_models
from tests.micro_reference import micro_outputs
from tests.test_aot import native
from tests.test_onnx_import import ort_run
from tests.tflite_models import mul_and_add_int8
from tvmq.cli import main
from tvmq.frontend import load_model

RNG = np.random.default_rng(19)
INT8_PARAMS = [(0.05, 3), (0.02, -7), (0.004, -5), (0.06, 10)]


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    proto = onnx_models.multiple_outputs()
    path = tmp_path_factory.mktemp("multi") / "multi.onnx"
    path.write_bytes(proto.SerializeToString())
    return proto, load_model(path)


def test_every_kind_of_output_gets_its_own_buffer_in_the_c_api(float_model, tmp_path):
    proto, model = float_model
    inputs = [RNG.standard_normal((1, 6)).astype(np.float32) for _ in range(2)]
    expected = ort_run(proto, {"a": inputs[0], "b": inputs[1]})
    compiled, library = native(model, tmp_path)
    header = (tmp_path / "model" / "multi.h").read_text()
    assert (
        "tvmq_multi_run(const float *input_a, const float *input_b, float *output_y1, "
        "float *output_y2, float *output_y3, float *output_y4, float *output_y5, "
        "float *output_y6)" in header
    )
    assert "#define TVMQ_MULTI_OUTPUT5_BYTES 12u" in header
    assert not set(compiled.graph.outputs) & set(compiled.plan.offsets)  # none in the arena
    in_c = library(*inputs)
    host = model.build("host")(*inputs)
    assert len(in_c) == len(host) == len(expected) == 6
    for got, on_host, reference in zip(in_c, host, expected, strict=True):
        np.testing.assert_allclose(on_host, reference, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got, on_host, rtol=1e-6, atol=1e-7)


@pytest.mark.skipif(
    not (shutil.which("arm-linux-gnueabihf-gcc") and shutil.which("qemu-arm")),
    reason="the ARMv7 Linux cross compiler and qemu-arm are needed (make toolchains)",
)
def test_multiple_outputs_on_a_cortex_a_library(float_model):
    _, model = float_model
    inputs = [RNG.standard_normal((1, 6)).astype(np.float32) for _ in range(2)]
    host = model.build("host")(*inputs)
    with model.build("armv7-neon") as board:
        outputs = board(*inputs)
    assert len(outputs) == 6
    for got, expected in zip(outputs, host, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_two_inputs_two_outputs_int8_match_tflite_micro(tmp_path):
    path = mul_and_add_int8(tmp_path / "mul_add.tflite", (1, 3, 8), INT8_PARAMS)
    model = load_model(path)
    host = model.build("host")
    compiled, library = native(model, tmp_path)
    assert len(compiled.graph.outputs) == 2
    for _ in range(3):
        inputs = [RNG.integers(-128, 128, (1, 3, 8)).astype(np.int8) for _ in range(2)]
        expected = micro_outputs(path, inputs, 2)
        for got, in_c, reference in zip(host(*inputs), library(*inputs), expected, strict=True):
            np.testing.assert_array_equal(got, reference)
            np.testing.assert_array_equal(in_c, reference)


@pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)
def test_tvmq_run_on_the_m4_board_equals_the_host_for_two_outputs(tmp_path, capsys):
    """Names as long as a converter's (250 bytes each) still fit the board's HELLO."""
    names = [f"{'serving_default_' * 15}{role}" for role in ("x1", "x2", "y1", "y2")]
    path = mul_and_add_int8(tmp_path / "mul_add.tflite", (2, 40), INT8_PARAMS, names)
    arguments = []
    for index in range(2):
        batch = RNG.integers(-128, 128, (3, 2, 40)).astype(np.int8)  # three samples
        np.save(tmp_path / f"x{index}.npy", batch)
        arguments += ["--input", str(tmp_path / f"x{index}.npy")]
    results = {}
    for target in ("host", "qemu-cortex-m4"):
        output = tmp_path / f"{target}.npz"
        assert (
            main(["run", str(path), *arguments, "--target", target, "--output", str(output)]) == 0
        )
        results[target] = np.load(output)
    capsys.readouterr()
    assert sorted(results["host"].files) == names[2:]
    for name in names[2:]:
        assert results["host"][name].shape == (3, 2, 40)
        np.testing.assert_array_equal(results["qemu-cortex-m4"][name], results["host"][name])


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is needed (the CUDA toolkit)")
def test_multiple_outputs_compile_for_cuda(float_model, tmp_path):
    from tvmq.backend.cuda import compile_cuda_project
    from tvmq.targets import load_target

    _, model = float_model
    manifest = compile_cuda_project(model, load_target("cuda-sm80"), tmp_path / "cuda")
    assert len(manifest["outputs"]) == 6
    assert (tmp_path / "cuda" / "model.so").stat().st_size > 0


def test_scalar_input_runs_through_the_command_line(tmp_path):
    """A 0-d input (silero-vad's sample rate) stays 0-d on its way into the VM."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "gain"], ["y"])],
        "scalar",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("gain", TensorProto.FLOAT, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    path = tmp_path / "scalar.onnx"
    onnx.save(model, path)
    x, gain = RNG.standard_normal((1, 4)).astype(np.float32), np.array(1.5, np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "gain.npy", gain)
    args = ["run", str(path), "--input", str(tmp_path / "x.npy"), "--input"]
    assert main([*args, str(tmp_path / "gain.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    np.testing.assert_allclose(
        np.load(tmp_path / "y.npy"), ort_run(model, {"x": x, "gain": gain})[0]
    )


def test_a_two_input_model_quantizes_from_a_batch_per_input_name(float_model, tmp_path, capsys):
    """`--calib` takes a .npz holding a batch for each input, by name; batches of
    unequal length are refused in one line, writing nothing."""
    proto, _ = float_model
    path = tmp_path / "multi.onnx"
    path.write_bytes(proto.SerializeToString())
    batches = {name: RNG.standard_normal((8, 1, 6)).astype(np.float32) for name in "ab"}
    np.savez(tmp_path / "calib.npz", **batches)
    out = tmp_path / "multi.tvmq"
    args = ["quantize", str(path), "--calib", str(tmp_path / "calib.npz"), "-o", str(out)]
    assert main(args) == 0
    quantized = load_model(out)
    assert quantized.is_quantized
    sample = [batches["a"][0], batches["b"][0]]
    got = quantized.build("host")(*sample)
    for have, want in zip(got, ort_run(proto, {"a": sample[0], "b": sample[1]}), strict=True):
        assert np.abs(have - want).max() <= 0.1 * max(np.abs(want).max(), 1e-3)
    np.savez(tmp_path / "uneven.npz", a=batches["a"], b=batches["b"][:5])
    out.unlink()
    args[3] = str(tmp_path / "uneven.npz")
    assert main(args) == 2
    assert "different numbers of samples (a 8, b 5)" in capsys.readouterr().err
    assert not out.exists()


def test_a_model_with_an_if_quantizes_and_runs(tmp_path):
    """An ONNX If (a non-dataflow block in Relax) around quantized ops: calibration
    and conversion emit block outputs only inside dataflow blocks."""
    proto = onnx_models.if_branches()
    path = tmp_path / "if.onnx"
    path.write_bytes(proto.SerializeToString())
    x = np.random.default_rng(3).standard_normal((8, 1, 4)).astype(np.float32)
    rates = np.repeat(np.array([16000, 8000], np.int64), 8)  # both branches calibrated
    np.savez(tmp_path / "calib.npz", x=np.concatenate([x, x]), rate=rates)
    out = tmp_path / "if.tvmq"
    calib = str(tmp_path / "calib.npz")
    args = ["quantize", str(path), "--calib", calib, "--calibrator", "minmax", "-o", str(out)]
    assert main(args) == 0
    host = load_model(out).build("host")
    wants, gots = [], []
    for rate, sample in itertools.product((16000, 8000), x):
        feeds = {"x": sample, "rate": np.array(rate, np.int64)}
        wants += ort_run(proto, feeds)
        gots.append(host(*feeds.values())[0])
    assert np.abs(np.array(gots) - np.array(wants)).max() <= 0.02 * np.abs(np.array(wants)).max()
