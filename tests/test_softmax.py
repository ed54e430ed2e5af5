"""Integer softmax: bit-identical with TFLite Micro's int8 kernel."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax

from tests import softmax_reference
from tests.micro_reference import micro_run
from tests.tflite_models import softmax_int8
from tvmq.frontend import load_model
from tvmq.quantize.fixed_point import IntegerBuilder
from tvmq.quantize.realize import realize
from tvmq.quantize.softmax import IntegerSoftmax, softmax_params

RNG = np.random.default_rng(5)


def rows(depth: int, count: int) -> np.ndarray:
    """Random rows plus the hard ones: all equal, one peak, two tied peaks, extremes."""
    random = RNG.integers(-128, 128, (count, depth))
    narrow = RNG.integers(60, 70, (count, depth))
    special = np.full((4, depth), -128)
    special[1] = 127
    special[2, depth // 2] = 127
    special[3, :2] = 127
    return np.concatenate([random, narrow, special]).astype(np.int8)


@pytest.mark.parametrize(
    ("scale", "depth"),
    # Small scales keep many classes alive: 400 near-equal ones take the final shift
    # to 31, its largest (from 512 on TFLite Micro aborts on gemmlowp's assert).
    # 5.0 clamps TFLite's input multiplier.
    [(0.0039, 400), (0.02, 10), (0.1, 10), (0.171853, 10), (0.6, 2), (5.0, 10)],
)
def test_one_op_softmax_matches_tflite_micro(tmp_path, scale, depth):
    values = rows(depth, 6)
    path = softmax_int8(tmp_path / "softmax.tflite", values.shape, scale, 7)
    model = load_model(path)
    assert "R.nn.softmax" not in realize(model.mod).script(show_meta=False)
    (got,) = model.build("host")(values)
    np.testing.assert_array_equal(got, micro_run(path, [values]))


def run_relax_softmax(values: np.ndarray, scale: float) -> np.ndarray:
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(values.shape, "int8"))
    with builder.function("main", [x]):
        with builder.dataflow():
            result = IntegerSoftmax(IntegerBuilder(builder))(x, softmax_params(scale))
            output = builder.emit_output(result)
        builder.emit_func_output(output)
    executable = tvm.compile(builder.get(), tvm.target.Target({"kind": "llvm"}))
    return relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(values)).numpy()


def test_relax_softmax_equals_line_by_line_transcription():
    scales = np.float32(np.exp(RNG.uniform(np.log(1e-3), np.log(20.0), 4)))
    for scale in scales:
        values = rows(16, 20).reshape(2, -1, 16)
        expected = softmax_reference.softmax_int8(values, float(scale))
        np.testing.assert_array_equal(run_relax_softmax(values, float(scale)), expected)


def test_scale_too_small_for_tflite_stays_float():
    assert softmax_params(2.0**-40) is None
