"""What the shared MLPerf Tiny int8 models cost on the Cortex-A builds, under QEMU.

Per model and target: instructions executed by one inference (QEMU user mode,
counted from its translation-block logs: tvmq/hil/instruction_count.py), as the
runner's count with one inference minus its count with none, so process start
and file I/O drop out. The dot-product builds (SDOT: rpi5, the generic
ARMv8.2-A) are set against the plain NEON one (SMULL + SADALP: rpi4) of the same
C; the 32-bit ARMv7 build is listed too. Each build's output is first checked
bit for bit against the host integer model. Untuned default schedules, one
random input (seed 0). Writes bench/results/cortex_a_cost.json.

    python -m bench.cortex_a_cost [--models kws_dscnn_int8 ...] [--targets rpi5 rpi4 ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tvmq.backend.emit_c import emit_model
from tvmq.backend.linux import LinuxExecutable, runner_instructions, write_build_files
from tvmq.frontend import load_model
from tvmq.targets import load_target

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO.parent / "shared" / "models" / "mlperf-tiny"
RESULTS = Path(__file__).resolve().parent / "results" / "cortex_a_cost.json"
MODELS = ("ad_autoencoder_int8", "ic_resnet8_int8", "kws_dscnn_int8", "vww_mobilenet_int8")
TARGETS = ("rpi5", "armv8.2-a-dotprod-i8mm", "rpi4", "armv7-neon")
PLAIN_NEON = "rpi4"


def first_line(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    return (result.stdout or result.stderr).strip().splitlines()[0]


def provenance() -> dict:
    """Commit and tool versions: the figures hold for exactly these."""
    import tvm

    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    tools = {"tvm": tvm.__version__}
    for command in ("aarch64-linux-gnu-gcc", "arm-linux-gnueabihf-gcc", "qemu-aarch64"):
        tools[command] = first_line([command, "--version"])
    return {"commit": commit + ("-dirty" if dirty else ""), "tools": tools}


def measure(executable: LinuxExecutable, x: np.ndarray) -> int:
    """Instructions of one inference on `x`: one run minus no run."""
    payload = np.ascontiguousarray(x).tobytes()
    return round(runner_instructions(executable.target, executable.directory, payload))


def measure_model(name: str, targets: list[str], root: Path) -> list[dict]:
    model = load_model(MODELS_DIR / f"{name}.tflite")
    spec = model.inputs[0]
    x = np.random.default_rng(0).integers(-128, 128, size=spec.shape).astype(spec.dtype)
    expected = model.build("host")(x)
    compiled = emit_model(model, root / name / "model")
    rows = []
    for target_name in targets:
        target, directory = load_target(target_name), root / name / target_name
        shutil.copytree(root / name / "model", directory / "model")
        write_build_files(compiled, target, directory)
        executable = LinuxExecutable(model, target, directory, compiled)
        for got, want in zip(executable(x), expected, strict=True):
            np.testing.assert_array_equal(got, want)
        rows.append(
            {
                "model": name,
                "target": target_name,
                "cflags": target.toolchain["cflags"],
                "emulator": target.toolchain["emulator"],
                "instructions": measure(executable, x),
                "shared_library_bytes": executable.library.stat().st_size,
                "weights_bytes": len(compiled.weights),
                "arena_bytes": compiled.plan.arena_bytes,
                "identical_to_host": True,
            }
        )
    plain = next((r["instructions"] for r in rows if r["target"] == PLAIN_NEON), None)
    for row in rows:
        row[f"vs_{PLAIN_NEON}"] = None if plain is None else round(row["instructions"] / plain, 3)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tvmq-cortex-a-cost-") as scratch:
        for index, name in enumerate(args.models, 1):
            print(f"[{index}/{len(args.models)}] {name}", flush=True)
            for row in measure_model(name, args.targets, Path(scratch)):
                rows.append(row)
                ratio = row[f"vs_{PLAIN_NEON}"]
                print(
                    f"  {row['target']:24} {row['instructions']:>12,} instr"
                    + ("" if ratio is None else f"  ({ratio:.3f} x {PLAIN_NEON})"),
                    flush=True,
                )
    result = {
        **provenance(),
        "method": (
            "instructions executed per inference under QEMU user mode: translation-block "
            "sizes from -d in_asm times executions from -d exec,nochain, runner with one "
            "inference minus runner with none; verified exact on a loop of known length"
        ),
        "results": rows,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
