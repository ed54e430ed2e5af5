"""ONNX LSTM and GRU nodes agree with onnxruntime after import and host build."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.test_onnx_import import ort_run
from tvmq.errors import UnsupportedOperatorError
from tvmq.frontend import load_model

GRAPH_INPUTS = ("X", "initial_h", "initial_c")


def rnn_model(
    kind: str,
    rng: np.random.Generator,
    steps: int,
    batch: int,
    size: int,
    hidden: int,
    direction: str = "forward",
    layout: int = 0,
    optional: tuple[str, ...] = ("B",),
    attributes: dict | None = None,
    lengths: list[int] | None = None,
) -> onnx.ModelProto:
    """One LSTM or GRU node: W and R (and B, P, sequence_lens) as initializers; X and
    the initial states among `optional` as graph inputs; every output."""
    directions = 2 if direction == "bidirectional" else 1
    gates = {"LSTM": 4, "GRU": 3}[kind]
    weights = {
        "W": rng.uniform(-0.5, 0.5, (directions, gates * hidden, size)),
        "R": rng.uniform(-0.5, 0.5, (directions, gates * hidden, hidden)),
        "B": rng.uniform(-0.5, 0.5, (directions, 2 * gates * hidden)),
        "P": rng.uniform(-0.5, 0.5, (directions, 3 * hidden)),
    }
    initializers = [
        numpy_helper.from_array(weights[name].astype(np.float32), name)
        for name in ("W", "R", "B", "P")
        if name in ("W", "R") or name in optional
    ]
    if lengths is not None:
        initializers.append(numpy_helper.from_array(np.array(lengths, np.int32), "lengths"))

    def batched(*dims: int) -> list[int]:  # layout 1 swaps the first two axes
        return [dims[1], dims[0], *dims[2:]] if layout == 1 else list(dims)

    state = batched(directions, batch, hidden)
    shapes = {"X": batched(steps, batch, size), "initial_h": state, "initial_c": state}
    inputs = [name for name in GRAPH_INPUTS if name == "X" or name in optional]
    order = ["X", "W", "R", "B", "lengths" if lengths is not None else "", "initial_h"]
    order += ["initial_c", "P"] if kind == "LSTM" else []
    present = {*inputs, "W", "R", *optional, "lengths"}
    node_inputs = [name if name in present else "" for name in order]
    while node_inputs[-1] == "":
        node_inputs.pop()
    names = ["Y", "Y_h", "Y_c"] if kind == "LSTM" else ["Y", "Y_h"]
    node = helper.make_node(
        kind,
        node_inputs,
        names,
        hidden_size=hidden,
        direction=direction,
        layout=layout,
        **(attributes or {}),
    )
    outputs = {
        "Y": [batch, steps, directions, hidden] if layout else [steps, directions, batch, hidden],
        **dict.fromkeys(names[1:], state),
    }
    graph = helper.make_graph(
        [node],
        kind.lower(),
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shapes[n]) for n in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def lstm_model(*args, **kwargs) -> onnx.ModelProto:
    return rnn_model("LSTM", *args, **kwargs)


def agrees_with_onnxruntime(make, layout: int, tmp_path, rng) -> None:
    """The model `make(layout)` builds against onnxruntime (Y, then the final states).
    onnxruntime has no layout
    1: that model's reference is the layout-0 model's on transposed inputs, its
    outputs transposed back."""
    model, reference = make(layout), make(0)
    path = tmp_path / "rnn.onnx"
    onnx.save(model, path)
    executable = load_model(path).build("host")
    feeds = {
        v.name: rng.standard_normal([d.dim_value for d in v.type.tensor_type.shape.dim]).astype(
            np.float32
        )
        for v in model.graph.input
    }
    swap = (lambda a: np.swapaxes(a, 0, 1)) if layout == 1 else (lambda a: a)
    y, *states = ort_run(reference, {name: swap(value) for name, value in feeds.items()})
    want = [np.transpose(y, [2, 0, 1, 3]) if layout == 1 else y, *map(swap, states)]
    got = executable(*feeds.values())
    names = [o.name for o in model.graph.output]
    for name, g, w in zip(names, got, want, strict=True):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize(
    ("direction", "layout", "optional", "attributes", "lengths"),
    [
        ("forward", 0, ("B",), {}, None),
        ("reverse", 1, ("B", "initial_h", "initial_c"), {}, [5, 5]),
        ("bidirectional", 0, ("B", "initial_h", "initial_c", "P"), {"clip": 0.6}, None),
        ("bidirectional", 1, (), {"input_forget": 1}, None),
        (
            "forward",
            0,
            ("B", "initial_c"),
            {
                "activations": ["HardSigmoid", "Relu", "LeakyRelu"],
                "activation_alpha": [0.3, 0.05],
                "activation_beta": [0.4],
            },
            None,
        ),
    ],
    ids=[
        "forward",
        "reverse-layout1-lengths",
        "bidirectional-peephole-clip",
        "bidirectional-layout1-coupled",
        "activations",
    ],
)
def test_lstm_matches_onnxruntime(direction, layout, optional, attributes, lengths, tmp_path):
    def make(at_layout):
        rng = np.random.default_rng(len(optional))
        return lstm_model(rng, 5, 2, 3, 4, direction, at_layout, optional, attributes, lengths)

    agrees_with_onnxruntime(make, layout, tmp_path, np.random.default_rng(1))


def test_partial_sequence_lengths_are_refused_by_node(tmp_path):
    model = lstm_model(np.random.default_rng(0), 4, 2, 3, 4, lengths=[4, 2])
    model.graph.node[0].name = "encoder_lstm"
    path = tmp_path / "lstm.onnx"
    onnx.save(model, path)
    with pytest.raises(UnsupportedOperatorError, match="encoder_lstm \\(LSTM\\): sequence_lens"):
        load_model(path)


def test_lstm_after_convolution_matches_onnxruntime(tmp_path):
    """A CRNN's shape: conv features, squeezed and transposed into a bidirectional
    LSTM. The convolution makes the importer convert layouts around the LSTM too."""
    rng = np.random.default_rng(3)
    hidden, width = 4, 6
    initializers = [
        numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
        for name, shape in [
            ("conv_w", (8, 3, 3, 3)),
            ("W", (2, 4 * hidden, 8)),
            ("R", (2, 4 * hidden, hidden)),
        ]
    ]
    initializers.append(numpy_helper.from_array(np.array([2], np.int64), "height_axis"))
    nodes = [
        helper.make_node("Conv", ["x", "conv_w"], ["features"], pads=[1, 1, 1, 1]),
        helper.make_node("Squeeze", ["features", "height_axis"], ["rows"]),
        helper.make_node("Transpose", ["rows"], ["sequence"], perm=[2, 0, 1]),
        helper.make_node(
            "LSTM",
            ["sequence", "W", "R"],
            ["Y", "", ""],
            hidden_size=hidden,
            direction="bidirectional",
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "crnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 1, width])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [width, 2, 1, hidden])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    path = tmp_path / "crnn.onnx"
    onnx.save(model, path)
    x = rng.standard_normal((1, 3, 1, width)).astype(np.float32)
    (got,) = load_model(path).build("host")(x)
    np.testing.assert_allclose(got, ort_run(model, {"x": x})[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("direction", "layout", "optional", "attributes"),
    [
        ("forward", 0, ("B",), {}),
        ("forward", 0, ("B", "initial_h"), {"linear_before_reset": 1}),
        ("reverse", 1, ("initial_h",), {"linear_before_reset": 1}),
        ("bidirectional", 0, ("B", "initial_h"), {"clip": 0.7}),
        ("bidirectional", 1, ("B",), {"linear_before_reset": 1}),
        (
            "forward",
            0,
            ("B", "initial_h"),
            {"activations": ["HardSigmoid", "LeakyRelu"], "activation_alpha": [0.3, 0.05]},
        ),
    ],
    ids=[
        "forward",
        "linear-before-reset",
        "reverse-layout1-no-bias",
        "bidirectional-clip",
        "bidirectional-layout1-linear-before-reset",
        "activations",
    ],
)
def test_gru_matches_onnxruntime(direction, layout, optional, attributes, tmp_path):
    """GRU as onnxruntime computes it (DeepFilterNet's encoder has one, with
    linear_before_reset): update, reset and hidden gates, both reset placements."""

    def make(at_layout):
        rng = np.random.default_rng(len(optional) + len(attributes))
        return rnn_model("GRU", rng, 5, 2, 3, 4, direction, at_layout, optional, attributes)

    agrees_with_onnxruntime(make, layout, tmp_path, np.random.default_rng(2))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    ("kind", "dims_seed", "optional"),
    [("LSTM", 100, ("B", "P")), ("GRU", 200, ("B", "initial_h"))],
    ids=["lstm", "gru"],
)
def test_random_shapes_match_onnxruntime(kind, dims_seed, optional, seed, tmp_path):
    dims = np.random.default_rng(dims_seed + seed).integers(1, 7, 5)
    steps, batch, size, hidden, layout = (int(v) for v in dims)
    direction = ("forward", "reverse", "bidirectional")[seed]
    attributes = {"linear_before_reset": seed % 2} if kind == "GRU" else None

    def make(at_layout):
        rng = np.random.default_rng(seed)
        return rnn_model(
            kind, rng, steps, batch, size, hidden, direction, at_layout, optional, attributes
        )

    agrees_with_onnxruntime(make, layout % 2, tmp_path, np.random.default_rng(seed))
