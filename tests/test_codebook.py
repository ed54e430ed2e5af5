"""Codebook weights: k-means into 16 int8 centroids per layer (or per output channel),
4-bit indices packed with the tables, looked up inside the C kernels; the board
matches the host's integers."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys

import numpy as np
import pytest

from tests import kernel_checks
from tvmq.backend import codebook
from tvmq.backend.aot import ScheduledKernel, lower_model
from tvmq.backend.codebook import (
    PAIRS_BYTES,
    TABLE_BYTES,
    channel_axis,
    pack_channel_codebook,
    pack_codebook,
)
from tvmq.backend.mcu import elf_sizes
from tvmq.backend.planner import ALIGNMENT
from tvmq.backend.schedule import calls_micro_kernel, micro_kernel_call, small_schedule
from tvmq.errors import TvmqError
from tvmq.examples import DIGITS_DATA, DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.quantize import codebook as quantize_codebook
from tvmq.quantize.codebook import (
    PER_CHANNEL_FROM,
    cluster,
    clustered,
    codebook_table,
    kmeans_1d,
)
from tvmq.quantize.quantizer import quantize_model
from tvmq.quantize.scheme import QuantConfig, quantize_weight
from tvmq.targets import load_target
from tvmq.tune.apply import TunedSchedules

CHECK = "cb_check.c"
LAYERS = ("conv2d#0", "conv2d#1", "conv2d#2", "conv2d#3", "matmul#0")  # digits' weighted


def test_lookup_kernels_match_their_reference_on_the_host(tmp_path):
    kernel_checks.run_on_host(kernel_checks.build_for_host(CHECK, tmp_path, ("-Wall",)))


@kernel_checks.needs_cortex_m
@pytest.mark.parametrize("core", sorted(kernel_checks.CORTEX_M))
def test_lookup_kernels_match_their_reference_on_cortex_m(core, tmp_path):
    """The DSP path (looked-up pairs packed by PKHBT into SMLAD) on the M4 and M55."""
    elf = kernel_checks.build_for_cortex_m(CHECK, core, tmp_path, ("-Wall",))
    assert "path dsp" in kernel_checks.run_on_cortex_m(elf, core)


@kernel_checks.needs_aarch64
def test_lookup_kernels_match_their_reference_on_aarch64(tmp_path):
    kernel_checks.run_on_aarch64(kernel_checks.build_for_aarch64(CHECK, tmp_path, flags=()))


def _squared_error(points, counts, centroids) -> float:
    nearest = np.min(np.abs(points[:, None] - np.asarray(centroids)[None, :]), axis=1)
    return float((counts * nearest.astype(np.float64) ** 2).sum())


def test_kmeans_is_optimal_against_every_grouping():
    """Against exhaustive search over contiguous groupings (the optimal 1-D clusters
    are contiguous), with the same rounding of each group's mean."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        points = np.unique(rng.integers(-127, 128, size=9))
        counts = rng.integers(1, 50, size=points.size)
        size = 3
        best = np.inf
        for cuts in itertools.combinations(range(1, points.size), size - 1):
            bounds = [0, *cuts, points.size]
            means = [
                np.round(np.average(points[i:j], weights=counts[i:j]))
                for i, j in itertools.pairwise(bounds)
            ]
            best = min(best, _squared_error(points, counts, means))
        found = kmeans_1d(points, counts, size)
        assert found.size <= size
        assert _squared_error(points, counts, found) <= best + 1e-9


def test_cluster_takes_at_most_k_values_and_keeps_pruned_zeros():
    rng = np.random.default_rng(0)
    values = np.clip(np.round(rng.normal(0, 30, (32, 3, 3, 16))), -127, 127).astype(np.int8)
    clustered, table = cluster(values, 16)
    assert table.size == 16 and np.array_equal(np.unique(clustered), table)
    # Uniform 4-bit levels over the same range would be 17 apart: rms error 4.9.
    assert np.sqrt(np.mean((clustered.astype(int) - values) ** 2)) < 3.5
    values[:, :, :, :4] = 0  # a quarter pruned
    clustered, table = cluster(values, 16)
    assert 0 in table and np.all(clustered[values == 0] == 0)
    few = np.array([[-3, 5], [5, 9]], dtype=np.int8)  # fewer values than centroids
    assert np.array_equal(cluster(few, 16)[0], few)


def test_clustered_refits_scales_to_lower_the_float_error():
    rng = np.random.default_rng(1)
    weight = rng.standard_t(4, size=(8, 3, 3, 16)).astype(np.float32)  # heavy tails
    quantized = quantize_weight(weight, 0, QuantConfig())
    plain_values, _ = cluster(quantized.values, 16)
    refitted = clustered(quantized, 16)
    assert np.unique(refitted.values).size <= 16
    assert set(np.unique(refitted.values)) <= set(np.unique(plain_values))

    def error(values, scale):
        return float(((values * scale[:, None, None, None] - weight) ** 2).sum())

    assert error(refitted.values, refitted.scale) < error(plain_values, quantized.scale)
    assert clustered(quantized, 0) is quantized


def test_pack_codebook_puts_the_table_before_the_indices():
    table = np.array([-100, 0, 7], dtype=np.int8)
    values = np.array([[7, -100, 0], [0, 7, 7]], dtype=np.int8)
    packed = pack_codebook(values, table)
    assert packed[:16].view(np.int8).tolist() == [-100, 0, 7] + [0] * 13
    assert packed[16:].tolist() == [0x02, 0x11, 0x22]
    paired = pack_codebook(values, table, pairs=True)
    assert np.array_equal(paired[:16], packed[:16])
    assert np.array_equal(paired[16 + PAIRS_BYTES :], packed[16:])
    words = paired[16 : 16 + PAIRS_BYTES].view("<i4")
    # Word v: (table[v & 15], table[v >> 4]) as int16 lanes, low lane first.
    assert words[0x20] == (7 << 16) | 0xFF9C and words[0x02] == -100 * 65536 + 7


@pytest.fixture(scope="module")
def digits():
    model = load_model(DIGITS_MODEL)
    x_train, _ = digits_split("train")
    x_test, _ = digits_split("test")
    samples = [[x] for x in x_train[:16]]
    int8 = quantize_model(model, samples, QuantConfig())
    codebook = quantize_model(model, samples, QuantConfig(codebook=16))
    return model, samples, int8, codebook, x_test


def test_codebook_clusters_the_inner_layers_only(digits):
    _, _, int8, codebook, _ = digits
    tables = codebook.quantization["codebook"]
    assert codebook.name.endswith("_cb") and list(tables) == ["conv2d#1", "conv2d#2", "conv2d#3"]
    changed = 0
    for name, weight in codebook.params.items():
        values, original = np.asarray(weight), np.asarray(int8.params[name])
        if np.array_equal(values, original):
            continue  # the first conv and the dense layer stay int8
        changed += 1
        assert np.unique(values).tolist() in list(tables.values())
        assert np.abs(values.astype(int) - original).max() <= 20
    assert changed == 3


@pytest.mark.parametrize(
    "config, message",
    [
        (QuantConfig(codebook=17), "--codebook 17: a codebook has 2 to 16 centroids"),
        (QuantConfig(codebook=16, weight_bits=4), "--codebook 16 and --weight-bits 4 both"),
        (
            QuantConfig(layer_codebook=frozenset({("mean#0", 16)})),
            "--codebook-layer mean#0=16: mean#0 (mean) has no weights",
        ),
        (
            QuantConfig(
                layer_codebook=frozenset({("conv2d#1", 16)}),
                layer_bits=frozenset({("conv2d#1", 4)}),
            ),
            "conv2d#1 is also given 4-bit weights",
        ),
        (
            QuantConfig(layer_codebook=frozenset({("nosuch", 8)})),
            "no layer named 'nosuch' for --codebook-layer",
        ),
    ],
)
def test_bad_codebook_requests_are_refused_by_layer(digits, config, message):
    model, samples, _, _, _ = digits
    with pytest.raises(TvmqError, match=re.escape(message)):
        quantize_model(model, samples[:2], config)


@pytest.mark.parametrize(
    "options, message",
    [
        (
            ["--codebook-layer", "conv2d#1=1"],
            "--codebook-layer conv2d#1=1: a codebook has 2 to 16 centroids (4-bit indices), not 1",
        ),
        (
            ["--codebook-per-channel"],
            "--codebook-per-channel: give --codebook K or --codebook-layer LAYER=K",
        ),
    ],
)
def test_cli_refuses_bad_codebook_options_in_one_line(tmp_path, options, message):
    output = tmp_path / "out.tvmq"
    result = subprocess.run(
        [sys.executable, "-m", "tvmq", "quantize", str(DIGITS_MODEL), "--calib",
         str(DIGITS_DATA), *options, "-o", str(output)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0 and not output.exists()
    assert result.stderr.strip().splitlines() == [f"tvmq: error: {message}"]


def test_build_packs_codebook_weights(digits):
    _, _, _, quantized, _ = digits
    compiled = lower_model(quantized)
    packed = [t for t in compiled.graph.tensors.values() if t.dtype == "uint8"]
    assert sorted(t.value.size for t in packed) == [16 + 144 // 2, 16 + 384 // 2, 16 + 1152 // 2]
    kernels = compiled.tir.script()
    assert "tvmq_dot_cb_" in kernels and "tvmq_dw_cbx4" in kernels


def test_large_layers_take_the_pair_form(digits, monkeypatch):
    _, _, _, quantized, _ = digits
    monkeypatch.setattr(codebook, "PAIRS_FROM", 1000)  # conv2d#1's 1152 weights
    compiled = lower_model(quantized)
    sizes = sorted(t.value.size for t in compiled.graph.tensors.values() if t.dtype == "uint8")
    assert sizes == [16 + 144 // 2, 16 + 384 // 2, 16 + PAIRS_BYTES + 1152 // 2]
    kernels = compiled.tir.script()
    assert "tvmq_dot_cbp_" in kernels and "tvmq_dot_cb_" in kernels


@kernel_checks.needs_cortex_m
def test_codebook_model_on_the_m4_is_identical_to_host_in_less_flash(digits):
    """The looked-up weights on the board give the host's integer model exactly; the
    firmware takes less flash than int8's and no more RAM. (The pair form runs on
    the board in bench/low_bit.py's IC rows; its kernels are checked by cb_check.c.)"""
    _, _, int8, quantized, x_test = digits
    host = quantized.build("host")
    with quantized.build("qemu-cortex-m4") as board:
        for x in x_test[:4]:
            for got, expected in zip(board(x), host(x), strict=True):
                np.testing.assert_array_equal(got, expected)
        sizes = elf_sizes(board.firmware)
        weights = board.compiled.weights
    with int8.build("qemu-cortex-m4") as baseline:  # built, not booted
        int8_sizes, int8_weights = elf_sizes(baseline.firmware), baseline.compiled.weights
    assert sizes["flash"] < int8_sizes["flash"] and sizes["ram"] <= int8_sizes["ram"]
    # Each packed layer saves half its int8 bytes less its 16-byte table (up to the
    # constants' alignment): 144, 384 and 1152 weights.
    saved = sum(n // 2 - TABLE_BYTES for n in (144, 384, 1152))
    assert abs(len(int8_weights) - len(weights) - saved) <= 3 * ALIGNMENT


def test_per_channel_tables_fit_each_channel_better():
    """One table per output channel: each channel takes at most 16 values of its own
    table, with less float error than one table for the layer; channels of fewer than
    PER_CHANNEL_FROM weights (3x3 depthwise) keep one table, as flash asks."""
    rng = np.random.default_rng(2)
    weight = rng.standard_t(4, size=(8, 3, 3, 16)) * rng.uniform(0.2, 2, size=(8, 1, 1, 1))
    quantized = quantize_weight(weight.astype(np.float32), 0, QuantConfig())
    layer, channels = clustered(quantized, 16), clustered(quantized, 16, per_channel=True)
    tables = codebook_table(channels, per_channel=True)
    assert len(tables) == 8 and all(len(t) <= 16 for t in tables)
    for row, table in zip(channels.values, tables, strict=True):
        assert set(np.unique(row)) <= set(table)
    assert len(codebook_table(channels)) > 16  # more values than one table holds

    def error(q):
        return float(((q.values * q.scale[:, None, None, None] - weight) ** 2).sum())

    assert error(channels) < 0.8 * error(layer)
    depthwise = quantize_weight(weight[:1, :, :, :].transpose(1, 2, 3, 0), 2, QuantConfig())
    assert depthwise.values.size // depthwise.values.shape[2] < PER_CHANNEL_FROM
    assert isinstance(codebook_table(clustered(depthwise, 16, True), True)[0], int)


def test_pack_channel_codebook_puts_header_and_tables_before_the_indices():
    tables = [np.array([-5, 9], dtype=np.int8), np.array([0, 1, 127], dtype=np.int8)]
    values = np.array([[9, -5, 9], [127, 0, 1]], dtype=np.int8)  # channels on axis 0
    assert channel_axis(values, tables) == 0
    assert channel_axis(values.T.copy(), tables) == 1  # the last axis: div 1
    assert channel_axis(values[::-1].copy(), tables) is None
    packed = pack_channel_codebook(values, tables, 0)
    assert packed[:4].view("<u2").tolist() == [3, 2]  # div: elements after the axis
    assert packed[4:20].view(np.int8).tolist() == [-5, 9] + [0] * 14
    assert packed[20:36].view(np.int8).tolist() == [0, 1, 127] + [0] * 13
    assert packed[36:].tolist() == [0x01, 0x21, 0x10]  # indices 1 0 1 | 2 0 1
    across = pack_channel_codebook(values.T.copy(), tables, 1)
    assert across[:4].view("<u2").tolist() == [1, 2]
    assert across[36:].tolist() == [0x21, 0x00, 0x11]  # (9,127) (-5,0) (9,1)


@pytest.fixture(scope="module")
def per_channel(digits):
    model, samples, _, _, _ = digits
    return quantize_model(model, samples, QuantConfig(codebook=16, codebook_per_channel=True))


def test_build_packs_per_channel_tables(per_channel):
    """conv2d#1 (16 channels of 72 weights) takes a table per channel; conv2d#2
    (depthwise, 9 a channel) and conv2d#3 (16 a channel) keep one."""
    tables = per_channel.quantization["codebook"]
    assert [isinstance(t[0], list) for t in tables.values()] == [True, False, False]
    compiled = lower_model(per_channel)
    packed = sorted(t.value.size for t in compiled.graph.tensors.values() if t.dtype == "uint8")
    assert packed == [16 + 144 // 2, 16 + 384 // 2, 4 + 16 * 16 + 1152 // 2]
    kernels = compiled.tir.script()
    assert "tvmq_dot_cbc_" in kernels and "tvmq_dot_cb_" in kernels


def test_per_channel_codebook_needs_a_codebook(digits):
    model, samples, _, _, _ = digits
    with pytest.raises(TvmqError, match="--codebook-per-channel: give --codebook K"):
        quantize_model(model, samples[:2], QuantConfig(codebook_per_channel=True))


class _PlainLoads(TunedSchedules):
    """No SIMD schedule: every weight read is a plain load (the TIR lookup)."""

    def __call__(self, func):
        if calls_micro_kernel(func):
            return ScheduledKernel(micro_kernel_call(func))
        return ScheduledKernel(small_schedule(func))


@kernel_checks.needs_cortex_m
@pytest.mark.parametrize("kernels", ["simd", "plain loads"])
def test_per_channel_tables_on_the_m4_are_identical_to_host(digits, kernels, monkeypatch):
    """Every weighted layer with a table per channel (the first and the last, the
    depthwise too: PER_CHANNEL_FROM lowered to 1), through the lookup kernels' dot,
    pixel-pair, row and depthwise forms, or through plain loads: the board computes
    the host's integers."""
    model, samples, _, _, x_test = digits
    monkeypatch.setattr(quantize_codebook, "PER_CHANNEL_FROM", 1)
    every = frozenset((layer, 16) for layer in LAYERS)
    config = QuantConfig(layer_codebook=every, codebook_per_channel=True)
    quantized = quantize_model(model, samples, config)
    assert all(isinstance(t[0], list) for t in quantized.quantization["codebook"].values())
    host = quantized.build("host")
    target = "qemu-cortex-m4"
    schedules = _PlainLoads(load_target(target), []) if kernels == "plain loads" else None
    with quantized.build(target, schedules) as board:
        packed = [t for t in board.compiled.graph.tensors.values() if t.dtype == "uint8"]
        assert len(packed) == len(LAYERS)
        calls = set(re.findall(r"tvmq_\w*_cbc\w*", board.compiled.tir.script()))
        if kernels == "simd":
            assert {"tvmq_dot_cbc_2x4", "tvmq_dw_cbcx4_row"} <= calls
        else:
            assert not calls
        for x in x_test[:4]:
            for got, expected in zip(board(x), host(x), strict=True):
                np.testing.assert_array_equal(got, expected)
