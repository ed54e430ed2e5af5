"""Every shared MLPerf Tiny model imports, builds for the host and matches its reference.

Float models are compared with LiteRT; int8 models with TFLite Micro's reference
interpreter, the oracle for int8 results, and must be identical to it.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.shared_assets import MLPERF_MODELS, shared_data, shared_model
from tvmq.data import open_data
from tvmq.datasets import ad_windows, as_model_input
from tvmq.frontend import load_model

SAMPLES = 12


def model_inputs(model, dataset: str) -> list[np.ndarray]:
    spec = model.inputs[0]
    values = []
    data = open_data(shared_data(dataset))
    for value, _ in data.values(range(SAMPLES)):
        value = ad_windows(value)[5] if data.windows else value
        values.append(as_model_input(value, spec))
    return values


def litert_outputs(path, inputs, reference_kernels: bool = False):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.AUTO
    interpreter = Interpreter(model_path=str(path), experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    (given,), (taken,) = interpreter.get_input_details(), interpreter.get_output_details()
    outputs = []
    for x in inputs:
        interpreter.set_tensor(given["index"], x)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(taken["index"]).copy())
    return outputs


def micro_outputs(path, inputs):
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(str(path))
    outputs = []
    for x in inputs:
        interpreter.set_input(x, 0)
        interpreter.invoke()
        outputs.append(interpreter.get_output(0).copy())
    return outputs


@pytest.fixture(scope="module", params=sorted(MLPERF_MODELS))
def imported(request):
    path = shared_model(request.param)
    model = load_model(path)
    inputs = model_inputs(model, MLPERF_MODELS[request.param])
    executable = model.build("host")
    outputs = [executable(x)[0] for x in inputs]
    return request.param, path, model, inputs, outputs


def test_outputs_match_reference_interpreter(imported):
    name, path, model, inputs, outputs = imported
    spec = model.outputs[0]
    assert all(o.shape == spec.shape and o.dtype == spec.dtype for o in outputs)
    if name.endswith("_int8"):
        expected = micro_outputs(path, inputs)
        for got, want in zip(outputs, expected, strict=True):
            np.testing.assert_array_equal(got, want)
    elif name.endswith("_float"):
        expected = litert_outputs(path, inputs)
        for got, want in zip(outputs, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    else:
        # Hybrid: tvmq quantizes the activations of hybrid convolutions per batch as
        # TFLite's own kernels do (XNNPACK, LiteRT's default, quantizes otherwise).
        expected = litert_outputs(path, inputs, reference_kernels=True)
        for got, want in zip(outputs, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in sorted(MLPERF_MODELS) if n.endswith("_int8")])
def test_int8_models_are_integer_only(name):
    """Imported int8 graphs run integer arithmetic only, softmax included."""
    from tvmq.quantize.realize import realize

    model = load_model(shared_model(name))
    text = realize(model.mod).script(show_meta=False)
    assert "R.dequantize(" not in text
    assert "R.nn.softmax" not in text
    assert 'dtype="float32"' not in text
    assert "R.nn.conv2d" not in text or 'out_dtype="int32"' in text
