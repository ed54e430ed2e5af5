"""TFLite sparse tensors (the SparsityParameters of schema.fbs) made dense at import.

A sparse constant stores only the values its DimensionMetadata reaches: each level
of the traversal order is DENSE (every index up to dense_size) or SPARSE_CSR
(array_segments and array_indices, as in compressed sparse rows), and trailing
levels may be blocks of original dimensions (block_map). :func:`densify` walks the
levels as TFLite's FormatConverter::SparseToDense does
(tensorflow/lite/kernels/internal/utils/sparsity_format_converter.cc).
"""

from __future__ import annotations

import numpy as np
import tflite
from tflite.DimensionType import DimensionType
from tflite.SparseIndexVector import SparseIndexVector

from tvmq.errors import TvmqError

VECTORS = {
    SparseIndexVector.Int32Vector: tflite.Int32Vector,
    SparseIndexVector.Uint16Vector: tflite.Uint16Vector,
    SparseIndexVector.Uint8Vector: tflite.Uint8Vector,
}


def _index_vector(table, kind: int) -> np.ndarray:
    if table is None or kind not in VECTORS:
        raise TvmqError(f"sparse index vector of unknown type {kind}")
    vector = VECTORS[kind]()
    vector.Init(table.Bytes, table.Pos)
    return vector.ValuesAsNumpy().astype(np.int64) if vector.ValuesLength() else np.zeros(0)


def densify(tensor, values: np.ndarray) -> np.ndarray:
    """The dense array of sparse `tensor` (a tflite.Tensor) whose stored values are
    `values` (1-D, in traversal order)."""
    sparsity = tensor.Sparsity()
    name = tensor.Name().decode(errors="replace")
    shape = [int(d) for d in tensor.ShapeAsNumpy()]
    rank = len(shape)
    order = [int(i) for i in sparsity.TraversalOrderAsNumpy()]
    block_map = [int(i) for i in sparsity.BlockMapAsNumpy()] if sparsity.BlockMapLength() else []
    levels = []
    for level in range(sparsity.DimMetadataLength()):
        meta = sparsity.DimMetadata(level)
        if meta.Format() == DimensionType.DENSE:
            levels.append((int(meta.DenseSize()), None, None))
        else:
            segments = _index_vector(meta.ArraySegments(), meta.ArraySegmentsType())
            indices = _index_vector(meta.ArrayIndices(), meta.ArrayIndicesType())
            levels.append((0, segments, indices))
    if len(order) != len(levels) or len(order) != rank + len(block_map):
        raise TvmqError(f"tensor '{name}': sparsity metadata does not match its {rank} dims")
    block_sizes = [levels[order[rank + b]][0] for b in range(len(block_map))]
    dense = np.zeros(int(np.prod(shape)), values.dtype)
    position = 0
    index = [0] * len(levels)

    def store() -> None:
        nonlocal position
        original = [0] * rank
        for level in range(rank):
            original[order[level]] = index[level]
        for level in range(rank, len(levels)):
            block = order[level] - rank
            dim = block_map[block]
            original[dim] = original[dim] * block_sizes[block] + index[level]
        if position >= values.size or any(
            not 0 <= i < s for i, s in zip(original, shape, strict=True)
        ):
            raise TvmqError(f"tensor '{name}': sparse indices out of range")
        dense[np.ravel_multi_index(original, shape)] = values[position]
        position += 1

    def populate(level: int, previous: int) -> None:
        if level == len(levels):
            store()
            return
        size, segments, indices = levels[level]
        if segments is None:
            for i in range(size):
                index[level] = i
                populate(level + 1, previous * size + i)
        elif previous + 1 < segments.size:
            for i in range(int(segments[previous]), int(segments[previous + 1])):
                if i < indices.size:
                    index[level] = int(indices[i])
                    populate(level + 1, i)

    populate(0, 0)
    return dense.reshape(shape)
