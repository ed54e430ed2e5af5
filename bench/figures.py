"""The README's figures table, generated from the committed bench/results/*.json.

The block between BEGIN and END in README.md is rewritten from the JSON the
benchmarks write, so the manual never states a figure the results do not hold.
Only formats what is there; a figure a JSON lacks is shown as "-".

    python -m bench.figures            # rewrite the block in README.md
    python -m bench.figures --check    # exit 1 when README.md's block differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BEGIN = "<!-- figures from bench/results/*.json by `python -m bench.figures`; do not edit -->"
END = "<!-- end of figures -->"
MISSING = "-"


def _load(name: str) -> dict | list:
    return json.loads((RESULTS / name).read_text())


def _count(value: int | None) -> str:
    return MISSING if value is None else f"{value:,}"


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or not denominator:
        return MISSING
    return f"{numerator / denominator:.2f}"


def _model_name(name: str) -> str:
    """`ic_resnet8_int8` -> `ic_resnet8`: rows are per network, the scheme is in the column."""
    return name.removesuffix("_int8")


def mcu_table(entries: list[dict]) -> list[str]:
    """Per model and board: instructions and memory next to TFLite Micro + CMSIS-NN."""
    lines = [
        "| model | board | instructions | TFLM + CMSIS-NN | ratio "
        "| flash (B) | arena (B) | TFLM arena (B) | ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in entries:
        lines.append(
            "| "
            + " | ".join(
                [
                    _model_name(entry["model"]),
                    entry["target"].removeprefix("qemu-"),
                    _count(entry.get("instructions")),
                    _count(entry.get("tflm_cmsis_nn_instructions")),
                    _ratio(entry.get("instructions"), entry.get("tflm_cmsis_nn_instructions")),
                    _count(entry.get("flash")),
                    _count(entry.get("arena_bytes")),
                    _count(entry.get("tflm_arena_bytes")),
                    _ratio(entry.get("arena_bytes"), entry.get("tflm_arena_bytes")),
                ]
            )
            + " |"
        )
    return lines


def _metric(result: dict | None) -> str:
    """Top-1 as a percentage, AUC as a fraction; whichever the entry holds."""
    if not isinstance(result, dict):
        return MISSING
    if "top1" in result:
        return f"{100 * result['top1']:.2f} %"
    if "auc" in result:
        return f"AUC {result['auc']:.3f}"
    return MISSING


def _fixed(value: float | None, digits: int) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def host_table(latency: dict, accuracy: dict) -> list[str]:
    """Per model: PTQ accuracy (tvmq's default mse calibrator) and host latency against LiteRT."""
    lines = [
        "| model | float | tvmq int8 | TFLite int8 | tvmq int8 (ms) | LiteRT int8 (ms) | ratio "
        "| tvmq int8 / tvmq float |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    networks = latency["models"]
    evaluated = {
        name for name, entry in accuracy.items() if isinstance(entry, dict) and "float" in entry
    }
    names = sorted(set(networks) | evaluated)
    for name in names:
        acc = accuracy.get(name, {})
        host = networks.get(name, {})
        median = host.get("median_ms", {})
        versus_float = _fixed(host.get("tvmq_int8_vs_tvmq_float"), 2)
        float_model = host.get("models", {}).get("float", "")
        if versus_float != MISSING and float_model and not float_model.endswith("_float"):
            versus_float += f" (vs {float_model})"
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    _metric(acc.get("float")),
                    _metric(acc.get("tvmq_int8", {}).get("mse")),
                    _metric(acc.get("tflite_int8")),
                    _fixed(median.get("tvmq_int8"), 3),
                    _fixed(median.get("litert_int8"), 3),
                    _fixed(host.get("tvmq_int8_vs_litert_int8"), 2),
                    versus_float,
                ]
            )
            + " |"
        )
    return lines


def figures_block() -> str:
    """The whole generated block, markers included."""
    latency = _load("host_latency.json")
    provenance = latency.get("provenance", {})
    cpu = provenance.get("mcpu", MISSING)
    lines = [
        BEGIN,
        "",
        "Cortex-M, one inference of the MLPerf Tiny int8 models on the emulated boards "
        "(QEMU `-icount`, instructions after a warm-up), against TFLite Micro + CMSIS-NN "
        "on the same boards; ratio below 1: tvmq takes less.",
        "",
        *mcu_table(_load("mcu_cost.json")),
        "",
        "From `bench/results/mcu_cost.json` (`python -m bench.mcu_cost`).",
        "",
        "Host: accuracy of post-training int8 quantization (tvmq's default mse calibrator) "
        "against the float model and the TFLite converter's int8 file, on the held-out "
        "samples; median latency, batch 1, one thread on the benchmark machine's CPU "
        f"({cpu}), tvmq's `host` build against LiteRT (XNNPACK).",
        "",
        *host_table(latency, _load("ptq_accuracy.json")),
        "",
        "From `bench/results/ptq_accuracy.json` (accuracy; `python -m bench.ptq_accuracy`) and "
        "`bench/results/host_latency.json` (latency; `python -m bench.host_latency`).",
        "",
        END,
    ]
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    """README text with the block between the markers replaced; the markers must be there once."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise SystemExit(
            f"{README.name}: expected the figures markers once each: {BEGIN} ... {END}"
        )
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + block + tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when README.md's block is not the generated one",
    )
    args = parser.parse_args()
    text = README.read_text()
    updated = replace_block(text, figures_block())
    if args.check:
        if updated != text:
            print(
                f"{README.name}: the figures table differs from bench/results/*.json; "
                "run python -m bench.figures"
            )
            sys.exit(1)
        print(f"{README.name}: figures table matches bench/results/*.json")
        return
    README.write_text(updated)
    print(f"{README.name}: figures table rewritten")


if __name__ == "__main__":
    main()
