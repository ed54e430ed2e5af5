"""The real FFT of TFLite's RFFT2D over rows (a height of 1: what Keras's in-graph
STFT becomes), as one TIR kernel with loops.

TVM's own RFFT2D kernel unrolls every butterfly into its source: a 2048-point
transform is 11,264 butterflies of TVMScript, 50 s to parse before any build.
Here an iterative radix-2 FFT runs in float64 (TFLite's kernel calls Ooura's FFT
in double precision) over a bit-reversed copy of each row, with the bit-reversal
order and the twiddle factors as tables the kernel reads; the first width / 2 + 1
bins are written as (real, imaginary) pairs, TVM's layout of complex64.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tvm import relax, tirx
from tvm.script import tirx as T


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def row_fft(rows: relax.Expr, add_func: Callable[[tirx.PrimFunc, str], relax.GlobalVar]):
    """rows [..., width] (float32, width a power of two) -> [..., width // 2 + 1, 2];
    `add_func` puts the kernel into the module being built."""
    shape = [int(d) for d in rows.ty.shape]
    width = shape[-1]
    count = int(np.prod(shape[:-1], dtype=np.int64))
    flat = relax.op.reshape(rows, [count, width])
    stages = width.bit_length() - 1
    order = np.array([int(f"{n:0{stages}b}"[::-1] or "0", 2) for n in range(width)], np.int32)
    angles = -2.0 * np.pi * np.arange(max(width // 2, 1)) / width
    function = add_func(_row_fft(count, width, stages), f"row_fft_{width}")
    spectrum = relax.call_tir(
        function,
        [
            flat,
            relax.const(order),
            relax.const(np.cos(angles), "float64"),
            relax.const(np.sin(angles), "float64"),
        ],
        relax.TensorType([count, width // 2 + 1, 2], "float32"),
    )
    return relax.op.reshape(spectrum, [*shape[:-1], width // 2 + 1, 2])


def _row_fft(count: int, width: int, stages: int) -> tirx.PrimFunc:
    half, bins = max(width // 2, 1), width // 2 + 1

    @T.prim_func(private=True, s_tir=True)
    def row_fft(
        rows: T.Buffer((count, width), "float32"),
        order: T.Buffer((width,), "int32"),
        cosines: T.Buffer((half,), "float64"),
        sines: T.Buffer((half,), "float64"),
        spectrum: T.Buffer((count, bins, 2), "float32"),
    ):
        T.func_attr({"tirx.noalias": True})
        with T.sblock("root"):  # noqa: SIM117 (TVMScript opens one block per with)
            with T.sblock("row_fft"):  # one opaque step: nothing to schedule
                T.reads(rows[0:count, 0:width], order[0:width], cosines[0:half], sines[0:half])
                T.writes(spectrum[0:count, 0:bins, 0:2])
                real = T.alloc_buffer((width,), "float64")
                imaginary = T.alloc_buffer((width,), "float64")
                for row in range(count):
                    for n in range(width):
                        real[n] = T.Cast("float64", rows[row, order[n]])
                        imaginary[n] = T.float64(0)
                    for stage in range(stages):
                        for butterfly in range(width // 2):
                            span = T.shift_left(1, stage)
                            top = butterfly // span * span * 2 + butterfly % span
                            bottom = top + span
                            twiddle = T.shift_left(butterfly % span, stages - 1 - stage)
                            cosine, sine = cosines[twiddle], sines[twiddle]
                            turned_real = cosine * real[bottom] - sine * imaginary[bottom]
                            turned_imaginary = cosine * imaginary[bottom] + sine * real[bottom]
                            real[bottom] = real[top] - turned_real
                            imaginary[bottom] = imaginary[top] - turned_imaginary
                            real[top] = real[top] + turned_real
                            imaginary[top] = imaginary[top] + turned_imaginary
                    for k in range(bins):
                        spectrum[row, k, 0] = T.Cast("float32", real[k])
                        spectrum[row, k, 1] = T.Cast("float32", imaginary[k])

    return row_fft
