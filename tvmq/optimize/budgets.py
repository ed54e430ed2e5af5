"""The user's budgets: an accuracy drop, flash and RAM bytes, instructions per inference.

Sizes take the units B, KiB and MiB (``64KiB``, ``1.5MiB``, ``4096`` for bytes),
instructions k and M (``250k``, ``1.2M``); a string that is none of these is refused
in one line naming the flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tvmq.errors import TvmqError

BYTE_UNITS = {"": 1, "B": 1, "KiB": 1024, "MiB": 1024 * 1024}
COUNT_UNITS = {"": 1, "k": 1000, "M": 1000 * 1000}
_AMOUNT = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*")


class BudgetsNotMet(TvmqError):
    """No point of the front meets every budget (``tvmq optimize`` exits 1)."""


def parse_amount(text: str | int | float, units: dict[str, int], flag: str) -> int:
    """`text` (a number with one of `units`, or a plain number) as an integer."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = _AMOUNT.fullmatch(str(text))
        if match is None or match.group(2) not in units:
            names = ", ".join(unit for unit in units if unit)
            raise TvmqError(f"{flag} {text}: expected a number with a unit ({names}), e.g. 64KiB")
        value, unit = float(match.group(1)), match.group(2)
    if value <= 0:
        raise TvmqError(f"{flag} {text}: a budget must be positive")
    return round(value * units[unit])


@dataclass(frozen=True)
class Budgets:
    """What a point must meet; None: no limit."""

    max_drop: float = 0.5  # accuracy points below the all-int8 model
    flash: int | None = None
    ram: int | None = None
    instructions: int | None = None

    @classmethod
    def parse(
        cls,
        max_drop: float = 0.5,
        flash: str | int | None = None,
        ram: str | int | None = None,
        instructions: str | int | None = None,
    ) -> Budgets:
        if max_drop < 0:
            raise TvmqError(f"--max-drop {max_drop}: an accuracy drop cannot be negative")
        return cls(
            max_drop,
            None if flash is None else parse_amount(flash, BYTE_UNITS, "--flash-budget"),
            None if ram is None else parse_amount(ram, BYTE_UNITS, "--ram-budget"),
            None
            if instructions is None
            else parse_amount(instructions, COUNT_UNITS, "--instructions-budget"),
        )

    def limits(self) -> dict[str, float]:
        """Each budget given, by the figure of a point it limits."""
        limits = {"drop": self.max_drop, "flash": self.flash, "ram": self.ram}
        limits["instructions"] = self.instructions
        return {key: value for key, value in limits.items() if value is not None}

    def excess(self, figures: dict[str, float]) -> float:
        """How far `figures` are above the budgets, to rank the points that miss them:
        the largest excess as a share of its limit (0 when all are met); the drop's
        share is of at least one point, as its limit may be 0."""
        worst = 0.0
        for key, limit in self.limits().items():
            worst = max(worst, (figures[key] - limit) / max(limit, 1.0 if key == "drop" else 1))
        return worst

    def met(self, figures: dict[str, float]) -> bool:
        return all(figures[key] <= limit for key, limit in self.limits().items())
