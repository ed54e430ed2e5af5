"""TFLite files that TFLite accepts and TVM's importer does not, mended at import:
per-tensor (or 1-D) tensors with a quantized dimension, sparse constants, float16
weights behind DEQUANTIZE, NCHW graphs (TRANSPOSE around an int8 convolution) and
reshapes whose shape is computed from a quantized tensor's SHAPE."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from tests.micro_reference import micro_run
from tests.test_aot import native
from tests.test_uint8 import reference_run
from tests.tflite_graphs import GraphBuilder
from tvmq.frontend import load_model
from tvmq.quantize.options import MODES
from tvmq.quantize.quantizer import quantize_model
from tvmq.quantize.realize import realize
from tvmq.quantize.scheme import QuantConfig

RNG = np.random.default_rng(11)
SAME = schema.Padding.SAME


def int8_inputs(model, rng) -> list[np.ndarray]:
    return [rng.integers(-128, 128, spec.shape).astype(np.int8) for spec in model.inputs]


def assert_int8_matches_micro(path, runs: int = 3) -> None:
    model = load_model(path)
    executable = model.build("host")
    rng = np.random.default_rng(0)
    for _ in range(runs):
        inputs = int8_inputs(model, rng)
        np.testing.assert_array_equal(executable(*inputs)[0], micro_run(path, inputs))
    text = realize(model.mod).script(show_meta=False)
    assert "R.dequantize(" not in text and 'dtype="float32"' not in text


def depthwise_bias_axis(path):
    """The converter's depthwise conv: per-channel weights on axis 3, and a bias whose
    quantized_dimension is 3 too, although it has one dimension."""
    g = GraphBuilder()
    channels = 6
    x = g.tensor("x", (1, 6, 6, channels), "int8", (0.05, -3))
    w_scale = RNG.uniform(0.005, 0.02, channels)
    weights = RNG.integers(-127, 128, (1, 3, 3, channels)).astype(np.int8)
    w = g.tensor("w", weights.shape, "int8", (w_scale, [0] * channels), weights, axis=3)
    bias = RNG.integers(-500, 500, channels).astype(np.int32)
    b = g.tensor("b", (channels,), "int32", (0.05 * w_scale, [0] * channels), bias, axis=3)
    y = g.tensor("y", (1, 6, 6, channels), "int8", (0.04, 5))
    g.op("DEPTHWISE_CONV_2D", [x, w, b], [y], padding=SAME, strideH=1, strideW=1, depthMultiplier=1)
    return g.write(path, [x], [y])


def fully_connected_bias_axis(path):
    """A per-tensor bias with quantized_dimension 1."""
    g = GraphBuilder()
    x = g.tensor("x", (2, 12), "int8", (0.03, 4))
    weights = RNG.integers(-127, 128, (5, 12)).astype(np.int8)
    w = g.tensor("w", weights.shape, "int8", (0.01, 0), weights)
    bias = RNG.integers(-500, 500, 5).astype(np.int32)
    b = g.tensor("b", (5,), "int32", (0.03 * 0.01, 0), bias, axis=1)
    y = g.tensor("y", (2, 5), "int8", (0.05, -10))
    g.op("FULLY_CONNECTED", [x, w, b], [y])
    return g.write(path, [x], [y])


def nchw_conv(path):
    """An int8 convolution between TRANSPOSEs: an NCHW graph converted as it was."""
    g = GraphBuilder()
    x = g.tensor("x", (1, 3, 6, 6), "int8", (0.05, -3))
    to_nhwc = g.tensor("to_nhwc", (4,), "int32", data=np.array([0, 2, 3, 1], np.int32))
    to_nchw = g.tensor("to_nchw", (4,), "int32", data=np.array([0, 3, 1, 2], np.int32))
    nhwc = g.tensor("nhwc", (1, 6, 6, 3), "int8", (0.05, -3))
    weights = RNG.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    w = g.tensor("w", weights.shape, "int8", (0.01, 0), weights)
    b = g.tensor("b", (4,), "int32", (0.05 * 0.01, 0), RNG.integers(-500, 500, 4))
    conv = g.tensor("conv", (1, 6, 6, 4), "int8", (0.1, 2))
    y = g.tensor("y", (1, 4, 6, 6), "int8", (0.1, 2))
    g.op("TRANSPOSE", [x, to_nhwc], [nhwc])
    g.op("CONV_2D", [nhwc, w, b], [conv], padding=SAME, strideH=1, strideW=1)
    g.op("TRANSPOSE", [conv, to_nchw], [y])
    return g.write(path, [x], [y])


def computed_reshape(path):
    """Keras's Reshape as the converter writes it: the target shape is computed from
    the SHAPE of an int8 tensor (its batch size, sliced out) and PACKed with the rest."""
    g = GraphBuilder()
    x = g.tensor("x", (2, 12), "int8", (0.03, 4))
    weights = RNG.integers(-127, 128, (12, 12)).astype(np.int8)
    w = g.tensor("w", weights.shape, "int8", (0.01, 0), weights)
    fc = g.tensor("fc", (2, 12), "int8", (0.05, -10))
    g.op("FULLY_CONNECTED", [x, w, -1], [fc])
    shape = g.tensor("shape", (2,), "int32")
    g.op("SHAPE", [fc], [shape], outType=schema.TensorType.INT32)
    bounds = (("begin", 0), ("end", 1), ("step", 1))
    begin, end, step = (g.tensor(n, (1,), "int32", data=[v]) for n, v in bounds)
    batch = g.tensor("batch", (), "int32")
    g.op("STRIDED_SLICE", [shape, begin, end, step], [batch], shrinkAxisMask=1)
    rows, columns = (g.tensor(n, (), "int32", data=v) for n, v in (("rows", 4), ("cols", 3)))
    target = g.tensor("target", (3,), "int32")
    g.op("PACK", [batch, rows, columns], [target], valuesCount=3, axis=0)
    y = g.tensor("y", (2, 4, 3), "int8", (0.05, -10))
    g.op("RESHAPE", [fc, target], [y])
    return g.write(path, [x], [y])


@pytest.mark.parametrize(
    "build",
    [depthwise_bias_axis, fully_connected_bias_axis, nchw_conv, computed_reshape],
    ids=["depthwise-bias-axis", "fully-connected-bias-axis", "nchw-conv", "computed-reshape"],
)
def test_int8_quirks_match_tflite_micro(tmp_path, build):
    assert_int8_matches_micro(build(tmp_path / f"{build.__name__}.tflite"))


def _sparse(g: GraphBuilder, name: str, dense: np.ndarray, block: int = 1) -> int:
    """A float32 constant stored in TFLite's sparse format: rows dense, columns CSR
    (in blocks of `block` columns when `block` > 1), as the converter writes it."""
    rows, columns = dense.shape
    blocks = dense.reshape(rows, columns // block, block)
    kept = np.abs(blocks).sum(axis=2) != 0
    segments = np.concatenate([[0], np.cumsum(kept.sum(axis=1))]).astype(np.int32)
    indices = np.nonzero(kept)[1].astype(np.int32)
    values = blocks[kept].ravel().astype(np.float32)
    index = g.tensor(name, dense.shape, "float32", data=values)
    sparsity = schema.SparsityParametersT()
    row = schema.DimensionMetadataT()
    row.format, row.denseSize = schema.DimensionType.DENSE, rows
    column = schema.DimensionMetadataT()
    column.format = schema.DimensionType.SPARSE_CSR
    column.arraySegmentsType = column.arrayIndicesType = schema.SparseIndexVector.Int32Vector
    column.arraySegments, column.arrayIndices = schema.Int32VectorT(), schema.Int32VectorT()
    column.arraySegments.values, column.arrayIndices.values = list(segments), list(indices)
    sparsity.dimMetadata = [row, column]
    sparsity.traversalOrder = [0, 1]
    if block > 1:
        inner = schema.DimensionMetadataT()
        inner.format, inner.denseSize = schema.DimensionType.DENSE, block
        sparsity.dimMetadata.append(inner)
        sparsity.traversalOrder, sparsity.blockMap = [0, 1, 2], [1]
    g.tensors[index].sparsity = sparsity
    return index


@pytest.mark.parametrize("block", [1, 4], ids=["csr", "csr-blocks"])
def test_sparse_weights_are_densified(tmp_path, block):
    dense = RNG.normal(size=(6, 16)).astype(np.float32)
    dense[RNG.random((6, 16 // block)).repeat(block, axis=1) < 0.6] = 0.0
    g = GraphBuilder()
    x = g.tensor("x", (2, 16), "float32")
    sparse = _sparse(g, "w_sparse", dense, block)
    w = g.tensor("w", dense.shape, "float32")
    b = g.tensor("b", (6,), "float32", data=RNG.normal(size=6).astype(np.float32))
    y = g.tensor("y", (2, 6), "float32")
    g.op("DENSIFY", [sparse], [w])
    g.op("FULLY_CONNECTED", [x, w, b], [y])
    path = g.write(tmp_path / "sparse.tflite", [x], [y])
    model = load_model(path)
    np.testing.assert_array_equal(model.params["w_sparse"], dense)
    inputs = [RNG.normal(size=(2, 16)).astype(np.float32)]
    np.testing.assert_allclose(
        model.build("host")(*inputs)[0], reference_run(path, inputs)[0], rtol=1e-5, atol=1e-5
    )


def test_float16_weights_fold_and_quantize(tmp_path):
    """A float model whose conv weights and bias are float16 constants behind
    DEQUANTIZE: imported as float32 constants, run like TFLite, and quantized in
    every mode into a graph that builds."""
    g = GraphBuilder()
    x = g.tensor("x", (1, 6, 6, 3), "float32")
    weights = RNG.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float16)
    w16 = g.tensor("w16", weights.shape, "float16", data=weights)
    b16 = g.tensor("b16", (4,), "float16", data=RNG.normal(size=4).astype(np.float16))
    w = g.tensor("w", weights.shape, "float32")
    b = g.tensor("b", (4,), "float32")
    y = g.tensor("y", (1, 6, 6, 4), "float32")
    g.op("DEQUANTIZE", [w16], [w])
    g.op("DEQUANTIZE", [b16], [b])
    g.op(
        "CONV_2D",
        [x, w, b],
        [y],
        padding=SAME,
        strideH=1,
        strideW=1,
        fusedActivationFunction=schema.ActivationFunctionType.RELU,
    )
    path = g.write(tmp_path / "fp16.tflite", [x], [y])
    model = load_model(path)
    assert "float16" not in model.mod.script(show_meta=False)
    samples = [[RNG.normal(size=(1, 6, 6, 3)).astype(np.float32)] for _ in range(4)]
    expected = reference_run(path, samples[0])[0]
    np.testing.assert_allclose(model.build("host")(*samples[0])[0], expected, rtol=1e-5, atol=1e-5)
    for mode in MODES:
        quantized = quantize_model(model, samples, QuantConfig(mode=mode))
        result = quantized.build("host")(*samples[0])[0]
        assert np.abs(result - expected).max() < 0.1 * np.abs(expected).max()


@pytest.mark.parametrize(("height", "width"), [(1, 16), (2, 8)])  # tvmq's row FFT; TVM's
def test_fft_with_placeholder_shapes_runs_on_the_real_ones(tmp_path, height, width):
    """A magnitude spectrum as Keras writes it with a dynamic batch (word-activation-
    recognition's in-graph STFT): RFFT2D, SQUEEZE of the complex result with a
    negative axis, COMPLEX_ABS, SLICE to the end of the frames; the file declares
    placeholder shapes for the complex tensors and after them (TVM read them and
    refused the RFFT2D). tvmq runs it on the shapes the graph computes and agrees
    with LiteRT and numpy."""
    frames, bins = 3, 5
    g = GraphBuilder()
    x = g.tensor("x", (1, frames, height, width), "float32")
    lengths = g.tensor("fft_length", (2,), "int32", data=np.array([height, width], np.int32))
    spectrum = g.tensor("spectrum", (1, 1, height, width), "complex64")  # placeholder
    if height == 1:
        squeezed = g.tensor("squeezed", (1, 1, width), "complex64")
        g.op("RFFT2D", [x, lengths], [spectrum])
        g.op("SQUEEZE", [spectrum], [squeezed], squeezeDims=[-2])
    else:
        squeezed = spectrum
        g.op("RFFT2D", [x, lengths], [spectrum])
    rank = 3 if height == 1 else 4
    magnitude = g.tensor("magnitude", (1,) * (rank - 1) + (width,), "float32")
    begin = g.tensor("begin", (rank,), "int32", data=np.zeros(rank, np.int32))
    size = g.tensor("size", (rank,), "int32", data=np.array([-1] * (rank - 1) + [bins], np.int32))
    shape = (1, frames, bins) if height == 1 else (1, frames, height, bins)
    y = g.tensor("y", shape, "float32")
    g.op("COMPLEX_ABS", [squeezed], [magnitude])
    g.op("SLICE", [magnitude, begin, size], [y])
    path = g.write(tmp_path / "spectrum.tflite", [x], [y])
    inputs = [RNG.normal(size=(1, frames, height, width)).astype(np.float32)]
    model = load_model(path)
    got = model.build("host")(*inputs)[0]
    np.testing.assert_allclose(got, reference_run(path, inputs)[0], rtol=1e-5, atol=1e-5)
    exact = np.abs(np.fft.rfft2(inputs[0].astype(np.float64)))[..., :bins].reshape(shape)
    np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-5)
    if height == 1:  # tvmq's kernel in the C of the Cortex-M path too
        np.testing.assert_array_equal(native(model, tmp_path)[1](*inputs)[0], got)
