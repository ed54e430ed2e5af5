"""Input shapes fixed by the user: ONNX free dims, TFLite dims free in the signature."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest

from tests import onnx_models, tflite_models
from tests.test_onnx_import import ort_run
from tvmq.errors import TvmqError
from tvmq.frontend import load_model, read_source


def test_free_dims_fixed_by_shapes_match_onnxruntime(tmp_path):
    """Free batch, height and width run at the size given, not at 1; the weights held
    in Constant nodes are parameters, imported as constants."""
    proto = onnx_models.free_dims_conv()
    path = tmp_path / "free.onnx"
    onnx.save(proto, path)
    source = read_source(path)
    assert source.inputs[0].shape == ("N", 3, "H", "W")
    assert sorted(source.params) == ["b1", "b2", "w1", "w2"]
    model = load_model(path, shapes={"x": (2, 3, 40, 56)})
    assert model.inputs[0].shape == (2, 3, 40, 56)
    assert model.outputs[0].shape == (2, 6, 10, 14)
    executable = model.build("host")
    x = np.random.default_rng(2).standard_normal((2, 3, 40, 56)).astype(np.float32)
    (got,) = executable(x)
    (want,) = ort_run(proto, {"x": x})
    assert got.shape == want.shape == (2, 6, 10, 14)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_free_dims_without_shapes_are_refused_naming_them(tmp_path):
    path = tmp_path / "free.onnx"
    onnx.save(onnx_models.free_dims_conv(), path)
    with pytest.raises(TvmqError, match=r"'x' float32\[N, 3, H, W\] \(free: N, H, W\)"):
        load_model(path)


def test_shapes_that_do_not_fit_the_file_are_refused(tmp_path):
    path = tmp_path / "free.onnx"
    onnx.save(onnx_models.free_dims_conv(), path)
    cases = {
        "shape given for input 'images', not in the model ('x')": {"images": (1, 3, 8, 8)},
        "shape x=1,8,8 has rank 3, input 'x' is float32[N, 3, H, W]": {"x": (1, 8, 8)},
        "x=1,4,8,8 contradicts input 'x' float32[N, 3, H, W] (axis 1 is fixed to 3)": {
            "x": (1, 4, 8, 8)
        },
        "shape x=1,3,0,8: dims must be >= 1": {"x": (1, 3, 0, 8)},
    }
    for message, shapes in cases.items():
        with pytest.raises(TvmqError, match=re.escape(message)):
            read_source(path, shapes)
    two = onnx_models.graph_model(
        [onnx.helper.make_node("Add", ["a", "b"], ["y"])], {"a": ["N", 4], "b": ["N", 4]}, ["N", 4]
    )
    onnx.save(two, path)
    with pytest.raises(TvmqError, match="dim N is 2 in input 'a' but 3 in input 'b'"):
        read_source(path, {"a": (2, 4), "b": (3, 4)})


def test_tflite_batch_free_in_the_signature_takes_a_shape(tmp_path):
    """A TFLite batch marked free (-1 in shape_signature) runs at 1 by default, as
    TFLite does, and at the batch given, as LiteRT does after resize_tensor_input."""
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(4)
    path = tflite_models.fully_connected_float_free_batch(
        tmp_path / "fc.tflite", rng.standard_normal((6, 10)), rng.standard_normal(6)
    )
    assert load_model(path).inputs[0].shape == (1, 10)
    model = load_model(path, shapes={"x": (5, 10)})
    assert (model.inputs[0].shape, model.outputs[0].shape) == ((5, 10), (5, 6))
    x = rng.standard_normal((5, 10)).astype(np.float32)
    (got,) = model.build("host")(x)
    interpreter = Interpreter(model_path=str(path))
    interpreter.resize_tensor_input(0, [5, 10])
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    want = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(TvmqError, match=re.escape("(axis 1 is fixed to 10)")):
        load_model(path, shapes={"x": (5, 11)})


def test_shape_options_are_parsed_or_named_in_one_line():
    from tvmq.frontend.shapes import parse_shape_options

    assert parse_shape_options(["images=1,3,640,640", "a=b=2"]) == {
        "images": (1, 3, 640, 640),
        "a=b": (2,),
    }
    for bad in (["x"], ["=1,2"], ["x="], ["x=1,,2"], ["x=1.5"], ["x=1", "x=2"]):
        with pytest.raises(TvmqError, match=re.escape(f"--shape {bad[-1]}:")):
            parse_shape_options(bad)
