"""Every kind of target is built by the backend the registry names for it, and what
each backend builds is an Executable (call, close, the `with` form)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tvmq.backend import build
from tvmq.backend.executable import Executable
from tvmq.backend.registry import BACKENDS, backend_for
from tvmq.errors import TvmqError
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.frontend import load_model
from tvmq.quantize.quantizer import quantize_model
from tvmq.targets import KINDS, Target, available_targets, load_target


def test_every_target_kind_has_a_backend():
    assert set(BACKENDS) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_every_backend_builds_an_executable(kind):
    """The class each backend's build declares satisfies the protocol (CUDA's too,
    which needs a GPU to build)."""
    module = BACKENDS[kind].load()
    returned = getattr(module, module.build.__annotations__["return"])
    assert issubclass(returned, Executable)


def test_an_unknown_kind_is_refused_in_one_line():
    fpga = Target(name="my-fpga", kind="fpga", description="", tvm={"kind": "llvm"})
    with pytest.raises(TvmqError) as error:
        backend_for(fpga)
    message = str(error.value)
    assert "\n" not in message
    assert "my-fpga" in message and "'fpga'" in message
    assert all(kind in message for kind in KINDS)


@pytest.fixture(scope="module")
def digits():
    calibration, _ = digits_split("train")
    model = quantize_model(load_model(DIGITS_MODEL), [[x] for x in calibration[:20]])
    return model, digits_split("test")[0][:2]


def test_a_real_board_is_refused_before_any_work(digits):
    model, _ = digits
    assert not load_target("nucleo-l4r5zi").is_emulated
    with pytest.raises(TvmqError, match=r"nucleo-l4r5zi.*real board"):
        build(model, "nucleo-l4r5zi")


@pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)
def test_host_and_emulated_board_builds_are_executables_with_the_same_outputs(digits):
    model, inputs = digits
    with build(model, "host") as host, build(model, "qemu-cortex-m4") as board:
        assert isinstance(host, Executable) and isinstance(board, Executable)
        for x in inputs:
            for got, expected in zip(board(x), host(x), strict=True):
                np.testing.assert_array_equal(got, expected)
        assert board.instructions > 0  # the board's own extras: instructions, memory
        assert 0 < board.memory["arena_bytes"] <= board.memory["ram_limit"]
        assert getattr(host, "instructions", None) is None
        directory = board.directory
    assert not directory.exists()  # leaving the `with` closed the board and removed its project


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_tuning_runners_come_from_the_backend(kind):
    """Each kind's default runner is accepted; any runner its backend does not list is
    refused in one line naming the ones that fit (or, untunable, saying so)."""
    from tvmq.tune.runners import RUNNERS, check_runner, default_runner

    target = next(load_target(n) for n in available_targets() if load_target(n).kind == kind)
    fitting = BACKENDS[kind].runners
    assert set(fitting) <= set(RUNNERS)
    if fitting:
        assert default_runner(target) == fitting[0]
        check_runner(fitting[0], target)
    for runner in set(RUNNERS) - set(fitting):
        with pytest.raises(TvmqError) as error:
            check_runner(runner, target)
        message = str(error.value)
        assert "\n" not in message and target.name in message
        assert all(f"--runner {r}" in message for r in fitting) if fitting else "tuning" in message
