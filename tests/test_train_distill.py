"""Distillation, the training loop's checkpoints and early stopping (tvmq.train)."""

from __future__ import annotations

import numpy as np
import pytest

from tvmq.cli import main
from tvmq.data import open_data
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.frontend.saved import save_model
from tvmq.quantize.quantizer import quantize_model
from tvmq.train import adaround, checkpoint
from tvmq.train.distill import distill
from tvmq.train.engine import Engine
from tvmq.train.finetune import validate
from tvmq.train.loop import LoopResult, TrainOptions, train


@pytest.fixture(scope="module")
def digits():
    x, labels = digits_split("train")
    float_model = load_model(DIGITS_MODEL)
    return float_model, quantize_model(float_model, [[s] for s in x[0::2][:100]]), x, labels


def test_distillation_without_labels_lowers_the_kl_to_the_teacher(digits, tmp_path):
    """A 4-bit (nearest) student learns from the float teacher on unlabelled images."""
    float_model, ptq, x, _ = digits
    student = adaround.with_weight_bits(ptq, float_model, 4)
    data = tmp_path / "unlabelled.npz"
    np.savez(data, x=x[:192])
    options = TrainOptions(epochs=2, lr=1e-3, batch=32)
    result = distill(student, open_data(data), options, teacher=float_model)
    assert result.metric == "agreement with the teacher's top-1"
    assert result.best_epoch > 0
    assert result.best_loss < 0.9 * result.start_loss
    assert len(result.history) == 2


@pytest.fixture(scope="module")
def engine(digits):
    return Engine(digits[1], batch=32)


def _run(engine: Engine, digits, start, **options) -> tuple[list[np.ndarray], LoopResult]:
    _, _, x, labels = digits
    engine.load_state(start)
    x_train, y_train = x[0:256:2, 0], labels[0:256:2]
    x_val, y_val = x[1:128:2, 0], labels[1:128:2]
    result = train(
        engine,
        x_train,
        y_train,
        lambda e: validate(e, x_val, y_val),
        TrainOptions(**{"lr": 1e-2, "batch": 32, **options}),
    )
    return engine.state(), result


def test_resumed_run_ends_with_the_parameters_of_an_uninterrupted_one(engine, digits, tmp_path):
    """The last checkpoints (latest parameters, optimizer state, history) and the best
    parameters of a run interrupted after epoch 1 and resumed equal an uninterrupted
    run's."""
    start = engine.state()
    plot, whole, parts = tmp_path / "curve.png", tmp_path / "whole", tmp_path / "parts"
    best, _ = _run(engine, digits, start, epochs=3, plot=plot, checkpoint=whole)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _run(engine, digits, start, epochs=1, checkpoint=parts)
    assert [p.name for p in parts.iterdir()] == ["checkpoint.npz"]  # no temporaries left
    resumed_best, _ = _run(engine, digits, start, epochs=3, checkpoint=parts, resume=True)
    uninterrupted, resumed = checkpoint.load(whole), checkpoint.load(parts)
    assert resumed.epoch == uninterrupted.epoch == 3
    assert any((a != b).any() for a, b in zip(uninterrupted.parameters, start, strict=True))
    for group in ("parameters", "optimizer", "best_parameters"):
        for a, b in zip(getattr(uninterrupted, group), getattr(resumed, group), strict=True):
            np.testing.assert_array_equal(a, b)
    assert uninterrupted.meta["history"] == resumed.meta["history"]
    for a, b in zip(best, resumed_best, strict=True):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_after_patience_validations(engine, digits):
    """With a learning rate too small to change an integer, no validation improves."""
    start = engine.state()
    _, result = _run(engine, digits, start, epochs=50, lr=1e-12, validate_every=1, patience=2)
    assert result.note == "no improvement in 2 validations: stopped early"
    assert [entry["step"] for entry in result.history] == [1, 2]
    assert result.best_epoch == 0


def test_distill_of_a_quantized_model_without_teacher_is_one_line(digits, tmp_path, capsys):
    x = digits[2]
    model, data, output = tmp_path / "q.tvmq", tmp_path / "x.npz", tmp_path / "out.tvmq"
    save_model(digits[1], model)
    np.savez(data, x=x[:64])
    args = ["finetune", str(model), "--data", str(data), "-o", str(output), "--distill"]
    assert main(args) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--teacher FLOAT_MODEL" in lines[0]
    assert not output.exists()


def test_distillation_of_a_spatial_output_by_mean_squared_error(tmp_path):
    """A model whose output is a feature map (a 1-D CNN over a signal, with a floor
    computed at run time: max(x, peak - 1), as log-mel front ends clamp) distils by
    mean squared error over the whole output, which also picks the best epoch: the
    loss once needed (batch, classes), the floor's kernels (TVM's Clip with isnan
    guards) had no gradient, and the scalar loss's transpose broke TVM's gradient."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(41)
    weights = [
        numpy_helper.from_array(rng.normal(0, 0.4, (6, 2, 5)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.4, (4, 6, 3)).astype(np.float32), "w2"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], pads=[2, 2]),
        helper.make_node("ReduceMax", ["c"], ["peak"], keepdims=0),
        helper.make_node("Sub", ["peak", "one"], ["floor"]),
        helper.make_node("Clip", ["c", "floor"], ["floored"]),
        helper.make_node("Conv", ["floored", "w2"], ["y"], pads=[1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "spatial",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 24])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 24])],
        weights,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    import onnx

    onnx.save(proto, tmp_path / "spatial.onnx")
    teacher = load_model(tmp_path / "spatial.onnx")
    x = rng.normal(size=(64, 1, 2, 24)).astype(np.float32)
    student = quantize_model(teacher, [[s] for s in x[:16]])
    np.savez(tmp_path / "signals.npz", x=x)
    options = TrainOptions(epochs=3, lr=1e-2, batch=8)
    result = distill(student, open_data(tmp_path / "signals.npz"), options, teacher=teacher)
    assert result.metric == "minus the mean squared error to the teacher"
    assert result.best_loss < 0.5 * result.start_loss  # the floor quantizes coarsely
