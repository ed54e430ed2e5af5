"""What import-linter's contracts ([tool.importlinter], run by make test) cannot say:
no package imports another package's private names (a leading underscore)."""

from __future__ import annotations

import ast
from pathlib import Path

import tvmq

PACKAGE = Path(tvmq.__file__).parent


def private_imports_across_packages(root: Path) -> list[str]:
    """``file:line module name`` of each ``from tvmq.<a>... import _name`` in a module
    outside ``tvmq.<a>``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        own = ".".join(parts[:2])
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                continue
            imported = ".".join(node.module.split(".")[:2])
            if node.module.split(".")[0] != root.name or imported == own:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {alias.name}")
    return found


def test_no_package_imports_another_packages_private_names():
    assert private_imports_across_packages(PACKAGE) == []


def test_the_check_finds_a_private_import(tmp_path):
    """The scan is not vacuous: a planted cross-package private import is found."""
    root = tmp_path / "tvmq"
    (root / "tune").mkdir(parents=True)
    (root / "tune" / "x.py").write_text(
        "from tvmq.backend.mcu import _memory\nfrom tvmq.tune.y import _fine\n"
    )
    assert private_imports_across_packages(root) == ["tvmq/tune/x.py:1 _memory"]
