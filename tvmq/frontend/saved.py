"""tvmq's own model file (.tvmq): a quantized (or float) Relax model, reloadable.

A zip archive holding
- ``manifest.json``: format name and version, model name, source file and format,
  inputs and outputs (shape, dtype, quantization), operator histogram, and the
  quantization report (calibrator, scheme, every tensor's range and parameters);
- ``module.json``: the Relax IRModule in QDQ form, as ``tvm.ir.save_json`` writes it;
- ``params.npz``: the model's weights by name (int8 for quantized ops).
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tvmq.constants import constant_array
from tvmq.errors import TvmqError, first_line
from tvmq.fileio import write_atomically
from tvmq.frontend.validate import check_quant, check_shape, signature
from tvmq.model import Model, QuantParams, TensorSpec

FORMAT = "tvmq-model"
VERSION = 1
# What zipfile raises for a damaged archive besides OSError and ValueError: a bad
# header, corrupt compressed data, or a version or feature (encryption) it lacks.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)


def _field(entry: object, key: str, kind: type | tuple[type, ...], where: str):
    """entry[key] if `entry` (the manifest field `where`, "" for the manifest itself)
    is an object holding a value of `kind` there."""
    inside = f"manifest field '{where}'" if where else "manifest"
    if not isinstance(entry, dict):
        raise TvmqError(f"{inside} is not an object")
    if key not in entry:
        raise TvmqError(f"{inside} has no '{key}'")
    value = entry[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        path = f"{where}.{key}" if where else key
        raise TvmqError(f"manifest field '{path}' is {type(value).__name__} {value!r:.40}")
    return value


def _numbers(values: list, kind: type, where: str, empty: bool = False) -> tuple:
    """A list of numbers of `kind` (an int is a float too), as a tuple; empty only
    where `empty` allows (a scalar's shape)."""
    kinds = (int, float) if kind is float else kind
    if (not values and not empty) or not all(
        isinstance(v, kinds) and not isinstance(v, bool) for v in values
    ):
        what = "list" if empty else "non-empty list"
        raise TvmqError(f"manifest field '{where}' must be a {what} of {kind.__name__}")
    return tuple(kind(v) for v in values)


def _spec_from_json(entry: object, where: str) -> TensorSpec:
    """A TensorSpec from its manifest entry, every field checked (file is untrusted)."""
    name = _field(entry, "name", str, where)
    shape = _numbers(_field(entry, "shape", list, where), int, f"{where}.shape", empty=True)
    check_shape(name, shape)
    dtype = _field(entry, "dtype", str, where)
    if not _numeric(dtype):
        raise TvmqError(f"manifest field '{where}.dtype': '{dtype:.20}' is not a numeric dtype")
    quant = entry.get("quant")
    if quant is None:
        return TensorSpec(name, shape, dtype)
    axis = _field(quant, "axis", (int, type(None)), f"{where}.quant")
    params = QuantParams(
        _numbers(_field(quant, "scale", list, f"{where}.quant"), float, f"{where}.quant.scale"),
        _numbers(
            _field(quant, "zero_point", list, f"{where}.quant"), int, f"{where}.quant.zero_point"
        ),
        axis,
    )
    check_quant(name, params, dtype, shape, constant=False)
    return TensorSpec(name, shape, dtype, params)


def _numeric(dtype: str) -> bool:
    """A numpy dtype name of booleans, integers or floats (as model tensors hold)."""
    try:
        return np.dtype(dtype).kind in "biuf" and np.dtype(dtype).name == dtype
    except (TypeError, ValueError):
        return False


def _specs(manifest: dict, key: str) -> list[TensorSpec]:
    entries = _field(manifest, key, list, "")
    if not entries:
        raise TvmqError(f"manifest field '{key}' is empty")
    return [_spec_from_json(entry, f"{key}[{i}]") for i, entry in enumerate(entries)]


def _check_module(mod, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
    """The module's main takes and returns exactly what the manifest declares."""
    params, returned = signature(mod)
    for what, actual, specs in (("inputs", params, inputs), ("outputs", returned, outputs)):
        declared = [(list(s.shape), s.dtype) for s in specs]
        if actual != declared:
            raise TvmqError(f"manifest {what} {declared} disagree with the module's {actual}")


def _check_no_empty_constant(mod, path: Path) -> None:
    """Refuse a module holding a constant with no elements: TVM writes it to JSON but
    cannot read it back ("Invalid DLTensor file format"), so the file would be lost."""
    from tvm import relax

    empty = []

    def visit(expr) -> None:
        values = constant_array(expr)
        if values is not None and values.size == 0:
            empty.append(list(values.shape))

    relax.analysis.post_order_visit(mod["main"], visit)
    if empty:
        raise TvmqError(
            f"{path}: the model holds a constant with no elements (shape {empty[0]}), "
            "which a saved model cannot hold"
        )


def save_model(model: Model, path: str | Path) -> None:
    """Write `model` to `path` (.tvmq) atomically."""
    import tvm

    path = Path(path)
    if path.suffix != ".tvmq":
        raise TvmqError(f"{path}: a saved model needs the .tvmq extension")
    _check_no_empty_constant(model.mod, path)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "name": model.name,
        "source": str(model.source),
        "source_format": model.format,
        "inputs": [asdict(s) for s in model.inputs],
        "outputs": [asdict(s) for s in model.outputs],
        "operators": dict(model.operators),
        "quantization": model.quantization,
        "source_names": model.source_names,
    }
    params = io.BytesIO()
    np.savez(params, **model.params)

    def write(file) -> None:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("manifest.json", json.dumps(manifest, indent=1, default=float))
            archive.writestr("module.json", tvm.ir.save_json(model.mod))
            archive.writestr("params.npz", params.getvalue())

    write_atomically(path, write)


@dataclass
class SavedGraph:
    """A .tvmq file, read and checked."""

    path: Path
    manifest: dict
    module_json: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    operators: Counter[str] = field(default_factory=Counter)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    quantization: dict | None = None
    source_names: dict[str, str] = field(default_factory=dict)
    format: str = "tvmq"

    @classmethod
    def read(cls, path: Path) -> SavedGraph:
        try:
            with zipfile.ZipFile(path) as archive:
                manifest = json.loads(archive.read("manifest.json"))
                module_json = archive.read("module.json").decode()
                with np.load(io.BytesIO(archive.read("params.npz"))) as weights:
                    params = {k: weights[k] for k in weights.files}
        except (*ZIP_ERRORS, KeyError, ValueError, OSError, EOFError) as error:
            raise TvmqError(f"{path}: not a readable .tvmq model ({first_line(error)})") from error
        try:
            return cls._checked(path, manifest, module_json, params)
        except TvmqError as error:
            raise TvmqError(f"{path}: {error}") from error

    @classmethod
    def _checked(cls, path: Path, manifest: object, module_json: str, params) -> SavedGraph:
        if not isinstance(manifest, dict):
            raise TvmqError("manifest is not an object")
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise TvmqError(f"not a {FORMAT} version {VERSION} file")
        operators = _field(manifest, "operators", dict, "")
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in operators.values()):
            raise TvmqError("manifest field 'operators' must count each operator")
        source_names = manifest.get("source_names", {})
        if not isinstance(source_names, dict) or not all(
            isinstance(v, str) for v in source_names.values()
        ):
            raise TvmqError("manifest field 'source_names' must map names to names")
        quantization = manifest.get("quantization")
        if quantization is not None and not isinstance(quantization, dict):
            raise TvmqError("manifest field 'quantization' must be an object")
        return cls(
            path=path,
            manifest=manifest,
            module_json=module_json,
            inputs=_specs(manifest, "inputs"),
            outputs=_specs(manifest, "outputs"),
            operators=Counter(operators),
            params=params,
            quantization=quantization,
            source_names=source_names,
        )

    def unsupported(self) -> list[tuple[str, str]]:
        return []

    def to_relax(self):
        import tvm
        from tvm import relax

        mod = tvm.ir.load_json(self.module_json)
        if not isinstance(mod, tvm.IRModule):
            raise TvmqError(f"{self.path}: module.json holds no IRModule")
        try:  # a damaged module loads, then fails deep in the build without this
            relax.analysis.well_formed(mod)
        except Exception as error:  # raised on the first violation, of many types
            raise TvmqError(f"{self.path}: module.json is damaged ({first_line(error)})") from error
        try:
            _check_module(mod, self.inputs, self.outputs)
        except TvmqError as error:
            raise TvmqError(f"{self.path}: {error}") from error
        return mod
