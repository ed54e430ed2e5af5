"""The one exception type for user mistakes.

The CLI turns a TvmqError into a one-line message and exit status 2; anything else
is a bug in tvmq and keeps its traceback.
"""

# Longer messages are cut: TVM errors can quote whole IR functions in one line.
MAX_DETAIL = 240


def first_line(error: BaseException) -> str:
    """TVM errors carry multi-line C++ context and IR dumps; users get the first
    meaningful line, cut to a readable length."""
    for line in str(error).splitlines():
        line = line.strip()
        if line and not line.startswith(("Traceback", "File ", "[bt]")):
            return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 3] + "..."
    return type(error).__name__


class TvmqError(Exception):
    """A problem with the user's input: a file, a node, an op, a shape."""


class UnsupportedOperatorError(TvmqError):
    """A model uses operators that no importer or backend handles."""

    def __init__(self, source: str, nodes: list[tuple[str, str]]):
        self.nodes = nodes
        listed = ", ".join(f"{name} ({op})" for name, op in nodes[:8])
        more = f" and {len(nodes) - 8} more" if len(nodes) > 8 else ""
        super().__init__(f"{source}: unsupported operator(s): {listed}{more}")
