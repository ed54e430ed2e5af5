"""``tvmq doctor``: which toolchains and emulators are present, and how to get the rest.

Standard library only, so the Makefile can ask it which Debian packages to install
before any virtual environment exists (``python3 tvmq/doctor.py --missing-apt``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata


@dataclass(frozen=True)
class Tool:
    command: str
    purpose: str
    packages: tuple[str, ...]
    required: bool = True


TOOLS = (
    Tool(
        "arm-none-eabi-gcc", "Cortex-M firmware", ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi")
    ),
    Tool("qemu-system-arm", "emulated Cortex-M boards", ("qemu-system-arm",)),
    Tool(
        "aarch64-linux-gnu-gcc",
        "Cortex-A libraries",
        ("gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"),
    ),
    Tool(
        "arm-linux-gnueabihf-gcc",
        "32-bit Cortex-A libraries (armv7-neon)",
        ("gcc-arm-linux-gnueabihf", "libc6-dev-armhf-cross"),
    ),
    Tool("qemu-aarch64", "running Cortex-A code", ("qemu-user",)),
    Tool("qemu-arm", "running 32-bit Cortex-A code", ("qemu-user",)),
    Tool("nvcc", "CUDA PTX checks", (), required=False),
)
PINNED = {"apache-tvm": "0.27.0.post1", "apache-tvm-ffi": "0.1.14.post1"}
APT_INSTALL = "apt-get install -y --no-install-recommends"


def tool_version(command: str) -> str | None:
    path = shutil.which(command)
    if path is None:
        return None
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "present (version unknown)"
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else "present"


def missing_apt_packages() -> list[str]:
    missing = [
        p
        for tool in TOOLS
        if tool.required and not shutil.which(tool.command)
        for p in tool.packages
    ]
    return list(dict.fromkeys(missing))


def report() -> tuple[str, bool]:
    """The doctor's table, and whether everything required is there."""
    lines, healthy = [], True
    for name, wanted in PINNED.items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            found = None
        good = found == wanted
        healthy &= good
        status = "ok " if good else "BAD"
        lines.append(f"[{status}] {name} {found or 'missing'} (pinned {wanted})")
        if not good:
            lines.append(f"      fix: pip install {name}=={wanted}")
    for tool in TOOLS:
        version = tool_version(tool.command)
        if version:
            lines.append(f"[ok ] {tool.command}: {version}  ({tool.purpose})")
            continue
        healthy &= not tool.required
        label = "BAD" if tool.required else "-- "
        lines.append(f"[{label}] {tool.command} missing  ({tool.purpose})")
        if tool.packages:
            lines.append(f"      fix: {APT_INSTALL} {' '.join(tool.packages)}")
        else:
            lines.append("      optional: the CUDA toolkit's nvcc enables PTX checks")
    return "\n".join(lines), healthy


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--missing-apt"]:
        print(" ".join(missing_apt_packages()))
        return 0
    text, healthy = report()
    print(text)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
