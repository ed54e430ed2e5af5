"""The sparsity schedule of gradual pruning, TF-MOT's `PolynomialDecay`.

Sparsity rises from `initial` to `final` between `begin_step` and `end_step` as
`final + (initial - final) * (1 - p) ** power`, p the fraction of the way there:
fast at first, while the network still has weights to spare, slowly near the end.
Masks are recomputed every `frequency` steps, so the network recovers in between.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PolynomialDecay:
    initial_sparsity: float
    final_sparsity: float
    begin_step: int
    end_step: int
    power: float = 3.0
    frequency: int = 100

    def sparsity(self, step: int) -> float:
        """TF-MOT's `_get_sparsity` at `step`."""
        span = max(self.end_step - self.begin_step, 1)
        p = min(1.0, max(0.0, (step - self.begin_step) / span))
        return (self.initial_sparsity - self.final_sparsity) * (1 - p) ** self.power + (
            self.final_sparsity
        )

    def should_prune(self, step: int) -> bool:
        """TF-MOT prunes at begin_step, then every `frequency` steps, until end_step."""
        in_range = self.begin_step <= step <= self.end_step
        return in_range and (step - self.begin_step) % self.frequency == 0

    def done(self, step: int) -> bool:
        return step >= self.end_step
