"""The training engine: a quantized model's integer forward pass and its gradients.

One step runs two compiled Relax functions: the integer model with the current
trained integers (:mod:`tvmq.train.integer`), then the loss and its gradients from
TVM's Gradient pass over the glued fake-quantized graph (:mod:`tvmq.train.fake_quant`).
Predictions are the integer model's outputs: what every target computes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tvm
from tvm import relax

from tvmq.errors import TvmqError, first_line
from tvmq.model import Model
from tvmq.quantize.annotate import main_bindings
from tvmq.quantize.realize import realize
from tvmq.train.fake_quant import Loss, build_training_graph, cross_entropy, parameter_values
from tvmq.train.integer import build_integer_graph
from tvmq.train.layers import Layer, find_layers, plain_weights, start_from_float
from tvmq.train.rewrite import substitute, with_batch

# Compile time dominates short runs; the kernels are small.
TARGET = {"kind": "llvm", "opt-level": 0}


class Engine:
    """Trains the weighted layers of a QDQ model at a fixed batch size; with the float
    model it was calibrated from, training starts from its float weights. `loss` reads
    the logits and the targets (:mod:`tvmq.train.distill` has soft-target losses)."""

    def __init__(
        self,
        model: Model,
        batch: int,
        float_model: Model | None = None,
        loss: Loss = cross_entropy,
    ):
        if not model.is_quantized:
            raise TvmqError(f"{model.source}: fine-tuning needs a quantized model")
        if len(model.inputs) != 1:
            raise TvmqError(f"{model.name}: fine-tuning takes models with one input")
        # Exported with the weights as the layer finder reads them (same integers).
        model = dataclasses.replace(model, mod=plain_weights(model.mod))
        self.model, self.batch = model, batch
        batched = self.batched = with_batch(model.mod, batch)
        self.layers: list[Layer] = find_layers(batched)
        if not self.layers:
            raise TvmqError(f"{model.name}: no quantized weighted layer to train")
        if float_model is not None:
            start_from_float(self.layers, float_model.mod)
        realized = realize(batched)
        names = {binding.var.name for binding in main_bindings(realized)}
        training = build_training_graph(batched, self.layers, model.source_names, names, loss)
        self.classes = training.classes
        self.quantized_names = training.glued  # the integer tensors _forward returns
        integer = build_integer_graph(realized, self.layers, training.glued)
        loss = training.mod["loss"]
        wanted = [p for p in loss.params if p.name in training.parameters]
        target, device = tvm.target.Target(TARGET), tvm.cpu()
        try:
            gradient = relax.transform.Gradient("loss", require_grads=wanted)(training.mod)
            self._train = relax.VirtualMachine(tvm.compile(gradient, target), device)
            self._integer = relax.VirtualMachine(tvm.compile(integer, target), device)
        except Exception as error:  # TVM raises many types: users get one line
            raise TvmqError(
                f"{model.name}: cannot compile training: {first_line(error)}"
            ) from error

    def _integers(self) -> list[tvm.runtime.Tensor]:
        weights = [layer.integer_weight() for layer in self.layers]
        biases = [layer.integer_bias() for layer in self.layers]
        return [tvm.runtime.tensor(a) for a in (*weights, *biases)]

    def _forward(self, x: np.ndarray):
        return self._integer["integer"](tvm.runtime.tensor(x), *self._integers())

    def quantized_tensors(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every quantized tensor of the integer model on a full batch, by name in
        `batched` (float32 holding the integers)."""
        outputs = self._forward(x)
        return {name: outputs[i + 1].numpy() for i, name in enumerate(self.quantized_names)}

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The integer model's outputs for a batch (shorter batches are padded)."""
        count = len(x)
        if count < self.batch:
            x = np.concatenate([x, np.repeat(x[-1:], self.batch - count, axis=0)])
        return self._forward(x)[0].numpy()[:count]

    def _loss_inputs(self, x: np.ndarray, labels: np.ndarray) -> list:
        """Labels are class indices (N,) or target distributions (N, classes), e.g. a
        teacher's probabilities for distillation."""
        outputs = self._forward(x)
        if labels.ndim == 1:
            targets = np.eye(self.classes, dtype=np.float32)[labels]
        else:
            targets = labels.astype(np.float32)
        params = [tvm.runtime.tensor(p) for p in parameter_values(self.layers)]
        glued = [outputs[i] for i in range(1, len(outputs))]
        return [tvm.runtime.tensor(x), tvm.runtime.tensor(targets), *params, *glued]

    def loss(self, x: np.ndarray, labels: np.ndarray) -> float:
        """Mean loss of one full batch (the integer model's logits)."""
        return float(self._train["loss"](*self._loss_inputs(x, labels)).numpy())

    def gradients(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """Loss of one full batch and the gradient of every trained tensor."""
        loss, grads = self._train["loss_adjoint"](*self._loss_inputs(x, labels))
        return float(loss.numpy()), [g.numpy() for g in grads]

    def parameters(self) -> list[np.ndarray]:
        """The latent tensors, in the order of gradients(); updated in place."""
        return parameter_values(self.layers)

    def state(self) -> list[np.ndarray]:
        return [p.copy() for p in self.parameters()]

    def load_state(self, state: list[np.ndarray]) -> None:
        for param, saved in zip(self.parameters(), state, strict=True):
            param[...] = saved

    def export(self) -> Model:
        """The model (batch 1, QDQ) with the trained integers: an ordinary .tvmq."""
        # Batching re-emitted main binding for binding: positions match the original's.
        position = {b.var: i for i, b in enumerate(main_bindings(self.batched))}
        bindings = main_bindings(self.model.mod)
        original = [b.value for b in bindings]
        producer = {b.var: b.value for b in bindings}
        replacements: dict = {}
        for layer in self.layers:
            weight = original[position[layer.weight_var]]
            replacements[weight.args[0]] = relax.const(layer.integer_weight())
            if layer.bias is not None:
                bias = original[position[layer.bias_var]].args[1]
                if isinstance(bias, tvm.ir.expr.Constant):
                    shape = [int(d) for d in bias.ty.shape]
                    replacements[bias] = relax.const(layer.bias.reshape(shape))
                else:  # dequantize(int32 constant): TFLite's bias at input x weight scale
                    dequantize = producer[bias]
                    replacements[dequantize.args[0]] = relax.const(layer.rounded_bias())
        return dataclasses.replace(self.model, mod=replace_constants(self.model.mod, replacements))


def replace_constants(mod: tvm.IRModule, replacements: dict) -> tvm.IRModule:
    """A copy of `mod` whose main uses the constants in `replacements` instead."""
    main = mod["main"]
    blocks = []
    for block in main.body.blocks:
        bindings = [
            relax.VarBinding(b.var, substitute(b.value, replacements)) for b in block.bindings
        ]
        kind = relax.DataflowBlock if isinstance(block, relax.DataflowBlock) else relax.BindingBlock
        blocks.append(kind(bindings))
    body = relax.SeqExpr(blocks, main.body.body)
    functions = dict(mod.functions_items())
    functions[mod.get_global_var("main")] = relax.Function(
        main.params, body, main.ret_ty, main.is_pure, main.attrs
    )
    return relax.transform.Normalize()(tvm.IRModule(functions, attrs=mod.attrs))
