"""Sparse int8 kernels (tvmq.backend.sparse): pruned layers from a TFLite file run
without their zeros on the emulated Cortex-M boards, bit-exact with the host and the
dense build, in fewer instructions and fewer weight bytes where the cost model says so."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from bench.sparse_kernels import board
from bench.sparse_layers import layer_model, pruned_weights
from tvmq.backend.aot import model_graph
from tvmq.backend.sparse import KERNEL, entries, pack_weights, sparse_pays_off
from tvmq.frontend import load_model
from tvmq.quantize.fixed_point import MICRO_KERNEL

needs_boards = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)


def unpack(packed: np.ndarray) -> np.ndarray:
    """The dense weights [channels, depth] a packed blob stands for (the C kernel's walk)."""
    depth, channels = (int(v) for v in packed[:8].view("<u4"))
    counts = packed[8 : 8 + 2 * channels].view("<u2")
    stream = packed[8 + 2 * (channels + channels % 2) :].reshape(-1, 2)
    weights, position = np.zeros((channels, depth), np.int64), 0
    for channel, count in enumerate(counts):
        index = 0
        for delta, value in stream[position : position + count]:
            index += int(delta)
            weights[channel, index] += np.int8(value.view(np.int8))
        position += int(count)
    assert position == len(stream)
    return weights


@pytest.mark.parametrize("pattern", ["0.5", "0.97", "2:4", "1:4"])
def test_packed_weights_hold_exactly_the_nonzeros(pattern):
    rng = np.random.default_rng(1)
    weights = pruned_weights(rng, 6, 600, pattern)
    packed = pack_weights(weights)
    np.testing.assert_array_equal(unpack(packed), weights)
    assert entries(packed) % 4 == 0 and entries(packed) >= np.count_nonzero(weights)


def test_gaps_over_255_inputs_take_filler_entries():
    weights = np.zeros((2, 600), np.int8)
    weights[0, [0, 599]] = (5, -7)  # 599 = 255 + 255 + 89: two fillers, then -7
    packed = pack_weights(weights)
    np.testing.assert_array_equal(unpack(packed), weights)
    assert entries(packed) == 4  # 5, two fillers, -7; none for the empty channel


def test_cost_model_needs_sparser_weights_on_helium():
    rng = np.random.default_rng(2)
    picks = {
        (pattern, core): sparse_pays_off(pruned_weights(rng, 64, 1024, pattern), 1, core)
        for pattern in ("0.5", "0.8", "0.99")
        for core in ("cortex-m4", "cortex-m55")
    }
    assert picks == {
        ("0.5", "cortex-m4"): False,
        ("0.8", "cortex-m4"): True,
        ("0.99", "cortex-m4"): True,
        ("0.5", "cortex-m55"): False,
        ("0.8", "cortex-m55"): False,
        ("0.99", "cortex-m55"): True,
    }
    assert not sparse_pays_off(np.zeros((64, 256), np.int8), 1, "cortex-a53")


def test_only_sparse_enough_layers_take_the_sparse_kernel(tmp_path):
    rng = np.random.default_rng(3)

    def kernels(pattern: str, core: str | None) -> list[str]:
        path = tmp_path / f"{pattern.replace(':', 'of')}.tflite"
        model = load_model(layer_model(path, "dense", pruned_weights(rng, 32, 256, pattern)))
        graph = model_graph(model, core)
        return [
            str(f.attrs[MICRO_KERNEL])
            for f in graph.kernels.values()
            if f.attrs and MICRO_KERNEL in f.attrs
        ]

    assert kernels("0.9", "cortex-m4") == [KERNEL]
    assert kernels("0.9", None) == []  # host, Cortex-A: dense
    assert kernels("0.3", "cortex-m4") == []


@needs_boards
@pytest.mark.parametrize(
    ("kind", "pattern", "pixels", "target"),
    [
        ("dense", "1:4", (1, 1), "qemu-cortex-m4"),
        ("pointwise", "0.8", (1, 5), "qemu-cortex-m4"),
        ("pointwise", "2:4", (2, 2), "qemu-cortex-m55"),
    ],
)
def test_sparse_layer_on_board_is_bit_exact_and_cheaper(tmp_path, kind, pattern, pixels, target):
    """Forced sparse, against the host and the dense build: the same outputs; at 75 %
    zeros and more, fewer weight bytes and (M4) instructions. Five pixels take the
    kernel's three- and two-row loops, four its three-row loop and one-row tail."""
    rng = np.random.default_rng(4)
    weights = pruned_weights(rng, 16, 128, pattern)
    model = load_model(layer_model(tmp_path / "layer.tflite", kind, weights, pixels))
    inputs = [rng.integers(-128, 128, model.inputs[0].shape).astype(np.int8) for _ in range(2)]
    host = model.build("host")
    counts, weight_bytes = {}, {}
    for sparse in (False, True):
        with board(model, target, sparse) as executable:
            for x in inputs:
                np.testing.assert_array_equal(executable(x)[0], host(x)[0])
            counts[sparse] = executable.instructions
            weight_bytes[sparse] = len(executable.compiled.weights)
            names = list(executable.compiled.graph.kernels)
            assert any("sparse" in name for name in names) == sparse
    if np.mean(weights == 0) >= 0.75:  # 2 bytes per stored nonzero
        assert weight_bytes[True] < weight_bytes[False]
        if target == "qemu-cortex-m4":
            assert counts[True] < counts[False]
