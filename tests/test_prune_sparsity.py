"""tvmq prune --sparsity/--pattern/--block: masks, schedule, sensitivity allocation,
sparsity-preserving fine-tuning of the bundled digits CNN, and its board build."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from tvm import relax

from tvmq.cli import main
from tvmq.errors import TvmqError
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.prune.compensation import lost_contribution, tap_coverage
from tvmq.prune.layers import PrunableLayer
from tvmq.prune.masks import block_mask, magnitude_mask, n_of_m_mask, parse_pattern
from tvmq.prune.schedule import PolynomialDecay
from tvmq.prune.sensitivity import LADDER, allocate
from tvmq.prune.sparse_training import MaskedStep, SparsityOptions, dense_notes, remove
from tvmq.quantize.annotate import main_bindings
from tvmq.train.layers import Layer, constant_array
from tvmq.train.optimizers import Adam
from tvmq.train.rewrite import op_name


def _int8_weights(path) -> dict[str, np.ndarray]:
    """Every dequantize(int8 constant) weight of a saved model, checking zero point 0."""
    weights = {}
    for binding in main_bindings(load_model(path).mod):
        value = binding.value
        ints = constant_array(value.args[0]) if op_name(value) == "relax.dequantize" else None
        if ints is not None and ints.dtype == np.int8 and ints.ndim >= 2:
            assert not constant_array(value.args[2]).any(), "weights have zero point 0"
            weights[binding.var.name] = ints
    return weights


def test_magnitude_mask_zeroes_exactly_the_smallest_weights():
    weight = np.random.default_rng(0).normal(size=(16, 3, 3, 8)).astype(np.float32)
    weight[0, 0, 0, :4] = 0.0  # ties at zero
    mask = magnitude_mask(weight, 0.75)
    assert mask.sum() == weight.size - round(0.75 * weight.size)
    assert np.abs(weight[mask]).min() >= np.abs(weight[~mask]).max()


def test_n_of_m_keeps_the_largest_n_of_every_m_input_channels():
    weight = np.random.default_rng(1).normal(size=(6, 3, 3, 8)).astype(np.float32)
    mask = n_of_m_mask(weight, 2, 4, 3, "conv")
    groups = mask.reshape(-1, 4)
    assert (groups.sum(axis=1) == 2).all()
    magnitude = np.abs(weight).reshape(-1, 4)
    assert (
        np.where(groups, magnitude, np.inf).min(1) >= np.where(groups, -1, magnitude).max(1)
    ).all()
    dense = np.random.default_rng(2).normal(size=(12, 5)).astype(np.float32)  # matmul (in, out)
    assert (n_of_m_mask(dense, 1, 4, 0, "fc").sum(axis=0) == 3).all()
    with pytest.raises(TvmqError, match=r"layer 'conv2': 2:4 .* groups of 4, it has 6"):
        n_of_m_mask(np.ones((4, 3, 3, 6), np.float32), 2, 4, 3, "conv2")


def test_block_mask_removes_whole_blocks_at_the_sparsity():
    weight = np.random.default_rng(3).normal(size=(8, 3, 3, 4)).astype(np.float32)
    mask = block_mask(weight, 0.5, (4, 2), 0, 3, "conv")
    blocks = mask.reshape(2, 4, 3, 3, 2, 2)
    per_block = blocks.sum(axis=(1, 5))
    assert set(np.unique(per_block)) <= {0, 8} and (per_block == 0).sum() == per_block.size // 2
    with pytest.raises(TvmqError, match="layer 'conv': 3x1 blocks do not divide its 8"):
        block_mask(weight, 0.5, (3, 1), 0, 3, "conv")


@pytest.mark.parametrize("text", ["4:2", "2-4", "0:4"])
def test_bad_patterns_are_one_line(text):
    with pytest.raises(TvmqError, match="expected N:M"):
        parse_pattern(text, None)


def test_polynomial_decay_is_tf_mot_formula():
    schedule = PolynomialDecay(0.1, 0.8, begin_step=10, end_step=110, power=3, frequency=20)
    # TF-MOT: p = clip((step - begin) / (end - begin), 0, 1);
    # sparsity = (initial - final) * (1 - p) ** power + final
    assert schedule.sparsity(0) == pytest.approx(0.1)
    assert schedule.sparsity(60) == pytest.approx(-0.7 * 0.5**3 + 0.8)
    assert schedule.sparsity(85) == pytest.approx(-0.7 * 0.25**3 + 0.8)
    assert schedule.sparsity(500) == pytest.approx(0.8)
    turns = [step for step in range(0, 200) if schedule.should_prune(step)]
    assert turns == [10, 30, 50, 70, 90, 110]


def _prunable(name: str, size: int, inputs: int = 1, depthwise: bool = False) -> PrunableLayer:
    weight = np.ones((inputs, size // inputs), np.float32)
    layer = Layer(name, None, None, weight, None, np.ones(1, np.float32), 1, 1.0, 0)
    return PrunableLayer(layer, 1, 0, depthwise, name)


def test_first_depthwise_and_classifier_layers_stay_dense_unless_all_layers():
    layers = [
        _prunable("first", 40, inputs=4),
        _prunable("depthwise", 9, depthwise=True),
        _prunable("pointwise", 64, inputs=8),
        _prunable("classifier", 64, inputs=8),
    ]
    default = dense_notes(layers, SparsityOptions(0.75))
    assert [name for name, note in default.items() if note is None] == ["pointwise"]
    assert "'first' is the first layer: left dense (--all-layers" in default["first"]
    assert "'depthwise' is depthwise: left dense" in default["depthwise"]
    assert "'classifier' is the classifier: left dense" in default["classifier"]
    every = dense_notes(layers, SparsityOptions(0.75, all_layers=True))
    assert all(note is None for note in every.values())
    # A pattern still leaves dense what it cannot take, whatever --all-layers says.
    n_of_m = dense_notes(layers, SparsityOptions(None, parse_pattern("2:8", None), all_layers=True))
    assert [name for name, note in n_of_m.items() if note is not None] == ["first", "depthwise"]


def test_allocation_meets_the_global_target_sparing_the_sensitive_layer():
    layers = [_prunable("first", 100), _prunable("middle", 1000), _prunable("last", 100)]
    flat = [0.01 * s for s in LADDER]
    steep = [10.0 * s for s in LADDER]
    losses = {"first": steep, "middle": flat, "last": steep}
    sparsity = allocate(layers, losses, 0.75)
    removed = sum(sparsity[layer.name] * layer.size for layer in layers)
    assert removed == pytest.approx(0.75 * 1200)
    assert sparsity["first"] < 0.75 < sparsity["middle"] and sparsity["last"] < 0.75


@pytest.mark.parametrize(
    ("shape", "output_axis", "input_axis", "depthwise"),
    [((16, 8), 1, 0, False), ((8, 3, 3, 16), 0, 3, False), ((3, 3, 16, 1), 2, 3, True)],
)
def test_removed_weights_mean_moves_into_the_bias(shape, output_axis, input_axis, depthwise):
    """matmul (in, out), conv OHWI, depthwise HWOI: away from borders, each output's
    mean over inputs with these channel means is what it was before pruning."""
    rng = np.random.default_rng(5)
    weight = rng.normal(size=shape).astype(np.float32)
    outputs = shape[output_axis]
    layer = Layer("l", None, None, weight, np.zeros(outputs, np.float32), None, output_axis, 1, 0)
    prunable = PrunableLayer(layer, output_axis, input_axis, depthwise, "l")
    mean = rng.uniform(0.5, 2.0, size=outputs if depthwise else shape[input_axis])

    def output_means() -> np.ndarray:
        moved = np.moveaxis(layer.weight.astype(np.float64), (output_axis, input_axis), (0, -1))
        taps = moved.reshape(outputs, -1, moved.shape[-1]).sum(axis=1)
        sums = taps[:, 0] * mean if depthwise else taps @ mean
        return sums + layer.bias

    before = output_means()
    remove(prunable, magnitude_mask(weight, 0.75), mean)
    assert (layer.weight == 0).mean() == pytest.approx(0.75, abs=0.01)
    np.testing.assert_allclose(output_means(), before, rtol=1e-5, atol=1e-4)
    corrected = layer.bias.copy()
    remove(prunable, magnitude_mask(layer.weight, 0.9), None)  # no means: bias unchanged
    np.testing.assert_array_equal(layer.bias, corrected)
    assert not np.allclose(output_means(), before)


def _padded_conv(x: np.ndarray, weight: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """NHWC x OHWI convolution over zero padding, computed directly."""
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    taps = weight.shape[1]
    size = (padded.shape[1] - taps) // stride + 1
    out = np.zeros((len(x), size, size, len(weight)))
    for i in range(size):
        for j in range(size):
            window = padded[:, i * stride : i * stride + taps, j * stride : j * stride + taps]
            out[:, i, j] = np.tensordot(window, weight, axes=([1, 2, 3], [1, 2, 3]))
    return out


@pytest.mark.parametrize("stride", [1, 2])
def test_border_weighted_correction_is_the_padded_convs_true_mean_shift(stride):
    """A zero-padded 3x3 conv on a 6x6 input (each channel at its mean): removing
    weights shifts each output channel's mean by exactly the border-weighted
    correction; counting every tap (no weighting) overshoots."""
    rng = np.random.default_rng(7)
    weight = rng.normal(size=(8, 3, 3, 16)).astype(np.float32)
    mean = rng.uniform(0.5, 2.0, size=16)
    x = np.broadcast_to(mean, (1, 6, 6, 16))
    data = relax.Var("x", relax.TensorType(x.shape, "float32"))
    conv = relax.op.nn.conv2d(
        data, relax.const(weight), stride, 1, data_layout="NHWC", kernel_layout="OHWI"
    )
    layer = Layer("l", None, None, weight.copy(), np.zeros(8, np.float32), None, 0, 1, 0)
    prunable = PrunableLayer(layer, 0, 3, False, "l", tap_coverage(conv))
    mask = magnitude_mask(weight, 0.75)
    remove(prunable, mask, mean)
    dense = _padded_conv(x, weight.astype(np.float64), stride, 1).mean(axis=(0, 1, 2))
    pruned = _padded_conv(x, (weight * mask).astype(np.float64), stride, 1).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(layer.bias, dense - pruned, rtol=1e-5, atol=1e-5)
    unweighted = lost_contribution(weight * ~mask, 0, 3, mean)
    assert np.abs(unweighted - (dense - pruned)).max() > 0.1


@pytest.fixture(scope="module")
def digits_train(tmp_path_factory):
    """The digits training split as interleaved labelled data (even train, odd score)."""
    x, y = digits_split("train")
    path = tmp_path_factory.mktemp("digits") / "train.npz"
    np.savez(path, x=x[:512], y=y[:512])
    return path


@pytest.fixture(scope="module")
def pruned_2_4(tmp_path_factory, digits_train) -> tuple[Path, str]:
    """The digits CNN pruned 2:4 and fine-tuned one epoch by the CLI (distilled from the
    unpruned model), and what it printed."""
    output = tmp_path_factory.mktemp("pruned") / "digits_2_4.tvmq"
    arguments = ["prune", str(DIGITS_MODEL), "--data", str(digits_train), "--pattern", "2:4"]
    printed = io.StringIO()
    options = ["--epochs", "1", "--lr", "1e-3", "--distill", "-o", str(output)]
    with contextlib.redirect_stdout(printed):
        assert main([*arguments, *options]) == 0
    return output, printed.getvalue()


def test_2_4_survives_fine_tuning_and_quantization_as_int8_zeros(pruned_2_4):
    output, printed = pruned_2_4
    assert "pwconv                        384      192    50.0%" in printed
    assert "layer 'dwconv' is depthwise: left dense" in printed
    assert "layer 'fc' is the classifier: left dense" in printed
    assert "pruned before fine-tuning" in printed
    weights = _int8_weights(output)
    pruned = [w for w in weights.values() if w.shape[-1] % 4 == 0 and w.ndim == 4]
    fc = [w for w in weights.values() if w.ndim == 2]
    assert len(pruned) == 2 and len(fc) == 1  # conv2 and pwconv (OHWI), fc (in, out)
    for ints in pruned:
        assert ((ints.reshape(-1, 4) != 0).sum(axis=1) <= 2).all()
    assert (fc[0] != 0).mean() > 0.9  # the classifier is left dense by default


def test_masked_steps_raise_sparsity_on_schedule_and_never_refill_zeros():
    rng = np.random.default_rng(4)
    layers = [_prunable("a", 400), _prunable("b", 1000)]
    for layer in layers:
        layer.layer.weight[...] = rng.normal(size=layer.layer.weight.shape)
    schedules = {
        "a": PolynomialDecay(0.0, 0.5, 0, 40, frequency=10),
        "b": PolynomialDecay(0.0, 0.9, 0, 40, frequency=10),
    }
    pattern = parse_pattern(None, None)
    masked = MaskedStep(Adam(3.0), layers, pattern, schedules)  # steps refill zeros
    params = [layer.layer.weight for layer in layers]
    pruned_before = [np.zeros(p.shape, bool) for p in params]
    for step in range(1, 61):
        masked.step(params, [rng.normal(size=p.shape).astype(np.float32) for p in params])
        for layer, before in zip(layers, pruned_before, strict=True):
            pruned = layer.layer.weight == 0  # normal weights are never exactly 0 unpruned
            assert pruned[before].all(), f"step {step} refilled a pruned weight"
            assert (layer.layer.integer_weight()[pruned] == 0).all()
            before[...] = pruned
            expected = schedules[layer.name].sparsity(step - step % 10)
            assert (layer.layer.weight == 0).sum() == round(expected * layer.size)
    assert masked.done()
    assert [int((p == 0).sum()) for p in params] == [200, 900]


@pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="the Arm toolchain and qemu-system-arm are needed",
)
def test_pruned_model_on_the_m4_equals_the_host_bit_for_bit(pruned_2_4, tmp_path, capsys):
    x, _ = digits_split("test")
    np.save(tmp_path / "x.npy", x[:2])
    results = {}
    for target in ("host", "qemu-cortex-m4"):
        output = tmp_path / f"{target}.npy"
        arguments = ["run", str(pruned_2_4[0]), "--input", str(tmp_path / "x.npy")]
        assert main([*arguments, "--target", target, "--output", str(output)]) == 0
        results[target] = np.load(output)
    capsys.readouterr()
    np.testing.assert_array_equal(results["qemu-cortex-m4"], results["host"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--sparsity", "1.5"], "--sparsity 1.5: a sparsity is a fraction strictly between 0"),
        (["--sparsity", "0"], "--sparsity 0.0: a sparsity is a fraction strictly between 0"),
        (["--pattern", "1:3"], "layer 'conv2': 1:3 sparsity needs input channels in groups of 3"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(options, message, digits_train, tmp_path, capsys):
    output = tmp_path / "out.tvmq"
    arguments = ["prune", str(DIGITS_MODEL), "--data", str(digits_train), *options]
    assert main([*arguments, "--epochs", "1", "-o", str(output)]) == 2
    err = capsys.readouterr().err.splitlines()
    errors = [line for line in err if line.strip() and "calibrate" not in line]
    assert errors == [f"tvmq: error: {errors[0].removeprefix('tvmq: error: ')}"]
    assert message in errors[0]
    assert not output.exists()
