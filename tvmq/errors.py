"""The one exception type for user mistakes.

The CLI turns a TvmqError into a one-line message and exit status 2; anything else
is a bug in tvmq and keeps its traceback.
"""


class TvmqError(Exception):
    """A problem with the user's input: a file, a node, an op, a shape."""


class UnsupportedOperatorError(TvmqError):
    """A model uses operators that no importer or backend handles."""

    def __init__(self, source: str, nodes: list[tuple[str, str, str]]):
        self.nodes = nodes  # (node name, op type, reason)
        listed = "; ".join(f"{name} ({op}): {reason.rstrip('.')}" for name, op, reason in nodes[:4])
        more = f"; and {len(nodes) - 4} more" if len(nodes) > 4 else ""
        super().__init__(f"{source}: {len(nodes)} node(s) cannot be imported: {listed}{more}")
