"""ONNX ConvInteger (TVM's Relax importer has no converter for it): what onnxruntime's
`quantize_dynamic` writes for a convolution, int8/uint8 data and weights less their
zero points (per output channel for the weights), summed exactly into int32.

Zero points are subtracted before padding, so the padded border adds nothing, as
onnxruntime pads the input with its zero point. 2-D convolutions only.
"""

from __future__ import annotations

from collections.abc import Sequence

from tvm import relax

AUTO_PADS = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")


def convert(bb: relax.BlockBuilder, inputs: Sequence, attrs: dict) -> relax.Expr:
    data, weight = bb.normalize(inputs[0]), bb.normalize(inputs[1])
    if len(data.ty.shape) != 4 or len(weight.ty.shape) != 4:
        raise ValueError("only 2-D convolutions (4-D data and weights) are supported")
    centred = [
        _centred(bb, value, zero_point, per_channel)
        for value, zero_point, per_channel in (
            (data, _input(inputs, 2), False),
            (weight, _input(inputs, 3), True),
        )
    ]
    strides = [int(s) for s in attrs.get("strides", (1, 1))]
    dilations = [int(d) for d in attrs.get("dilations", (1, 1))]
    return relax.op.nn.conv2d(
        centred[0],
        centred[1],
        strides=strides,
        padding=_padding(attrs, data, weight, strides, dilations),
        dilation=dilations,
        groups=int(attrs.get("group", 1)),
        out_dtype="int32",
    )


def _input(inputs: Sequence, index: int) -> relax.Expr | None:
    return inputs[index] if index < len(inputs) else None


def _centred(bb, value: relax.Expr, zero_point, per_channel: bool) -> relax.Expr:
    """value - zero point in int32; weights' zero points broadcast per output channel."""
    widened = bb.normalize(relax.op.astype(value, "int32"))
    if zero_point is None:
        return widened
    zero_point = bb.normalize(relax.op.astype(bb.normalize(zero_point), "int32"))
    if per_channel and len(zero_point.ty.shape) == 1:
        zero_point = bb.normalize(relax.op.reshape(zero_point, [-1, 1, 1, 1]))
    return bb.normalize(relax.op.subtract(widened, zero_point))


def _padding(attrs: dict, data, weight, strides, dilations) -> list[int]:
    """(top, left, bottom, right) from `pads` or `auto_pad`."""
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    if auto_pad not in AUTO_PADS:
        raise ValueError(f"auto_pad {auto_pad} is not one of {', '.join(AUTO_PADS)}")
    if auto_pad == "NOTSET":
        pads = [int(p) for p in attrs.get("pads", (0, 0, 0, 0))]
        return [pads[0], pads[1], pads[2], pads[3]]
    if auto_pad == "VALID":
        return [0, 0, 0, 0]
    before, after = [], []
    for axis in (2, 3):
        size, kernel = int(data.ty.shape[axis]), int(weight.ty.shape[axis])
        stride, dilation = strides[axis - 2], dilations[axis - 2]
        out = -(-size // stride)
        total = max(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - size)
        small, large = total // 2, total - total // 2
        before.append(small if auto_pad == "SAME_UPPER" else large)
        after.append(large if auto_pad == "SAME_UPPER" else small)
    return [before[0], before[1], after[0], after[1]]
