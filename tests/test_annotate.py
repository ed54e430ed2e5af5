"""Quantization annotation of graphs whose weights are computed from constants."""

from __future__ import annotations

import numpy as np
import pytest
from tvm import relax

from tvmq.quantize.annotate import annotate


def test_sum_of_weight_slices_is_a_constant_not_an_activation():
    """(x + x) + (w[0] + w[1]): the second add works on slices of one constant (as
    an importer's bias halves are) and is no quantized op (it was, and annotation
    failed looking for the constant among the graph's tensors); the first one is."""
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 8), "float32"))
    weights = relax.const(np.arange(16, dtype=np.float32).reshape(2, 8))
    with builder.function("main", [x]):
        with builder.dataflow():
            halves = [
                builder.emit(relax.op.strided_slice(weights, [0], [i], [i + 1])) for i in (0, 1)
            ]
            bias = builder.emit(relax.op.add(*halves))
            twice = builder.emit(relax.op.add(x, x))
            out = builder.emit_output(relax.op.add(twice, bias))
        builder.emit_func_output(out)
    annotation = annotate(builder.get())
    assert [(op.kind, op.name) for op in annotation.ops] == [("add", twice.name)]


@pytest.mark.parametrize("reshaped", [False, True], ids=["constant", "reshaped-constant"])
def test_concat_with_a_constant_stays_float_and_the_graph_quantizes(reshaped):
    """concat(x, constant) (an exporter's empty or padding tensor beside an activation,
    or a table reshaped first): annotation looked for the constant among the observed
    tensors and failed with a KeyError; the concat now stays float, named with its
    reason, and the ops around it are quantized."""
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 6, 1), "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            doubled = builder.emit(relax.op.add(x, x))
            constant = relax.const(np.zeros((1, 0, 1) if not reshaped else (2,), np.float32))
            if reshaped:
                constant = builder.emit(relax.op.reshape(constant, (1, 2, 1)))
            joined = builder.emit(relax.op.concat([doubled, constant], axis=1))
            out = builder.emit_output(relax.op.add(joined, joined))
        builder.emit_func_output(out)
    annotation = annotate(builder.get())
    assert (joined.name, "concat", "an input is a constant") in annotation.skipped
    assert [op.kind for op in annotation.ops] == ["add", "add"]


def test_a_deep_graph_annotates_without_recursing_through_it():
    """Whether an input is a constant is decided once per binding, in order: asked
    recursively it went back op by op to the graph's input (RecursionError on
    PP-PicoDet's layout detector)."""
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 4), "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            value = x
            for _ in range(1500):
                value = builder.emit(relax.op.nn.relu(value))
            out = builder.emit_output(relax.op.add(value, value))
        builder.emit_func_output(out)
    annotation = annotate(builder.get())
    assert [op.kind for op in annotation.ops] == ["add"]
