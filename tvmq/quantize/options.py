"""The options of one quantization run, as the user gives them, checked in one place.

``tvmq quantize``'s flags and :func:`tvmq.quantize_model`'s keywords are the same
options (``--skip-op`` is ``skip_ops``, ``--codebook-layer`` is ``codebook_layers``,
``--eval`` is ``eval_data``): both build a :class:`QuantizeOptions` and both are
refused with the same one-line messages, which name the flags.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from tvmq.errors import TvmqError

# static: calibrated int8 activations; dynamic: activation scales computed per
# inference; weight-only: int8 weights, float activations.
MODES = ("static", "dynamic", "weight-only")
ACTIVATIONS = ("int8", "int16")

# Per-layer choices: {layer: value}, or the flags' LAYER=VALUE strings.
LayerValues = Mapping[str, int] | Collection[str]


@dataclass(frozen=True)
class QuantizeOptions:
    """User choices for ``tvmq quantize`` (see the README for each)."""

    mode: str = "static"
    calibrator: str = "mse"
    percentile: float = 99.999
    per_channel: bool = True
    symmetric: bool = False
    power_of_two: bool = False
    skip_ops: Collection[str] = ()
    skip: Collection[str] = ()
    activations: str = "int8"
    int16: Collection[str] = ()
    weight_bits: int = 8
    bits: LayerValues = ()
    codebook: int = 0
    codebook_layers: LayerValues = ()
    codebook_per_channel: bool = False
    calib_fraction: float | None = None
    calib_samples: int | None = None
    input_format: str = "auto"
    sensitivity: bool = False
    budget: float = 1.0
    eval_data: str | Path | None = None
    metric: str = "top1"
    report: str | Path | None = None  # directory of the per-layer error report
    report_samples: int = 32
    force: bool = False  # replace an existing report directory

    @classmethod
    def from_keywords(cls, keywords: Mapping[str, object]) -> QuantizeOptions:
        """Options from keyword arguments; a name that is not an option is refused."""
        known = [f.name for f in dataclasses.fields(cls)]
        for name in keywords:
            if name not in known:
                raise TvmqError(f"unknown quantize option '{name}' (known: {', '.join(known)})")
        return cls(**keywords)

    @property
    def static(self) -> bool:
        return self.mode == "static"

    def check(self, calibrating: bool):
        """Refuse contradictory or unusable options before any long work (`calibrating`:
        calibration data was given); return them as a QuantConfig."""
        from tvmq.data import INPUT_FORMATS
        from tvmq.evaluate import METRICS
        from tvmq.quantize.calibrators import CALIBRATORS
        from tvmq.quantize.codebook import (
            check_codebook_options,
            check_per_channel,
            parse_codebook_layers,
        )
        from tvmq.quantize.low_bit import check_weight_bits, parse_bits
        from tvmq.quantize.scheme import QuantConfig

        for option, value, choices in (
            ("--mode", self.mode, MODES),
            ("--calibrator", self.calibrator, CALIBRATORS),
            ("--activations", self.activations, ACTIVATIONS),
            ("--metric", self.metric, METRICS),
            ("--input-format", self.input_format, INPUT_FORMATS),
        ):
            if value not in choices:
                raise TvmqError(f"{option} {value}: expected one of {', '.join(choices)}")
        if self.static and not calibrating:
            raise TvmqError("--mode static calibrates: give --calib DATA")
        if not self.static and (self.sensitivity or self.report):
            raise TvmqError(f"--sensitivity and --report need --mode static, not {self.mode}")
        if self.eval_data is not None and not self.sensitivity:
            raise TvmqError("--eval measures the sensitivity search: add --sensitivity")
        if self.budget < 0:
            raise TvmqError(f"--budget {self.budget}: a loss budget cannot be negative")
        if self.report is not None:
            from tvmq.fileio import check_output_directory

            check_output_directory(self.report, self.force)
        check_weight_bits(self.weight_bits)
        check_codebook_options(self.codebook, self.weight_bits)
        check_per_channel(self.codebook_per_channel, self.codebook, self.codebook_layers)
        config = QuantConfig(
            mode=self.mode,
            calibrator=self.calibrator,
            calibrator_options={"percentile": self.percentile}
            if self.calibrator == "percentile"
            else {},
            per_channel=self.per_channel,
            symmetric_activations=self.symmetric,
            power_of_two=self.power_of_two,
            skip_ops=_names(self.skip_ops),
            skip_names=_names(self.skip),
            int16_activations=self.activations == "int16",
            int16_names=_names(self.int16),
            weight_bits=self.weight_bits,
            layer_bits=_layer_values(self.bits, parse_bits),
            codebook=self.codebook,
            layer_codebook=_layer_values(self.codebook_layers, parse_codebook_layers),
            codebook_per_channel=self.codebook_per_channel,
        )
        if not self.static and (config.int16_activations or config.int16_names):
            raise TvmqError(f"int16 activations need --mode static, not {self.mode}")
        if not self.static and (config.weight_bits != 8 or config.layer_bits):
            raise TvmqError(f"--weight-bits and --bits need --mode static, not {self.mode}")
        if not self.static and (config.codebook or config.layer_codebook):
            raise TvmqError(f"--codebook needs --mode static, not {self.mode}")
        return config


def _names(value: str | Collection[str]) -> frozenset[str]:
    """Layer or op names; one name alone is one name, not its letters."""
    return frozenset([value] if isinstance(value, str) else value)


def _layer_values(
    value: LayerValues, parse: Callable[[list[str]], dict[str, int]]
) -> frozenset[tuple[str, int]]:
    """{layer: value} as (layer, value) pairs; LAYER=VALUE strings are parsed as the flag's."""
    if isinstance(value, Mapping):
        return frozenset(parse([f"{name}={bits}" for name, bits in value.items()]).items())
    return frozenset(parse([value] if isinstance(value, str) else list(value)).items())
