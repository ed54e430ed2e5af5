"""Structured pruning: channel groups, exactness against zeroed channels, MACs, errors."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tvm
from tvm import relax

from tests.test_cli import assert_user_error, tvmq
from tvmq.errors import TvmqError
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.model import Model, TensorSpec
from tvmq.prune.groups import analyse
from tvmq.prune.structured import model_macs, prune
from tvmq.quantize.quantizer import quantize_model

SHAPE = (1, 6, 6, 3)


def _weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def draw(*shape):
        return rng.normal(0, 0.5, shape).astype(np.float32)

    return {
        "a": draw(8, 3, 3, 3),  # conv 3x3, OHWI
        "a_bias": draw(8),
        "b": draw(8, 1, 1, 8),  # pointwise, its output added to a's (a residual)
        "b_bias": draw(8),
        "dw": draw(8, 3, 3, 1),  # depthwise on the sum
        "dw_bias": draw(8),
        "c": draw(4, 1, 1, 8),  # pointwise, concatenated with the depthwise output
        "c_bias": draw(4),
        "d": draw(6, 1, 1, 12),  # reads the concat
        "d_bias": draw(6),
        "fc": draw(6 * 6 * 6, 5),  # dense after a flatten
    }


def _synthetic(w: dict[str, np.ndarray]) -> Model:
    """conv a -> pointwise b + a (residual) -> depthwise -> [pointwise c, depthwise]
    concat -> pointwise d -> flatten -> dense: every kind of group at once."""
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    builder = relax.BlockBuilder()

    def conv(data, name, groups=1, padding=0):
        out = relax.op.nn.conv2d(
            data,
            relax.const(w[name]),
            padding=padding,
            groups=groups,
            data_layout="NHWC",
            kernel_layout="OHWI",
        )
        out = builder.emit(out)
        return builder.emit(relax.op.nn.relu(builder.emit(out + relax.const(w[f"{name}_bias"]))))

    with builder.function("main", [x]):
        with builder.dataflow():
            a = conv(x, "a", padding=1)
            b = conv(a, "b")
            total = builder.emit(a + b)
            dw = conv(total, "dw", groups=8, padding=1)
            c = conv(dw, "c")
            joined = builder.emit(relax.op.concat([c, dw], axis=3))
            d = conv(joined, "d")
            flat = builder.emit(relax.op.reshape(d, [1, 6 * 6 * 6]))
            out = builder.emit_output(builder.emit(relax.op.matmul(flat, relax.const(w["fc"]))))
        builder.emit_func_output(out)
    mod = relax.transform.Normalize()(builder.get())
    spec = TensorSpec("x", SHAPE, "float32")
    return Model("synthetic", Path("synthetic.onnx"), "onnx", mod, [spec], [spec])


def _run(model: Model, x: np.ndarray) -> np.ndarray:
    executable = tvm.compile(model.mod, tvm.target.Target({"kind": "llvm", "opt-level": 0}))
    return relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()


def _layer_names(model: Model) -> list[str]:
    return [name for name, _ in model_macs(model.mod)]


def test_groups_tie_residual_adds_follow_depthwise_and_concat_and_keep_the_output():
    model = _synthetic(_weights())
    graph = analyse(model.mod)
    a, b, c, d, fc = graph.layers
    assert [layer.channels for layer in graph.layers] == [8, 8, 4, 6, 5]
    # the residual add ties channel i of a and of b, and nothing else
    assert [graph.find(x) for x in a.atoms] == [graph.find(x) for x in b.atoms]
    assert len({graph.find(x) for x in a.atoms}) == 8
    # the depthwise conv is no layer of its own: its channels are a's and b's
    assert len(graph.groups()) == 8 + 4 + 6 + 5
    # the concat's channels are c's, then the depthwise conv's (a's)
    joined = [atoms for _, atoms in graph.channels.values() if len(atoms) == 12]
    assert joined == [c.atoms + a.atoms]
    # the flatten repeats d's channels once per pixel, as the dense layer reads them
    assert [atoms for _, atoms in graph.channels.values() if len(atoms) == 216] == [d.atoms * 36]
    assert not any(graph.prunable(graph.find(x)) for x in fc.atoms)  # the model output
    assert all(graph.prunable(graph.find(x)) for x in [*a.atoms, *c.atoms, *d.atoms])


def test_pruned_graph_equals_the_full_one_with_the_removed_channels_zeroed():
    weights = _weights()
    model = _synthetic(weights)
    result = prune(model, 0.5, "l2", multiple=1)
    kept = {layer.name: layer.kept for layer in result.layers}
    names = dict(zip(_layer_names(model), ["a", "b", "dw", "c", "d", "fc"], strict=True))
    by_key = {names[name]: channels for name, channels in kept.items()}
    assert [len(by_key[k]) for k in ("a", "b", "c", "d", "fc")] == [4, 4, 2, 3, 5]
    assert by_key["a"] == by_key["b"]  # pruned together
    zeroed = {key: value.copy() for key, value in weights.items()}
    for key, filters in (("a", "a"), ("b", "a"), ("dw", "a"), ("c", "c"), ("d", "d")):
        removed = sorted(set(range(weights[key].shape[0])) - set(by_key[filters]))
        zeroed[key][removed] = 0
        zeroed[f"{key}_bias"][removed] = 0
    x = np.random.default_rng(1).normal(size=SHAPE).astype(np.float32)
    np.testing.assert_allclose(
        _run(result.model, x), _run(_synthetic(zeroed), x), rtol=1e-5, atol=1e-5
    )
    # MACs as the kept channels say: a 3x3x3 over 36 pixels, b 1x1 over a's, ...
    pixels = 36
    expected = pixels * (
        4 * 27  # a
        + 4 * 4  # b
        + 4 * 9  # depthwise
        + 2 * 4  # c: reads the 4 channels left
        + 3 * 6  # d: reads c's 2 and the depthwise's 4
        + 3 * 5  # the dense layer reads 3 channels at each pixel
    )
    assert result.macs_after == expected
    assert result.macs_before == pixels * (8 * 27 + 8 * 8 + 8 * 9 + 4 * 8 + 6 * 12 + 6 * 5)


def test_global_scope_and_activation_criterion_also_prune():
    model = _synthetic(_weights())
    samples = [np.random.default_rng(i).normal(size=SHAPE).astype(np.float32) for i in range(4)]
    for criterion, scope in (("activation", "layer"), ("l1", "global")):
        result = prune(model, 0.4, criterion, scope, samples)
        assert result.macs_after < result.macs_before
        assert all(len(layer.kept) >= 1 for layer in result.layers)


def test_bad_ratios_and_unknown_layers_are_refused():
    model = _synthetic(_weights())
    for ratio in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(TvmqError, match="in \\(0, 1\\)"):
            prune(model, ratio)
    with pytest.raises(TvmqError, match="no prunable layer 'conv9'"):
        prune(model, 0.5, keep=("conv9",))
    first = _layer_names(model)[0]
    result = prune(model, 0.5, keep=(first,))
    assert len(result.layers[0].kept) == 8
    assert f"{first}: kept whole, as asked" in result.notes


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (("--structured", "1.5"), ("--structured 1.5", "(0, 1)")),
        (("--structured", "0.5", "--epochs", "0"), ("--epochs", "at least 1")),
    ],
)
def test_cli_refuses_bad_options_in_one_line(tmp_path, options, words):
    output = tmp_path / "out.tvmq"
    data = tmp_path / "d.npz"
    result = tvmq("prune", DIGITS_MODEL, "--data", data, *options, "-o", output)
    assert_user_error(result, *words)
    assert not output.exists()


def test_cli_takes_one_way_to_prune(tmp_path):
    """--structured, --sparsity and --pattern exclude each other (one parser)."""
    output = tmp_path / "out.tvmq"
    arguments = ("--structured", "0.5", "--sparsity", "0.5")
    result = tvmq("prune", DIGITS_MODEL, "--data", tmp_path / "d.npz", *arguments, "-o", output)
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr
    assert not output.exists()


@pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)
def test_pruned_digits_model_is_smaller_and_bit_exact_on_the_m4_board():
    x, _ = digits_split("train")
    model = load_model(DIGITS_MODEL)
    result = prune(model, 0.5)
    assert 1 - result.macs_after / result.macs_before > 0.4
    assert "its output channels cannot be pruned" in " ".join(result.notes)
    quantized = quantize_model(result.model, [[sample] for sample in x[:64]])
    samples = x[100:103]
    on_host = [quantized.build("host")(sample)[0] for sample in samples]
    with quantized.build("qemu-cortex-m4") as board:
        on_board = [board(sample)[0] for sample in samples]
    for host, device in zip(on_host, on_board, strict=True):
        np.testing.assert_array_equal(host, device)


def test_cli_prunes_in_rounds_fine_tunes_and_writes_a_smaller_model(tmp_path):
    x, y = digits_split("train")
    data = tmp_path / "digits.npz"
    np.savez(data, x=x[:256], y=y[:256])
    output = tmp_path / "pruned.tvmq"
    arguments = ["--structured", "0.4", "--rounds", "2", "--epochs", "1", "--multiple", "1"]
    result = tvmq("prune", DIGITS_MODEL, "--data", data, *arguments, "-o", output)
    assert result.returncode == 0, result.stderr
    # 8 channels, 20 % then 20 % of what is left of them removed: 8 -> 7 -> 6
    assert re.search(r"relax\.nn\.conv2d\s+6/8\s", result.stdout), result.stdout
    assert "note: " in result.stdout and "cannot be pruned" in result.stdout
    assert "fine-tuned" in result.stdout
    pruned = load_model(output)
    assert pruned.is_quantized
    macs = dict(model_macs(pruned.mod))
    assert sum(macs.values()) < sum(dict(model_macs(load_model(DIGITS_MODEL).mod)).values())
