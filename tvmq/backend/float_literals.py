"""Float constants of the generated C kept to the last bit.

TVM's C code generator prints float immediates with seven significant digits
(``6.250266e-02f``). A float32 needs nine to survive the round trip, and about half
of the scales tvmq computes do not: a board would quantize its input and dequantize
its output with a scale an ulp away from the host's, and its float outputs would
differ. The kernels' TIR still holds every constant exactly (its script prints
seventeen digits), so each seven-digit literal is rewritten to nine digits of the
constant it came from.
"""

from __future__ import annotations

import re

import tvm

_SCRIPT_FLOAT32 = re.compile(r"T\.float32\((-?[0-9][0-9.]*(?:e[-+]?[0-9]+)?)\)")
_C_LITERAL = re.compile(r"(?<![\w.])([0-9]\.[0-9]{6}e[-+][0-9]{2,3})f")


def exact_float_literals(tir: tvm.IRModule, source: str) -> str:
    """`source` (TVM's C of `tir`) with its float32 literals written exactly; a
    literal that two different constants would print alike is left as it is."""
    exact: dict[str, str | None] = {}
    for text in _SCRIPT_FLOAT32.findall(tir.script()):
        value = abs(float(text))
        full = f"{value:.8e}"
        printed = f"{value:.6e}"
        if exact.setdefault(printed, full) != full:
            exact[printed] = None

    def rewrite(match: re.Match) -> str:
        full = exact.get(match.group(1))
        return f"{full}f" if full else match.group(0)

    return _C_LITERAL.sub(rewrite, source)
