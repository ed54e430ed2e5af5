"""The wheel is self-contained: installed from it, tvmq compiles outside the checkout.

The wheel is built offline (no build isolation, no index) from a copy of the sources
and installed into a fresh virtual environment that reuses this environment's
dependencies, so nothing is downloaded. Every command runs in a temporary directory
with no PYTHONPATH: targets, firmware sources and tuned schedules must all come
from the installed package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tvmq

REPO = Path(__file__).resolve().parents[1]
# What building the wheel reads; anything else in the checkout must not matter.
SOURCES = ("pyproject.toml", "setup.py", "README.md", "tvmq", "targets", "firmware", "schedules")
ELF_MACHINES = {"qemu-cortex-m4": 40, "rpi5": 183}  # EM_ARM, EM_AARCH64


def _outside_env() -> dict[str, str]:
    """This process's environment without PYTHONPATH, which may point into the checkout."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def _pip(*args: str | Path) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, args)]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=_outside_env()
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _dependency_path(path: Path) -> bool:
    """A sys.path entry the installed tvmq may take its dependencies from: anything
    but the checkout's sources (a venv inside the checkout, as `make` makes, counts)."""
    path = path.resolve()
    in_checkout = path == REPO or REPO in path.parents
    return path.is_dir() and (not in_checkout or "site-packages" in path.parts)


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    return int.from_bytes(header[18:20], "little")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the wheel, the bin/ directory of a fresh venv with tvmq installed from it)."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=ignore)
        else:
            shutil.copy(REPO / name, source / name)
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", root / "dist", source)
    (wheel,) = (root / "dist").glob("tvmq-*.whl")

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    _pip("--python", python, "install", "--no-deps", "--no-index", wheel)
    # Whatever this test imports from, less the checkout, after the venv's own site-packages.
    dependencies = [entry for entry in sys.path if entry and _dependency_path(Path(entry))]
    (Path(purelib) / "tvmq_test_dependencies.pth").write_text("\n".join(dependencies) + "\n")
    return wheel, venv / "bin"


def _tvmq(bin_dir: Path, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [bin_dir / "tvmq", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={**_outside_env(), "PYTHONWARNINGS": "ignore"},
    )


def test_version_is_the_wheels(installed, tmp_path):
    wheel, bin_dir = installed
    result = _tvmq(bin_dir, "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert wheel.name.startswith(f"tvmq-{tvmq.__version__}-")
    assert result.stdout.strip() == f"tvmq {tvmq.__version__}"


@pytest.mark.parametrize(
    ("target", "compiler", "binary"),
    [
        ("qemu-cortex-m4", "arm-none-eabi-gcc", "build/firmware.elf"),
        ("rpi5", "aarch64-linux-gnu-gcc", "bin/tvmq_runner"),
    ],
)
def test_installed_wheel_compiles_outside_the_checkout(
    installed, tmp_path, target, compiler, binary
):
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed")
    _, bin_dir = installed
    model = tmp_path / "digits_cnn.onnx"
    shutil.copy(REPO / "tvmq" / "examples" / "digits_cnn.onnx", model)
    result = _tvmq(bin_dir, "compile", model, "--target", target, "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    project = tmp_path / "out"
    assert _elf_machine(project / binary) == ELF_MACHINES[target]
    # The shipped schedules were looked up in the installed package, not in the checkout.
    venv_lib = bin_dir.parent / "lib"
    (schedules_line,) = [line for line in result.stdout.splitlines() if "tuned schedules" in line]
    assert str(venv_lib) in schedules_line and "/tvmq/_data/schedules/" in schedules_line
    for path in [*project.glob("*.json"), *project.glob("*.mk"), project / "Makefile"]:
        assert str(REPO) not in path.read_text(), path
