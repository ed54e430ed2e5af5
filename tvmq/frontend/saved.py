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
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tvmq.errors import TvmqError
from tvmq.fileio import write_atomically
from tvmq.model import Model, QuantParams, TensorSpec

FORMAT = "tvmq-model"
VERSION = 1


def _spec_from_json(entry: dict) -> TensorSpec:
    quant = entry.get("quant")
    return TensorSpec(
        name=entry["name"],
        shape=tuple(entry["shape"]),
        dtype=entry["dtype"],
        quant=QuantParams(tuple(quant["scale"]), tuple(quant["zero_point"]), quant["axis"])
        if quant
        else None,
    )


def save_model(model: Model, path: str | Path) -> None:
    """Write `model` to `path` (.tvmq) atomically."""
    import tvm

    path = Path(path)
    if path.suffix != ".tvmq":
        raise TvmqError(f"{path}: a saved model needs the .tvmq extension")
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
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as error:
            raise TvmqError(f"{path}: not a readable .tvmq model ({error})") from error
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise TvmqError(f"{path}: not a {FORMAT} version {VERSION} file")
        return cls(
            path=path,
            manifest=manifest,
            module_json=module_json,
            inputs=[_spec_from_json(s) for s in manifest["inputs"]],
            outputs=[_spec_from_json(s) for s in manifest["outputs"]],
            operators=Counter(manifest["operators"]),
            params=params,
            quantization=manifest.get("quantization"),
            source_names=manifest.get("source_names", {}),
        )

    def unsupported(self) -> list[tuple[str, str]]:
        return []

    def to_relax(self):
        import tvm

        return tvm.ir.load_json(self.module_json)
