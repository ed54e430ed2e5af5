"""The one exception type for user mistakes.

The CLI turns a TvmqError into a one-line message and exit status 2; anything else
is a bug in tvmq and keeps its traceback.
"""

import re
import traceback
from pathlib import Path

# Longer messages are cut: TVM errors can quote whole IR functions in one line.
MAX_DETAIL = 240


def first_line(error: BaseException) -> str:
    """TVM errors carry multi-line C++ context and IR dumps; users get the first
    meaningful line, cut to a readable length."""
    for line in str(error).splitlines():
        line = _without_op_dump(line.strip())
        if line and not line.startswith(("Traceback", "File ", "[bt]")):
            return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 3] + "..."
    frames = traceback.extract_tb(error.__traceback__)
    where = f" in {frames[-1].name} ({Path(frames[-1].filename).name})" if frames else ""
    return f"{type(error).__name__} without a message{where}"


def _without_op_dump(line: str) -> str:
    """'In ir.Op(span=None, ..., name="relax.add", ...), the first input ...' (a whole
    operator printed before the reason) becomes 'relax.add: the first input ...'."""
    if not line.startswith("In ir.Op("):
        return line
    depth, end = 0, len(line)
    for index, char in enumerate(line):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ")" and depth == 0:
            end = index
            break
    name = re.search(r'name="([^"]+)"', line[:end])
    return f"{name.group(1) if name else 'operator'}: {line[end + 1 :].lstrip(', ')}"


class TvmqError(Exception):
    """A problem with the user's input: a file, a node, an op, a shape."""


class MemoryBudgetError(TvmqError):
    """A model that needs more flash or RAM than its target has: a property of the
    whole graph, not of one node."""


class UnsupportedOperatorError(TvmqError):
    """A model uses operators that no importer or backend handles."""

    def __init__(self, source: str, nodes: list[tuple[str, str, str]]):
        self.nodes = nodes  # (node name, op type, reason)
        listed = "; ".join(f"{name} ({op}): {reason.rstrip('.')}" for name, op, reason in nodes[:4])
        more = f"; and {len(nodes) - 4} more" if len(nodes) > 4 else ""
        super().__init__(f"{source}: {len(nodes)} node(s) cannot be imported: {listed}{more}")
