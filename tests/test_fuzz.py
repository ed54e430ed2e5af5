"""Fuzzing: mutated TFLite, ONNX and .tvmq files end in a model that runs or in one
TvmqError line, never a traceback or a signal.

Each format's mutations run in a child process (``python -m tests.test_fuzz FORMAT
SEED``) that announces every case before trying it, so a crash in native code fails
the test with the seed and the case named. Every mutant is loaded; those that load
are built for the host and run on random inputs, and must return what they declare.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SEED = int(os.environ.get("TVMQ_FUZZ_SEED", "19"))
KEEP = os.environ.get("TVMQ_FUZZ_KEEP")  # a directory to keep failing mutants in
SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx", "tvmq": ".tvmq"}
# A refusal is one line a user can read.
MAX_MESSAGE = 400


def _cases(kind: str, directory: Path, rng: np.random.Generator) -> Iterator[tuple[str, bytes]]:
    from tests import fuzz_cases

    if kind == "tflite":
        for name, data in fuzz_cases.tflite_bases(directory).items():
            yield from fuzz_cases.byte_mutations(name, data, rng, 16)
            yield from fuzz_cases.tflite_structured(name, data, rng)
    elif kind == "onnx":
        for name, data in fuzz_cases.onnx_bases().items():
            yield from fuzz_cases.byte_mutations(name, data, rng, 20)
            yield from fuzz_cases.onnx_structured(name, data, rng)
    else:
        yield from fuzz_cases.tvmq_structured(fuzz_cases.tvmq_base(directory), rng, 36)


def _random_input(spec, rng: np.random.Generator) -> np.ndarray:
    if np.dtype(spec.dtype).kind == "f":
        return rng.standard_normal(spec.shape).astype(spec.dtype)
    info = np.iinfo(spec.dtype)
    return rng.integers(info.min, info.max, spec.shape, endpoint=True).astype(spec.dtype)


def _try(path: Path, rng: np.random.Generator) -> tuple[str, str]:
    """('ok' | 'refused' | 'FAIL', detail) for one mutant: load, build, run."""
    from tvmq.errors import TvmqError
    from tvmq.frontend import load_model

    try:
        model = load_model(path)
        if any(int(np.prod(s.shape)) > 1 << 24 for s in (*model.inputs, *model.outputs)):
            return "FAIL", f"loaded with an absurd shape: {[s.shape for s in model.inputs]}"
        outputs = model.build("host")(*(_random_input(s, rng) for s in model.inputs))
        declared = [(s.shape, np.dtype(s.dtype)) for s in model.outputs]
    except TvmqError as error:
        message = str(error)
        if "\n" in message or len(message) > MAX_MESSAGE or not message.startswith(str(path)):
            return "FAIL", f"refusal is not one line naming the file: {message[:2000]!r}"
        return "refused", message
    except Exception:
        return "FAIL", traceback.format_exc(limit=-6)
    actual = [(tuple(o.shape), o.dtype) for o in outputs]
    if actual != declared:
        return "FAIL", f"outputs {actual}, declared {declared}"
    return "ok", ""


def fuzz(kind: str, seed: int) -> None:
    """The child: one JSON line per case, its name printed before it is tried."""
    rng = np.random.default_rng(seed)
    # TVM logs to file descriptor 2 as its objects die (in a garbage collection):
    # interleave that with the records, collecting after each case that reached TVM
    # (collecting after every case doubles the time), so that a stray line follows
    # the case that caused it.
    os.dup2(sys.stdout.fileno(), 2)
    with tempfile.TemporaryDirectory(prefix="tvmq-fuzz-") as scratch:
        directory = Path(scratch)
        for name, data in _cases(kind, directory, rng):
            print(json.dumps({"start": name}), flush=True)
            path = directory / f"mutant{SUFFIXES[kind]}"
            path.write_bytes(data)
            outcome, detail = _try(path, rng)
            if outcome != "refused" or "import failed" in detail:
                gc.collect()
            if outcome == "FAIL" and KEEP:
                (Path(KEEP) / f"{kind}-{seed}-{name.replace(':', '-')}").write_bytes(data)
            print(json.dumps({"case": name, "outcome": outcome, "detail": detail}), flush=True)


@pytest.mark.parametrize("kind", list(SUFFIXES))
def test_mutated_files_load_and_run_or_are_refused_in_one_line(kind):
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    child = subprocess.run(
        [sys.executable, "-m", "tests.test_fuzz", kind, str(SEED)],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=env,
    )  # fmt: skip
    where = f"TVMQ_FUZZ_SEED={SEED} {kind}"
    records, failures, case = [], [], "before the first case"
    for line in child.stdout.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
            case = records[-1].get("start", case)
        elif line.strip() and records:  # before: the valid models being made
            failures.append(f"{case}: printed {line[:300]!r}")
    if child.returncode != 0:
        pytest.fail(
            f"{where}: child died ({child.returncode}) on case {case}\n{child.stdout[-3000:]}"
        )
    results = [r for r in records if "outcome" in r]
    failures += [f"{r['case']}: {r['detail']}" for r in results if r["outcome"] == "FAIL"]
    assert not failures, f"{where}: {len(failures)} of {len(results)} cases\n" + "\n".join(failures)
    outcomes = {o: sum(r["outcome"] == o for r in results) for o in ("ok", "refused")}
    # The mutations must exercise both paths: some mutants still run, most are refused.
    assert outcomes["ok"] > 0 and outcomes["refused"] > 0, outcomes


if __name__ == "__main__":
    fuzz(sys.argv[1], int(sys.argv[2]))
