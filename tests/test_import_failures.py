"""Models the importers have converters for but reject: every failing node is named,
with its reason, in one error (and by ``tvmq inspect``), nothing printed by TVM."""

from __future__ import annotations

import onnx
import pytest

from tests import onnx_models, tflite_models
from tvmq.errors import UnsupportedOperatorError
from tvmq.frontend import load_model


def test_every_onnx_node_the_importer_fails_on_is_named_with_its_reason(tmp_path, capfd):
    """TVM's importer has an LRN converter, which refuses 5-D inputs: both LRN nodes
    are reported (the first one stands in as zeros so the second is checked too),
    with nothing printed by TVM."""
    path = tmp_path / "lrn.onnx"
    onnx.save(onnx_models.failing_conversion(), path)
    with pytest.raises(UnsupportedOperatorError) as caught:
        load_model(path)
    assert [(node, op) for node, op, _ in caught.value.nodes] == [
        ("lrn_a", "LRN"),
        ("lrn_b", "LRN"),
    ]
    assert all("5D" in reason for _, _, reason in caught.value.nodes)
    out, err = capfd.readouterr()
    assert not out and "BlockBuilder" not in err


def test_every_tflite_op_the_importer_fails_on_is_named_with_its_reason(tmp_path, capfd):
    """TVM's MIRROR_PAD converter refuses SYMMETRIC mode (LiteRT runs it): both pads
    are named by their output tensors."""
    path = tflite_models.mirror_pad_symmetric(tmp_path / "pad.tflite")
    with pytest.raises(UnsupportedOperatorError) as caught:
        load_model(path)
    assert [(node, op) for node, op, _ in caught.value.nodes] == [
        ("p1", "MIRROR_PAD"),
        ("y", "MIRROR_PAD"),
    ]
    assert all("SYMMETRIC" in reason for _, _, reason in caught.value.nodes)
    out, err = capfd.readouterr()
    assert not out and "BlockBuilder" not in err


def test_tvm_builder_warnings_are_kept_from_stderr_and_the_rest_is_not(capfd):
    """A C++ pass that fails mid-function leaves TVM's BlockBuilder open; its warning
    on destruction would stand under the one-line error. Other stderr output stays."""
    import gc
    import os

    from tvm import relax

    from tvmq.frontend import BUILDER_WARNING, without_builder_warnings

    with without_builder_warnings():
        builder = relax.BlockBuilder()
        builder._begin_dataflow_block()
        del builder
        gc.collect()
        os.write(2, b"a native line\n")
    err = capfd.readouterr().err
    assert BUILDER_WARNING not in err
    assert "a native line" in err


def test_tensors_of_a_type_tvmq_lacks_are_named_by_the_ops_that_touch_them(tmp_path):
    """An inner uint64 tensor (the Signal library's filter bank has one) no longer
    stops the whole read: inspect lists the graph, and each op that touches the
    tensor is unsupported, naming it and its type."""
    from tests.tflite_graphs import GraphBuilder
    from tvmq.frontend import read_source

    g = GraphBuilder()
    x = g.tensor("x", (4,), "float32")
    wide = g.tensor("wide", (4,), "uint64")
    y = g.tensor("y", (4,), "float32")
    g.op("CAST", [x], [wide])
    g.op("CAST", [wide], [y])
    source = read_source(g.write(tmp_path / "uint64.tflite", [x], [y]))
    assert source.operators == {"CAST": 2}
    reason = "tensor 'wide' has type UINT64, unsupported"
    assert source.unsupported() == [("wide", "CAST", reason), ("y", "CAST", reason)]
