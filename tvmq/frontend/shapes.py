"""Input shapes the user fixes (``--shape NAME=1,3,640,640``), checked against the file.

tvmq compiles static shapes. A model file may leave input dims free: an ONNX symbol
(``N``, ``height``) or an unnamed dim. Before import each free dim must be fixed by
the user; the file's fixed dims may be restated but not contradicted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from tvmq.errors import TvmqError
from tvmq.model import TensorSpec

UNNAMED = "?"
# {input name: shape}, as the user gives them (--shape, or load_model's `shapes`).
Shapes = Mapping[str, Sequence[int]]


def format_shape(shape: Sequence[int | str]) -> str:
    """`[N, 3, H, W]`: free dims by their symbol, unquoted."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


def free_dims(spec: TensorSpec) -> list[str]:
    """The symbols of `spec`'s dims that are not fixed numbers."""
    return [str(d) for d in spec.shape if not isinstance(d, int)]


def parse_shape_options(texts: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """`NAME=1,3,640,640` texts as {name: shape}; a bad one is named in one line."""
    shapes: dict[str, tuple[int, ...]] = {}
    for text in texts:
        name, equals, dims = text.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not equals or not name or not shape:
            raise TvmqError(f"--shape {text}: expected NAME=D0,D1,... with integer dims")
        if name in shapes:
            raise TvmqError(f"--shape {text}: input '{name}' is given twice")
        shapes[name] = shape
    return shapes


def fix_shapes(origin: str, inputs: list[TensorSpec], shapes: Shapes) -> list[TensorSpec]:
    """`inputs` with the shapes the user gave, after checking each against the file:
    a known input, the same rank, fixed dims kept, and one value per free symbol."""
    by_name = {spec.name: spec for spec in inputs}
    for name in shapes:
        if name not in by_name:
            known = ", ".join(f"'{n}'" for n in by_name) or "none"
            raise TvmqError(f"{origin}: shape given for input '{name}', not in the model ({known})")
    symbols: dict[str, tuple[int, str]] = {}
    fixed = []
    for spec in inputs:
        if spec.name not in shapes:
            fixed.append(spec)
            continue
        shape = tuple(int(d) for d in shapes[spec.name])
        declared = f"{spec.dtype}{format_shape(spec.shape)}"
        if len(shape) != len(spec.shape):
            raise TvmqError(
                f"{origin}: shape {spec.name}={_dims(shape)} has rank {len(shape)}, "
                f"input '{spec.name}' is {declared}"
            )
        for axis, (want, have) in enumerate(zip(shape, spec.shape, strict=True)):
            if want < 1:
                raise TvmqError(f"{origin}: shape {spec.name}={_dims(shape)}: dims must be >= 1")
            if isinstance(have, int) and want != have:
                raise TvmqError(
                    f"{origin}: shape {spec.name}={_dims(shape)} contradicts input "
                    f"'{spec.name}' {declared} (axis {axis} is fixed to {have})"
                )
            if isinstance(have, str) and have != UNNAMED:
                seen = symbols.setdefault(have, (want, spec.name))
                if seen[0] != want:
                    raise TvmqError(
                        f"{origin}: dim {have} is {seen[0]} in input '{seen[1]}' "
                        f"but {want} in input '{spec.name}'"
                    )
        fixed.append(replace(spec, shape=shape))
    return fixed


def require_static(origin: str, inputs: list[TensorSpec]) -> None:
    """Refuse inputs with free dims, naming each and the --shape that would fix it."""
    free = [spec for spec in inputs if free_dims(spec)]
    if free:
        listed = "; ".join(
            f"'{s.name}' {s.dtype}{format_shape(s.shape)} (free: {', '.join(free_dims(s))})"
            for s in free
        )
        example = free[0]
        hint = ",".join(str(d) for d in example.shape)
        raise TvmqError(
            f"{origin}: inputs with free dims: {listed}; fix them with --shape "
            f"{example.name}={hint} (numbers for {', '.join(free_dims(example))})"
        )


def relax_output_specs(mod, outputs: list[TensorSpec]) -> list[TensorSpec]:
    """`outputs` with the static shapes `mod`'s main returns (the importer's own
    shape inference, at the inputs' fixed shapes)."""
    from tvm import relax

    returned = mod["main"].body.body.ty
    fields = returned.fields if isinstance(returned, relax.TupleType) else [returned]
    if len(fields) != len(outputs):
        return outputs
    specs = []
    for spec, ty in zip(outputs, fields, strict=True):
        try:
            specs.append(replace(spec, shape=tuple(int(d) for d in ty.shape.values)))
        except (AttributeError, TypeError):  # not a tensor of static shape: left as declared
            specs.append(spec)
    return specs


def _dims(shape: Sequence[int]) -> str:
    return ",".join(str(d) for d in shape)
