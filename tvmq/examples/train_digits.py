"""Train the bundled example: a small CNN on scikit-learn's 8x8 digits.

Run ``python -m tvmq.examples.train_digits`` (needs the ``train`` extra: torch,
scikit-learn). It rewrites ``digits_cnn.onnx`` and ``digits.npz`` beside this file.
The ONNX graph is written with onnx.helper from the trained weights (batch norm
folded into its convolution), so the file depends on no exporter version.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

HERE = Path(__file__).resolve().parent
SEED = 0
PIXEL_SCALE = 1 / 16  # pixels 0..16 -> 0..1, exact in float32
EPOCHS = 60


def load_digits_split() -> dict[str, np.ndarray]:
    """The digits as uint8 pixels (0..16), split 80/20, stratified, seed 0."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.2, random_state=SEED, stratify=digits.target
    )
    return {
        "x_train": x_train,
        "y_train": y_train.astype(np.uint8),
        "x_test": x_test,
        "y_test": y_test.astype(np.uint8),
    }


def build_network():
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1, groups=16),
        nn.ReLU(),
        nn.Conv2d(16, 24, 1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(24, 10),
    )


def train(data: dict[str, np.ndarray]):
    import torch
    from torch import nn

    torch.set_num_threads(1)
    network = build_network()
    x = torch.from_numpy(data["x_train"][:, None].astype(np.float32) * PIXEL_SCALE)
    y = torch.from_numpy(data["y_train"].astype(np.int64))
    optimizer = torch.optim.Adam(network.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        network.train()
        for batch in torch.randperm(len(x), generator=generator).split(64):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(network(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
        if epoch % 10 == 9:
            print(f"epoch {epoch + 1}/{EPOCHS}: loss {loss.item():.4f}")
    return network.eval()


def to_onnx(network) -> onnx.ModelProto:
    """Write the trained network as ONNX opset 13, NCHW float32, softmax output."""
    conv1, bn, _, conv2, _, _, dwconv, _, pwconv, _, _, _, fc = network
    scale = (bn.weight / (bn.running_var + bn.eps).sqrt()).detach().numpy()
    w1 = conv1.weight.detach().numpy() * scale[:, None, None, None]
    b1 = bn.bias.detach().numpy() - bn.running_mean.detach().numpy() * scale
    tensors = {
        "conv1.w": w1,
        "conv1.b": b1,
        "conv2.w": conv2.weight,
        "conv2.b": conv2.bias,
        "dw.w": dwconv.weight,
        "dw.b": dwconv.bias,
        "pw.w": pwconv.weight,
        "pw.b": pwconv.bias,
        "fc.w": fc.weight,
        "fc.b": fc.bias,
    }
    initializers = [
        numpy_helper.from_array(
            np.asarray(v.detach().numpy() if hasattr(v, "detach") else v, np.float32), name
        )
        for name, v in tensors.items()
    ]
    same = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["input", "conv1.w", "conv1.b"], ["c1"], "conv1", **same),
        helper.make_node("Relu", ["c1"], ["r1"], "relu1"),
        helper.make_node("Conv", ["r1", "conv2.w", "conv2.b"], ["c2"], "conv2", **same),
        helper.make_node("Relu", ["c2"], ["r2"], "relu2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], "pool2", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p2", "dw.w", "dw.b"], ["c3"], "dwconv", group=16, **same),
        helper.make_node("Relu", ["c3"], ["r3"], "relu3"),
        helper.make_node("Conv", ["r3", "pw.w", "pw.b"], ["c4"], "pwconv", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c4"], ["r4"], "relu4"),
        helper.make_node("GlobalAveragePool", ["r4"], ["gap"], "gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], "flatten"),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], "fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], "softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "digits_cnn",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, [1, 10])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    model.producer_name = "tvmq.examples.train_digits"
    onnx.checker.check_model(model)
    return model


def main() -> None:
    data = load_digits_split()
    network = train(data)
    model = to_onnx(network)
    onnx.save(model, HERE / "digits_cnn.onnx")
    # scale: the model takes pixels / 16, so `tvmq quantize --calib digits.npz` works.
    np.savez_compressed(HERE / "digits.npz", **data, scale=np.float32(PIXEL_SCALE))

    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString())
    x_test = data["x_test"][:, None, None].astype(np.float32) * PIXEL_SCALE
    hits = sum(
        int(np.argmax(session.run(None, {"input": x})[0]) == label)
        for x, label in zip(x_test, data["y_test"], strict=True)
    )
    print(f"test accuracy {hits / len(x_test):.4f} on {len(x_test)} images")


if __name__ == "__main__":
    main()
