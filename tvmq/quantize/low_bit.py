"""Weight bit widths per layer: int8 everywhere, or int4 (two per byte) where asked.

int4 weights are symmetric per output channel in [-7, 7] (zero point 0), the int8
scheme's narrow range at 4 bits: -8 is left out, as TFLite's int8 weights leave out
-128, so that negating a weight never overflows and every channel's range is
centred on zero; CMSIS-NN's s4 kernels take either range. The integer graph is the
int8 one (int8 activations, int32 accumulators) with weights that fit 4 bits, so
the host's integer model is the reference every board's packed kernels must match.

``--weight-bits 4`` keeps the first and the last weighted layer at 8 bits (the
input's few channels and the classifier are the layers least tolerant of 4 bits,
and the smallest); ``--bits LAYER=4`` sets any weighted layer explicitly.
"""

from __future__ import annotations

from tvmq.errors import TvmqError
from tvmq.quantize.annotate import Annotation, QuantizedOp

WEIGHT_BITS = (4, 8)
# Ops whose kernels read int4 weights: conv2d (depthwise included) and dense.
LOW_BIT_KINDS = ("conv2d", "matmul")


def weight_range(bits: int) -> tuple[int, int]:
    """The symmetric integer range of `bits`-bit weights: [-7, 7] or [-127, 127]."""
    peak = (1 << (bits - 1)) - 1
    return -peak, peak


def parse_bits(specs: list[str]) -> dict[str, int]:
    """``LAYER=BITS`` options (repeatable) as {layer name: bits}."""
    chosen = {}
    for spec in specs:
        name, _, bits = spec.rpartition("=")
        if not name or not bits.isdigit():
            raise TvmqError(f"--bits {spec}: expected LAYER=BITS, e.g. conv2d#1=4")
        chosen[name] = int(bits)
    return chosen


def check_weight_bits(bits: int) -> None:
    if bits not in WEIGHT_BITS:
        raise TvmqError(f"--weight-bits {bits}: supported are 4 and 8")


def layer_weight_bits(
    annotation: Annotation, default_bits: int, explicit: dict[str, int]
) -> dict[str, int]:
    """Weight bits by op name for every quantized weighted op of `annotation`.

    `explicit` is keyed by op name (resolved from the user's layer names); an op that
    takes no weights, or bits its kernels do not support, is refused by name.
    """
    check_weight_bits(default_bits)
    for name, bits in explicit.items():
        op = low_bit_op(annotation, name, "--bits", bits, "weight bits", " (kept float)")
        if bits not in WEIGHT_BITS:
            raise TvmqError(
                f"--bits {op.label}={bits}: {op.kind} supports 4- or 8-bit weights, not {bits}"
            )
    weighted, ends = weighted_ops(annotation)
    return {
        op.name: explicit.get(op.name, 8 if op.name in ends else default_bits) for op in weighted
    }


def low_bit_op(
    annotation: Annotation, name: str, flag: str, value: int, applies: str, unquantized: str = ""
) -> QuantizedOp:
    """The quantized op `name` that `flag` NAME=`value` sets, refused in one line when
    it was kept float or has no weights that low-bit kernels take (`applies` says what
    the option applies to in that line)."""
    op = next((op for op in annotation.ops if op.name == name), None)
    if op is None:
        raise TvmqError(f"{flag} {name}={value}: the layer is not quantized{unquantized}")
    if op.weight_axis is None or op.kind not in LOW_BIT_KINDS:
        raise TvmqError(
            f"{flag} {op.label}={value}: {op.label} ({op.kind}) has no weights; "
            f"{applies} apply to {' and '.join(LOW_BIT_KINDS)}"
        )
    return op


def end_layers(names: list[str]) -> set[str]:
    """The first and last of the weighted layers `names` (in graph order), kept int8
    by default when there are more than two."""
    return {names[0], names[-1]} if len(names) > 2 else set()


def weighted_ops(annotation: Annotation) -> tuple[list[QuantizedOp], set[str]]:
    """The quantized ops with weights, and the names of the first and last of them."""
    weighted = [op for op in annotation.ops if op.weight_axis is not None]
    return weighted, end_layers([op.name for op in weighted])
