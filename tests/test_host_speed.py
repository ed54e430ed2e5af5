"""The host build's speed work: this machine's CPU, tiled and vectorized kernels,
outputs bit for bit those of TVM's unscheduled generic build. Latency itself is
measured in bench/host_latency.py, never asserted here."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import tvm
from tvm import relax, s_tir

from tests.shared_assets import shared_model
from tests.tflite_models import softmax_int8
from tvmq.backend import build
from tvmq.backend.graph import fuse
from tvmq.backend.host_schedule import (
    ELEMENT_VECTOR,
    SCHEDULED_ATTR,
    host_pipeline,
    schedule_host_kernels,
    schedule_kernel,
)
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import quantize_model
from tvmq.quantize.realize import realize
from tvmq.targets import host_cpu, load_target
from tvmq.tune.database import INFO, RecordReader, load_records, shipped_directory


@pytest.fixture(scope="module")
def digits_int8():
    calibration = [[x] for x in digits_split("train")[0][:50]]
    return quantize_model(load_model(DIGITS_MODEL), calibration)


def unscheduled_outputs(model, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """TVM's own pipeline for generic x86-64, no schedule: the reference."""
    executable = tvm.compile(realize(model.mod), tvm.target.Target({"kind": "llvm"}))
    main = relax.VirtualMachine(executable, tvm.cpu())["main"]
    return [main(tvm.runtime.tensor(x)).numpy() for x in inputs]


def vectorized_loops(func: tvm.tirx.PrimFunc) -> int:
    return func.script().count("T.vectorized(")


def reduction_kernels(model) -> dict[str, tvm.tirx.PrimFunc]:
    mod = fuse(realize(model.mod))
    names = ("conv2d", "matmul", "depthwise")
    return {
        var.name_hint: func
        for var, func in mod.functions.items()
        if isinstance(func, tvm.tirx.PrimFunc) and any(n in var.name_hint for n in names)
    }


def test_host_target_builds_for_this_machines_cpu():
    cpu = host_cpu()
    assert cpu and cpu != "generic"
    assert str(load_target("host").tvm_target().attrs["mcpu"]) == cpu
    assert "mcpu" not in load_target("host-generic").tvm_target().attrs


def test_int8_convolutions_and_dense_layers_get_vectorized_tiles(digits_int8):
    kernels = reduction_kernels(digits_int8)
    assert {"conv2d", "matmul"} <= {
        k for name in kernels for k in ("conv2d", "matmul") if k in name
    }
    for name, func in kernels.items():
        scheduled = schedule_kernel(func)
        assert scheduled is not None, name
        assert vectorized_loops(func) == 0 < vectorized_loops(scheduled), name


def test_scheduled_build_is_bit_exact_with_the_unscheduled_one(digits_int8):
    inputs = list(digits_split("test")[0][:40])
    executable = build(digits_int8, "host")
    ours = [executable(x)[0] for x in inputs]
    for got, want in zip(ours, unscheduled_outputs(digits_int8, inputs), strict=True):
        np.testing.assert_array_equal(got, want)


def test_depthwise_model_is_scheduled_and_bit_exact():
    """KWS (DS-CNN: depthwise, pointwise, dense) from the shared MLPerf Tiny models."""
    path = shared_model("kws_dscnn_int8")
    model = load_model(path)
    kernels = reduction_kernels(model)
    assert any("depthwise" in name or "conv2d" in name for name in kernels)
    assert all(vectorized_loops(schedule_kernel(f)) > 0 for f in kernels.values())
    rng = np.random.default_rng(0)
    spec = model.inputs[0]
    inputs = [rng.integers(-128, 128, spec.shape, dtype=np.int8) for _ in range(3)]
    executable = build(model, "host")
    for x, want in zip(inputs, unscheduled_outputs(model, inputs), strict=True):
        np.testing.assert_array_equal(executable(x)[0], want)


def test_host_build_marks_its_scheduled_kernels(digits_int8):
    mod = fuse(realize(digits_int8.mod))
    scheduled = schedule_host_kernels(mod)
    marked = [
        var.name_hint
        for var, func in scheduled.functions.items()
        if isinstance(func, tvm.tirx.PrimFunc) and func.attrs.get(SCHEDULED_ATTR)
    ]
    assert any("conv2d" in name for name in marked)


def test_host_records_tuned_on_another_cpu_are_not_applied(tmp_path):
    target = load_target("host")
    shipped = RecordReader(shipped_directory(target), target)
    assert shipped.exists and shipped.workloads()
    for mcpu, applied in ((host_cpu(), True), ("some-other-cpu", False)):
        directory = tmp_path / mcpu
        shutil.copytree(shipped_directory(target), directory)
        info = json.loads((directory / INFO).read_text())
        (directory / INFO).write_text(json.dumps({**info, "mcpu": mcpu}))
        assert RecordReader(directory, target).exists is applied
        assert bool(load_records(directory, target)) is applied


@pytest.fixture(scope="module")
def deep_softmax(tmp_path_factory):
    """TFLite's int8 softmax over 400 classes: hundreds of fixed-point steps per element."""
    path = softmax_int8(tmp_path_factory.mktemp("softmax") / "softmax.tflite", (16, 400), 0.0039, 7)
    return load_model(path)


def distinct_loops(func: tvm.tirx.PrimFunc) -> int:
    sch = s_tir.Schedule(func)
    blocks = sch.get_child_blocks(sch.get_sblock("root"))
    return len({sch.get(loop).__hash__() for block in blocks for loop in sch.get_loops(block)})


def test_deep_softmax_chain_runs_as_one_loop_nest_per_kernel(deep_softmax):
    """Unscheduled, softmax's 424 steps are 776 loops over 16x400 temporaries, which
    LLVM took minutes to compile with -mcpu=znver3; computed per element, 20."""
    mod = schedule_host_kernels(fuse(realize(deep_softmax.mod)))
    kernels = [f for f in mod.functions.values() if isinstance(f, tvm.tirx.PrimFunc)]
    assert sum(distinct_loops(func) for func in kernels) <= 40


def test_deep_softmax_host_code_stays_within_budget(deep_softmax):
    """LLVM instructions of the host kernels for generic x86-64 (the same on every
    machine): 17,941 as scheduled; unscheduled already 72,321 at 16 classes (and
    minutes of LLVM time at 400 with -mcpu=znver3)."""
    target = load_target("host-generic").tvm_target()
    mod = host_pipeline(target)(realize(deep_softmax.mod))
    kernels = tvm.IRModule(
        {var: f for var, f in mod.functions.items() if isinstance(f, tvm.tirx.PrimFunc)}
    )
    llvm_ir = tvm.tirx.build(kernels, target=target).inspect_source("ll").splitlines()
    instructions = [line for line in llvm_ir if line.startswith("  ") and line[2] != ";"]
    assert len(instructions) <= 25_000


def pad_kernel(shape, before, after, value: int) -> tvm.tirx.PrimFunc:
    """TOPI's constant pad of an int8 tensor, as legalization writes a padded conv's."""
    from tvm import te, topi

    x = te.placeholder(shape, "int8", name="x")
    return te.create_prim_func([x, topi.nn.pad(x, before, after, pad_value=value)])


@pytest.mark.parametrize("seed", range(4))
def test_scheduled_pads_are_bit_exact_at_random_shapes(seed):
    """Pads of random NCHW/NHWC shapes, widths and values, scheduled, give np.pad's
    tensor. Planes past 65,535 elements among them: vectorized whole, their fused row
    loop wrapped TVM's 16-bit lane count (PAN's 513 x 513 fill wrote 1,025 lanes of its
    border, 255 steps off)."""
    rng = np.random.default_rng(seed)
    target = load_target("host").tvm_target()
    for large in (False, True):
        plane = rng.integers(250, 300, 2) if large else rng.integers(1, 12, 2)
        channels = int(rng.integers(1, 6) if large else rng.integers(1, 20))
        nchw = bool(rng.integers(2))
        shape = (1, channels, *plane) if nchw else (1, *plane, channels)
        spatial = (2, 3) if nchw else (1, 2)
        before, after = ([0] * 4 for _ in range(2))
        for axis in (*spatial, 3 if nchw else 1):
            before[axis], after[axis] = (int(v) for v in rng.integers(0, 3, 2))
        value = int(rng.integers(-128, 128))
        func = schedule_kernel(pad_kernel([int(d) for d in shape], before, after, value))
        assert func is not None
        lanes = re.findall(r"T\.vectorized\((?:T\.int64\()?(\d+)", func.script())
        assert all(int(n) <= ELEMENT_VECTOR for n in lanes), func.script()
        x = rng.integers(-128, 128, shape, dtype=np.int8)
        want = np.pad(x, list(zip(before, after, strict=True)), constant_values=value)
        out = tvm.runtime.tensor(np.zeros(want.shape, np.int8))
        library = tvm.compile(tvm.IRModule({"main": func}), target)
        library["main"](tvm.runtime.tensor(x), out)
        np.testing.assert_array_equal(out.numpy(), want, err_msg=f"{shape} {before} {after}")


def _conv_then_pad_kernel(shape: tuple[int, ...], kernels: int, after: tuple[int, int], value: int):
    """A 1x1 int8 convolution whose requantized output is padded in the same kernel,
    as TVM's fusion leaves a stride-2 layer's asymmetric pad after its producer."""
    x = relax.Var("x", relax.TensorType(shape, "int8"))
    w = relax.Var("w", relax.TensorType((kernels, shape[1], 1, 1), "int8"))
    builder = relax.BlockBuilder()
    with builder.function("main", [x, w]):
        with builder.dataflow():
            y = builder.emit(relax.op.nn.conv2d(x, w, out_dtype="int32"))
            z = builder.emit(relax.op.astype(relax.op.clip(y, -128, 127), "int8"))
            padded = relax.op.nn.pad(
                z, [0, 0, 0, 0, 0, after[0], 0, after[1]], pad_value=float(value)
            )
            out = builder.emit_output(padded)
        builder.emit_func_output(out)
    mod = tvm.transform.Sequential(
        [
            relax.transform.LegalizeOps(),
            relax.transform.AnnotateTIROpPattern(),
            relax.transform.FuseOps(),
            relax.transform.FuseTIR(),
        ]
    )(builder.get())
    return next(f for f in mod.functions.values() if isinstance(f, tvm.tirx.PrimFunc))


@pytest.mark.parametrize("seed", range(3))
def test_scheduled_convolution_with_fused_pad_is_bit_exact_at_random_shapes(seed):
    """A pad fused after a tiled convolution's requantization writes its whole border.
    Computed per tile, it wrote only the tile's part (PAN QDQ's 128 -> 129 pads: the
    border left unwritten, the sigmoid output 0.98 off the unscheduled build)."""
    rng = np.random.default_rng(seed)
    shape = (1, int(rng.integers(1, 6)), *(int(d) for d in rng.integers(3, 12, 2)))
    kernels = int(rng.choice([4, 8, 16, 32]))
    after = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    value = int(rng.integers(-128, 128))
    func = _conv_then_pad_kernel(shape, kernels, after, value)
    x = rng.integers(-128, 128, shape, dtype=np.int8)
    w = rng.integers(-128, 128, (kernels, shape[1], 1, 1), dtype=np.int8)
    out_shape = (1, kernels, shape[2] + after[0], shape[3] + after[1])
    target = load_target("host").tvm_target()
    outputs = []
    for kernel in (func, schedule_kernel(func)):
        library = tvm.compile(
            tvm.IRModule({"main": kernel.with_attr("global_symbol", "main")}), target
        )
        out = tvm.runtime.tensor(np.full(out_shape, 7, np.int8))
        library["main"](tvm.runtime.tensor(x), tvm.runtime.tensor(w), out)
        outputs.append(out.numpy())
    np.testing.assert_array_equal(outputs[1], outputs[0], err_msg=f"{shape} {kernels} {after}")
