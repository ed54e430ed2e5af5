"""Labelled quantization-aware fine-tuning of the bundled digits CNN, beside PTQ.

`tvmq.train.finetune` trains on the digits training split (1437 images; even
indices train and calibrate, odd indices choose the best epoch) and every figure
is measured on the bundled test split (360 images, never trained on), through the
host build of each model. It also counts the test images on which the training
engine (run on the exported model) and the host build predict the same digit.

Writes bench/results/qat_accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from tvmq.data import open_data
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import quantize_model
from tvmq.train.engine import Engine
from tvmq.train.finetune import CALIBRATION_SAMPLES, finetune
from tvmq.train.loop import TrainOptions

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "qat_accuracy.json"


def _host_predictions(model, x: np.ndarray) -> np.ndarray:
    executable = model.build("host")
    return np.array([int(np.argmax(executable(sample)[0])) for sample in x])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    x_train, y_train = digits_split("train")
    x_test, y_test = digits_split("test")
    float_model = load_model(DIGITS_MODEL)
    calibration = [[sample] for sample in x_train[0::2][:CALIBRATION_SAMPLES]]
    ptq = quantize_model(float_model, calibration)
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory) / "digits_train.npz"
        np.savez(data, x=x_train, y=y_train)
        options = TrainOptions(args.epochs, args.lr, args.batch_size, args.seed)
        began = time.perf_counter()
        result = finetune(float_model, open_data(data), options)
        seconds = time.perf_counter() - began
    engine = Engine(result.model, args.batch_size)
    engine_predictions = np.concatenate(
        [
            engine.predict(x_test[i : i + args.batch_size, 0]).argmax(axis=1)
            for i in range(0, len(x_test), args.batch_size)
        ]
    )
    qat_predictions = _host_predictions(result.model, x_test)
    accuracy = {
        "float": float((_host_predictions(float_model, x_test) == y_test).mean()),
        "ptq": float((_host_predictions(ptq, x_test) == y_test).mean()),
        "qat": float((qat_predictions == y_test).mean()),
    }
    report = {
        "model": DIGITS_MODEL.name,
        "split": "train: even-indexed images of the digits training split (719), "
        "best epoch chosen on its odd-indexed images (718); accuracy on the test split (360)",
        "options": vars(args),
        "test_accuracy": accuracy,
        "validation_accuracy": {"ptq": result.start_accuracy, "best": result.best_accuracy},
        "best_epoch": result.best_epoch,
        "history": result.history,
        "seconds_per_step": result.seconds_per_step,
        "seconds_total": seconds,
        "engine_equals_host_build": f"{int((engine_predictions == qat_predictions).sum())}"
        f"/{len(x_test)}",
        "note": result.note,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
