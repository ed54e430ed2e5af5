"""Models compiled to firmware and run on the emulated Cortex-M4, M7 and M55 boards.

The board's outputs, read back over the serial harness, must be identical to
tvmq's host integer execution of the same model, and the instruction count of
an inference must not depend on the run (QEMU's -icount makes it exact).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.shared_assets import shared_model
from tests.test_mlperf_import import model_inputs
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import quantize_model

BOARDS = ["qemu-cortex-m4", "qemu-cortex-m7", "qemu-cortex-m55"]
INT8_MODELS = {
    "ad_autoencoder_int8": "ad01",
    "ic_resnet8_int8": "ic01",
    "kws_dscnn_int8": "kws01",
    "vww_mobilenet_int8": "vww01",
}
SAMPLES = 3

pytestmark = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)


def assert_board_matches_host(model, inputs, target) -> None:
    host = model.build("host")
    with model.build(target) as board:
        counts = []
        for x in inputs:
            for got, expected in zip(board(x), host(x), strict=True):
                np.testing.assert_array_equal(got, expected)
            counts.append(board.instructions)
        board(inputs[0])
        assert board.instructions == counts[0]


@pytest.mark.parametrize("target", BOARDS)
@pytest.mark.parametrize("name", sorted(INT8_MODELS))
def test_mlperf_int8_model_on_board_is_identical_to_host(name, target):
    model = load_model(shared_model(name))
    inputs = model_inputs(model, INT8_MODELS[name])[:SAMPLES]
    assert_board_matches_host(model, inputs, target)


@pytest.mark.parametrize("target", BOARDS)
def test_quantized_example_on_board_is_identical_to_host(target):
    model = load_model(DIGITS_MODEL)
    calibration, _ = digits_split("train")
    quantized = quantize_model(model, [[x] for x in calibration[:50]])
    inputs, _ = digits_split("test")
    assert_board_matches_host(quantized, list(inputs[:SAMPLES]), target)


def test_kernel_profile_accounts_for_the_inference():
    """The per-kernel instruction counts (QEMU block log, tvmq.hil.profile) of one
    inference on the M4 add up to the -icount figure of the same inference, and the
    convolutions are where the instructions go."""
    from tvmq.backend.emit_c import symbol_prefix
    from tvmq.hil.profile import ENTRY_ROW, kernel_calls, profile_inference

    calibration, _ = digits_split("train")
    model = quantize_model(load_model(DIGITS_MODEL), [[x] for x in calibration[:50]])
    x = digits_split("test")[0][0]
    with model.build("qemu-cortex-m4") as board:
        board(x)
        calls = kernel_calls(board.compiled.graph)
        prefix = symbol_prefix(board.compiled.model)
        rows = profile_inference(board.firmware, board.target, calls, [x], symbol_prefix=prefix)
        measured = board.instructions
    counted = {row.kernel: row.instructions for row in rows}
    assert set(counted) == set(calls) | {ENTRY_ROW}
    total = sum(counted.values())
    assert abs(total - measured) <= 0.001 * measured, (total, measured)
    convolutions = [name for name in calls if "conv2d" in name]
    assert len(convolutions) == 4 and all(counted[name] > 0 for name in convolutions)
    assert sum(counted[name] for name in convolutions) > total / 2


def test_model_too_big_for_the_board_is_refused_in_one_line(tmp_path):
    """The linker's overflow becomes one line naming the board and the region."""
    import onnx
    from onnx import TensorProto, helper

    from tvmq.backend.mcu import compile_firmware
    from tvmq.errors import TvmqError
    from tvmq.targets import load_target

    shape = [1, 448, 448, 1]  # 784 KiB in and as much out: more than the board's RAM
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    path = tmp_path / "big.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    with pytest.raises(TvmqError, match=r"does not fit board mps2-an386: RAM by [\d,]+ B") as err:
        compile_firmware(load_model(path), load_target("qemu-cortex-m4"), tmp_path / "fw")
    assert "\n" not in str(err.value)
