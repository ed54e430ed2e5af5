"""Quantization-aware fine-tuning (tvmq.train): gradients, exactness, the CLI."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import tvm
from onnx import helper
from tvm import relax

import tvmq.train.gradients  # noqa: F401  (registers the gradients under test)
from tests.onnx_models import graph_model, weight
from tests.shared_assets import shared_data, shared_model
from tvmq.cli import main
from tvmq.data import open_data
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import quantize_model
from tvmq.train.engine import Engine
from tvmq.train.finetune import labelled_arrays
from tvmq.train.optimizers import Adam


def _gradient(op, x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, callable]:
    """d/dx sum(weights * op(x)) by TVM's Gradient pass, and the forward function."""
    var = relax.Var("x", relax.TensorType(x.shape, "float32"))
    builder = relax.BlockBuilder()
    with builder.function("f", [var]):
        with builder.dataflow():
            y = builder.emit(op(var))
            weighted = relax.op.multiply(y, relax.const(weights))
            axes = list(range(len(weights.shape)))
            loss = builder.emit_output(relax.op.sum(weighted, axis=axes))
        builder.emit_func_output(loss)
    mod = relax.transform.Gradient("f", require_grads=[var])(builder.get())
    vm = relax.VirtualMachine(tvm.compile(mod, "llvm"), tvm.cpu())
    _, (grad,) = vm["f_adjoint"](tvm.runtime.tensor(x))
    return grad.numpy(), lambda a: float(vm["f"](tvm.runtime.tensor(a)).numpy())


def _finite_differences(forward, x: np.ndarray, step: float = 1e-2) -> np.ndarray:
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += step
        down[index] -= step
        grad[index] = (forward(up) - forward(down)) / (2 * step)
    return grad


RNG = np.random.default_rng(0)
# Away from clip's bounds, so that finite differences do not straddle a kink.
X = (RNG.choice([-1, 1], (2, 3, 3, 2)) * RNG.uniform(0.1, 0.9, (2, 3, 3, 2))).astype(np.float32)
X[0, 0, 0, 0] = 2.5  # clipped
W_PADDED = RNG.standard_normal((2, 5, 6, 2)).astype(np.float32)
W = RNG.standard_normal(X.shape).astype(np.float32)
# Values 0.1 apart: no finite difference changes which element is the maximum.
SPREAD = (RNG.permutation(X.size).reshape(X.shape) * 0.1).astype(np.float32)


@pytest.mark.parametrize(
    ("op", "x", "weights"),
    [
        (lambda x: relax.op.clip(x, -0.5, 0.5), X, W),
        (lambda x: relax.op.nn.pad(x, [0, 0, 1, 1, 2, 1, 0, 0], "constant", 0.0), X, W_PADDED),
        (lambda x: relax.op.max(x, axis=[1, 2]), SPREAD, W[:, 0, 0, :]),
        (lambda x: relax.op.min(x, axis=[-1], keepdims=True), SPREAD, W[..., :1]),
        (lambda x: relax.op.strided_slice(x, [1, 2], [1, -2], [3, 9]), X, W[:, 1:, 1:]),
        (lambda x: relax.op.squeeze(relax.op.strided_slice(x, [3], [1], [2]), [3]), X, W[..., 0]),
        (lambda x: relax.op.nn.leakyrelu(x, 0.2), X, W),
        (relax.op.square, X, W),
        (relax.op.erf, X, W),
        (
            lambda x: relax.op.stack([relax.op.multiply(x, x), x], axis=-2),
            X,
            RNG.standard_normal((2, 3, 3, 2, 2)).astype(np.float32),
        ),
        (
            lambda x: relax.op.image.resize2d(x, (5, 7), layout="NHWC", method="linear"),
            X,
            RNG.standard_normal((2, 5, 7, 2)).astype(np.float32),
        ),
        (
            lambda x: relax.op.image.resize2d(
                x,
                (6, 4),
                layout="NCHW",
                method="nearest_neighbor",
                rounding_method="floor",
                coordinate_transformation_mode="asymmetric",
            ),
            X,
            RNG.standard_normal((2, 3, 6, 4)).astype(np.float32),
        ),
        (
            lambda x: relax.op.nn.layer_norm(
                x, relax.const(W[0, 0, 0] + 2), relax.const(W[1, 1, 1]), axes=[-1]
            ),
            SPREAD,
            W,
        ),
    ],
    ids=[
        "clip",
        "pad",
        "max",
        "min-keepdims",
        "strided-slice",
        "squeeze",
        "leakyrelu",
        "square",
        "erf",
        "stack",
        "resize-bilinear-nhwc",
        "resize-nearest-nchw",
        "layer-norm",
    ],
)
def test_registered_gradients_match_finite_differences(op, x, weights):
    analytic, forward = _gradient(op, x, weights)
    numeric = _finite_differences(forward, x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-3, atol=1e-3)
    assert np.abs(analytic).sum() > 0


def test_round_is_straight_through_and_floor_has_no_gradient():
    rounded, _ = _gradient(relax.op.round, X, W)
    np.testing.assert_array_equal(rounded, W)
    floored, _ = _gradient(relax.op.floor, X, W)
    np.testing.assert_array_equal(floored, np.zeros_like(W))


@pytest.fixture(scope="module")
def digits_ptq():
    x, _ = digits_split("train")
    return quantize_model(load_model(DIGITS_MODEL), [[s] for s in x[0::2][:100]])


def test_training_engine_predicts_exactly_what_the_host_build_computes(digits_ptq):
    """After real training steps (the integers move), the engine's outputs equal the
    host build of the exported .tvmq on every test image, bit for bit."""
    x, labels = digits_split("train")
    x_test, _ = digits_split("test")
    engine = Engine(digits_ptq, batch=32)
    start = [layer.integer_weight() for layer in engine.layers]
    optimizer = Adam(1e-2)
    for step in range(4):
        chosen = slice(32 * step, 32 * (step + 1))
        loss, grads = engine.gradients(x[chosen, 0], labels[chosen])
        assert np.isfinite(loss)
        optimizer.step(engine.parameters(), grads)
    moved = sum(
        int((a != layer.integer_weight()).sum())
        for a, layer in zip(start, engine.layers, strict=True)
    )
    assert moved > 0
    exported = engine.export().build("host")
    host = np.concatenate([exported(sample)[0] for sample in x_test])
    trained = np.concatenate(
        [engine.predict(x_test[i : i + 32, 0]) for i in range(0, len(x_test), 32)]
    )
    np.testing.assert_array_equal(trained, host)
    assert (trained.argmax(axis=1) == host.argmax(axis=1)).all()


@pytest.mark.shared
def test_imported_int8_resnet_trains_and_exports_exactly():
    """TFLite's int8 ResNet-8 (int32 biases, residual adds, int8 input and output):
    after training steps the exported model's host build equals the engine bit for bit."""
    model = load_model(shared_model("ic_resnet8_int8"))
    x, labels = labelled_arrays(model, open_data(shared_data("ic01")))
    x, labels = x[0::2][:32, 0], labels[0::2][:32]
    engine = Engine(model, batch=16)
    start = [layer.integer_weight() for layer in engine.layers]
    optimizer = Adam(1e-2)  # big enough steps to move integers off their grid points
    for step in range(2):
        chosen = slice(16 * step, 16 * (step + 1))
        _, grads = engine.gradients(x[chosen], labels[chosen])
        optimizer.step(engine.parameters(), grads)
    assert any(
        (a != layer.integer_weight()).any() for a, layer in zip(start, engine.layers, strict=True)
    )
    exported = engine.export().build("host")
    host = np.concatenate([exported(sample[None])[0] for sample in x])
    trained = np.concatenate([engine.predict(x[:16]), engine.predict(x[16:])])
    np.testing.assert_array_equal(trained, host)


def test_finetune_cli_writes_a_model_every_target_builds(tmp_path, capsys):
    x, y = digits_split("train")
    data = tmp_path / "digits.npz"
    np.savez(data, x=x[:256], y=y[:256])
    output = tmp_path / "qat.tvmq"
    args = ["finetune", str(DIGITS_MODEL), "--data", str(data), "-o", str(output)]
    assert main([*args, "--epochs", "1", "--lr", "1e-3"]) == 0
    printed = capsys.readouterr().out
    assert "validation accuracy on the 128 odd-indexed samples of 256" in printed
    assert "ms per training step" in printed
    model = load_model(output)
    assert model.is_quantized
    x_test, _ = digits_split("test")
    assert model.build("host")(x_test[0])[0].shape == (1, 10)


def test_finetune_refuses_labels_that_do_not_fit_the_output(tmp_path, capsys):
    x, y = digits_split("train")
    data = tmp_path / "digits.npz"
    np.savez(data, x=x[:64], y=np.where(np.arange(64) == 5, 12, y[:64]))
    output = tmp_path / "qat.tvmq"
    args = ["finetune", str(DIGITS_MODEL), "--data", str(data), "-o", str(output)]
    assert main(args) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("tvmq: error: ")
    assert "label 12 does not fit output 'probabilities' (10 classes" in error
    assert not output.exists()


def test_finetune_refuses_an_op_without_gradient_naming_node_and_op(tmp_path, capsys):
    model = graph_model(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], "conv", kernel_shape=[3, 3]),
            helper.make_node("Atan", ["c"], ["l"], "atan"),
            helper.make_node("Flatten", ["l"], ["f"], "flatten"),
            helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], "fc", transB=1),
        ],
        {"x": [1, 1, 5, 5]},
        [1, 4],
        [weight("w", 2, 1, 3, 3), weight("b", 2), weight("w2", 4, 18), weight("b2", 4)],
    )
    path = tmp_path / "atan.onnx"
    onnx.save(model, path)
    data = tmp_path / "data.npz"
    np.savez(data, x=RNG.standard_normal((64, 1, 1, 5, 5)).astype(np.float32), y=np.arange(64) % 4)
    output = tmp_path / "qat.tvmq"
    assert main(["finetune", str(path), "--data", str(data), "-o", str(output)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("tvmq: error: ")
    assert "node 'atan': op relax.atan has no gradient" in error
    assert not output.exists()


def test_a_strided_slice_with_steps_is_refused_in_one_line():
    """strided_slice's gradient covers unit strides; a step of 2 is named, not left to
    fail inside TVM's Gradient pass."""
    from tvmq.errors import TvmqError
    from tvmq.train.gradients import check_differentiable

    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 8), "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            every_other = builder.emit(relax.op.strided_slice(x, [1], [0], [8], [2]))
            out = builder.emit_output(relax.op.add(every_other, every_other))
        builder.emit_func_output(out)
    with pytest.raises(TvmqError, match=r"node 'decimate': op relax\.strided_slice with strides"):
        check_differentiable(builder.get()["main"], {every_other.name: "decimate"})


def test_a_graph_without_convolutions_keeps_its_layout_for_training():
    """The training graph converts convolutions to NCHW for TVM's conv2d gradient;
    TVM's ConvertLayout fails on stack ("Index -1 out of bounds": a float TFLite
    LSTM's outputs are PACKed), so a graph without convolutions is not converted."""
    from tvmq.train.fake_quant import trainable_layout

    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((2, 3), "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            stacked = builder.emit(relax.op.stack([x, relax.op.tanh(x)], axis=-1))
            out = builder.emit_output(relax.op.sum(stacked, axis=[2]))
        builder.emit_func_output(out)
    mod = builder.get()
    assert trainable_layout(mod).same_as(mod)
