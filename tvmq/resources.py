"""Where the files tvmq ships beside its code are: targets, firmware sources, tuned schedules.

They live at the top of the repository (``targets/``, ``firmware/``, ``schedules/``),
and a wheel installs them as package data under ``tvmq/_data/`` (``setup.py`` maps
them there). An installed tvmq finds them in its package; a source checkout (the
editable install of ``make``, or ``PYTHONPATH``) at the top of the repository. They
are plain directories either way, as ``make`` and the project copies need, so no
other module works out where they are.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_INSTALLED = _PACKAGE / "_data"
_DATA_ROOT = _INSTALLED if _INSTALLED.is_dir() else _PACKAGE.parent


def targets_dir() -> Path:
    """The shipped target descriptions, one ``<name>.toml`` each."""
    return _DATA_ROOT / "targets"


def firmware_dir() -> Path:
    """The firmware sources: Makefile, harness, shared headers, board ports, Linux runner."""
    return _DATA_ROOT / "firmware"


def shipped_schedules_dir() -> Path:
    """The tuned schedules shipped with tvmq, one database per target."""
    return _DATA_ROOT / "schedules"
