"""Sparse int8 kernels against the dense ones on the emulated Cortex-M4 and M55.

Per layer (a dense 1024 -> 64 and a 1x1 convolution 96 -> 96 on 8 x 8 pixels), board
and weight pattern (50 % and 75 % zeros at random places, 2:4 and 1:4): the layer
kernel's instructions over one inference, the whole inference's under QEMU's -icount,
and the ``--profile`` row that holds the layer (the dense kernel is a function of its
own; the C compiler inlines the sparse one into the entry, so its instructions are the
inference's less what the dense build spends besides its layer kernel). QEMU's block
log overcounts the M55's Helium code (tvmq.hil.profile), so there the exact figure is
the whole inference's (``inference_speedup``: the layer is nearly all of it); the layer's
weight bytes dense and packed, whether the cost model
(:data:`tvmq.backend.sparse.CORE_COSTS`) picks sparse, and that both builds give the
host's outputs bit for bit. Writes bench/results/sparse_kernels.json.

    python -m bench.sparse_kernels [--boards qemu-cortex-m4 qemu-cortex-m55]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from bench.sparse_layers import layer_model, pruned_weights
from tvmq.backend.aot import lower_graph
from tvmq.backend.emit_c import emit_compiled, symbol_prefix
from tvmq.backend.graph import fuse, kernel_graph
from tvmq.backend.mcu import McuExecutable, board_of, copy_firmware_files
from tvmq.backend.sparse import pack_weights, sparse_pays_off, sparsify
from tvmq.frontend import load_model
from tvmq.hil.profile import kernel_calls, profile_inference
from tvmq.model import Model
from tvmq.quantize.realize import realize
from tvmq.scratch import make_scratch
from tvmq.targets import load_target

RESULTS = Path(__file__).resolve().parent / "results" / "sparse_kernels.json"
LAYERS = {
    "dense_1024x64": ("dense", 64, 1024, (1, 1)),
    "pointwise_8x8x96x96": ("pointwise", 96, 96, (8, 8)),
}
PATTERNS = ("0.5", "0.75", "2:4", "1:4")
BOARDS = ("qemu-cortex-m4", "qemu-cortex-m55")


def board(model: Model, target_name: str, sparse: bool) -> McuExecutable:
    """`model` on the board, its layers all sparse or all dense (no cost model)."""
    target = load_target(target_name)
    core = target.tvm["mcpu"]
    mod = realize(model.mod)
    if sparse:
        mod = sparsify(mod, core, choose=lambda *_: True)
    compiled = lower_graph(model, kernel_graph(fuse(mod)))
    directory = make_scratch(f"tvmq-sparse-bench-{target.name}-")
    emit_compiled(compiled, directory / "model")
    copy_firmware_files(board_of(target), directory)
    return McuExecutable(model, target, directory, compiled)


def measure(model: Model, target_name: str, sparse: bool, x: np.ndarray) -> dict:
    """Instructions of the layer's kernel and of the inference; outputs against the host."""
    expected = model.build("host")(x)
    with board(model, target_name, sparse) as executable:
        outputs = executable(x)
        total = executable.instructions
        graph = executable.compiled.graph
        rows = profile_inference(
            executable.firmware,
            executable.target,
            kernel_calls(graph),
            [x],
            symbol_prefix=symbol_prefix(executable.compiled.model),
        )
    layer = max(rows, key=lambda row: row.instructions)
    return {
        "profile_row": layer.kernel,
        "profile_instructions": layer.instructions,
        "inference_instructions": total,
        "bit_exact_with_host": all(
            np.array_equal(a, b) for a, b in zip(outputs, expected, strict=True)
        ),
    }


def run(boards: list[str]) -> dict:
    rng = np.random.default_rng(22)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for layer, (kind, channels, depth, pixels) in LAYERS.items():
            for target_name in boards:
                core = load_target(target_name).tvm["mcpu"]
                dense_result = None
                for pattern in PATTERNS:
                    weights = pruned_weights(rng, channels, depth, pattern)
                    path = Path(scratch) / f"{layer}_{pattern.replace(':', 'of')}.tflite"
                    model = load_model(layer_model(path, kind, weights, pixels))
                    x = rng.integers(-128, 128, model.inputs[0].shape).astype(np.int8)
                    if dense_result is None:  # the dense kernels' work is the same for any values
                        dense_result = measure(model, target_name, False, x)
                        # what the inference costs besides the layer's (separate) dense kernel
                        besides = (
                            dense_result["inference_instructions"]
                            - dense_result["profile_instructions"]
                        )
                        dense_result["kernel_instructions"] = dense_result["profile_instructions"]
                    sparse_result = measure(model, target_name, True, x)
                    sparse_result["kernel_instructions"] = (
                        sparse_result["inference_instructions"] - besides
                    )
                    packed = pack_weights(weights).nbytes
                    row = {
                        "layer": layer,
                        "board": target_name,
                        "pattern": pattern,
                        "zeros": round(float(np.mean(weights == 0)), 4),
                        "dense": dense_result,
                        "sparse": sparse_result,
                        "speedup": round(
                            dense_result["kernel_instructions"]
                            / sparse_result["kernel_instructions"],
                            3,
                        ),
                        "inference_speedup": round(
                            dense_result["inference_instructions"]
                            / sparse_result["inference_instructions"],
                            3,
                        ),
                        "weight_bytes_dense": weights.nbytes,
                        "weight_bytes_sparse": packed,
                        "weight_bytes_saved": round(1 - packed / weights.nbytes, 4),
                        "cost_model_picks_sparse": sparse_pays_off(
                            weights, pixels[0] * pixels[1], core
                        ),
                    }
                    print(
                        json.dumps({k: v for k, v in row.items() if k not in ("dense", "sparse")})
                    )
                    results[f"{layer}/{target_name}/{pattern}"] = row
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", nargs="+", default=list(BOARDS))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = run(args.boards)
    args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
