"""The one exception type for user mistakes.

The CLI turns a TvmqError into a one-line message and exit status 2; anything else
is a bug in tvmq and keeps its traceback.
"""


class TvmqError(Exception):
    """A problem with the user's input: a file, a node, an op, a shape."""


class UnsupportedOperatorError(TvmqError):
    """A model uses operators that no importer or backend handles."""

    def __init__(self, source: str, nodes: list[tuple[str, str]]):
        self.nodes = nodes
        listed = ", ".join(f"{name} ({op})" for name, op in nodes[:8])
        more = f" and {len(nodes) - 8} more" if len(nodes) > 8 else ""
        super().__init__(f"{source}: unsupported operator(s): {listed}{more}")
