"""A compiled model dropped into the user's own firmware, next to another model.

`tvmq compile`'s model directory must build on its own (only itself on the
include path) through the Makefile fragment or the CMake library it carries,
export nothing but `tvmq_<name>_*` symbols (so two models link into one
firmware), name its tensors after the source model with their quantization,
run on a caller-owned arena as on its own, put its arena and weights in the
sections asked for, and `memory.json` must split the firmware into the
model's part and the rest so that the parts add up to the whole.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.tflite_models import mul_and_add_int8, softmax_int8
from tvmq.backend.emit_c import Placement, emit_model
from tvmq.cli import main
from tvmq.frontend import load_model

HERE = Path(__file__).resolve().parent
RNG = np.random.default_rng(20)
MUL_ADD_PARAMS = [(0.05, 3), (0.02, -7), (0.004, -5), (0.06, 10)]
CORTEX_M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]
ARM_TOOLS = ("arm-none-eabi-gcc", "qemu-system-arm")

needs_arm = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ARM_TOOLS),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)

# The user's application: both models on the same inputs, one on a caller-owned
# arena too, every output printed as integers (printf: host, or semihosting).
APPLICATION = """#include <stdint.h>
#include <stdio.h>

#include "mul_add.h"
#include "soft.h"

static const int8_t x1[TVMQ_MUL_ADD_INPUT_X1_BYTES] = {%(x1)s};
static const int8_t x2[TVMQ_MUL_ADD_INPUT_X2_BYTES] = {%(x2)s};
static const int8_t x[TVMQ_SOFT_INPUT_X_BYTES] = {%(x)s};
static int8_t y1[TVMQ_MUL_ADD_OUTPUT_Y1_BYTES], y2[TVMQ_MUL_ADD_OUTPUT_Y2_BYTES];
static int8_t y[TVMQ_SOFT_OUTPUT_Y_BYTES], y_arena[TVMQ_SOFT_OUTPUT_Y_BYTES];
static uint8_t arena[TVMQ_SOFT_ARENA_BYTES + 1] __attribute__((aligned(TVMQ_SOFT_ARENA_ALIGN)));

static void print(const char *name, const int8_t *values, unsigned n) {
  printf("%%s", name);
  for (unsigned i = 0; i < n; i++) printf(" %%d", values[i]);
  printf("\\n");
}

int main(void) {
  const unsigned shape[TVMQ_SOFT_INPUT_X_RANK] = TVMQ_SOFT_INPUT_X_SHAPE;
  for (unsigned i = 0; i < sizeof arena; i++) arena[i] = 0xa5;
  printf("status %%d %%d %%d %%d\\n", (int)tvmq_mul_add_run(x1, x2, y1, y2),
         (int)tvmq_soft_run(x, y), (int)tvmq_soft_run_with_arena(x, y_arena, arena),
         (int)tvmq_soft_run_with_arena(x, y_arena, arena + 1));
  printf("x %%u %%u %%.6f %%d\\n", shape[0], shape[1], (double)TVMQ_SOFT_INPUT_X_SCALE,
         TVMQ_SOFT_INPUT_X_ZERO_POINT);
  print("y1", y1, sizeof y1);
  print("y2", y2, sizeof y2);
  print("y", y, sizeof y);
  print("y_arena", y_arena, sizeof y_arena);
  return 0;
}
"""

# The user's Makefile: each model through its fragment, compiled with its own
# directory alone on the include path, linked with gc-sections.
MAKEFILE = """include mul_add/mul_add.mk
include soft/soft.mk
CC := arm-none-eabi-gcc
ARCH := %(arch)s -ffunction-sections -fdata-sections
MUL_ADD_OBJS := $(TVMQ_MUL_ADD_SOURCES:.c=.o)
SOFT_OBJS := $(TVMQ_SOFT_SOURCES:.c=.o)
$(MUL_ADD_OBJS): %%.o: %%.c
\t$(CC) $(ARCH) $(TVMQ_MUL_ADD_CFLAGS) -c $< -o $@
$(SOFT_OBJS): %%.o: %%.c
\t$(CC) $(ARCH) $(TVMQ_SOFT_CFLAGS) -c $< -o $@
app.elf: app.c %(vectors)s $(MUL_ADD_OBJS) $(SOFT_OBJS)
\t$(CC) $(ARCH) -O2 $(TVMQ_MUL_ADD_INCLUDES) $(TVMQ_SOFT_INCLUDES) --specs=rdimon.specs \\
\t\t-Wl,--section-start=.vectors=0x0 -Wl,-u,vectors -Wl,--gc-sections $^ -o $@ -lm
"""

CMAKE = """cmake_minimum_required(VERSION 3.13)
project(app C)
add_subdirectory(mul_add)
add_subdirectory(soft)
add_executable(app app.c)
target_link_libraries(app PRIVATE tvmq_mul_add tvmq_soft m)
"""


def _run(command: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """The user's project: two models (one with its weights in a section of their own,
    one with its arena in another), the application and its inputs."""
    root = tmp_path_factory.mktemp("app")
    mul_add = load_model(mul_and_add_int8(root / "m.tflite", (1, 3, 8), MUL_ADD_PARAMS))
    mul_add = dataclasses.replace(mul_add, name="mul_add")
    soft = load_model(softmax_int8(root / "s.tflite", (1, 10), 0.1, 2))
    soft = dataclasses.replace(soft, name="soft")
    emit_model(mul_add, root / "mul_add", placement=Placement(weights_section=".model_weights"))
    compiled = emit_model(soft, root / "soft", placement=Placement(arena_section=".sram2"))
    sizes = {"x1": 24, "x2": 24, "x": 10}
    inputs = {name: RNG.integers(-128, 128, size) for name, size in sizes.items()}
    source = {name: ", ".join(map(str, values)) for name, values in inputs.items()}
    (root / "app.c").write_text(APPLICATION % source)
    arrays = {name: values.astype(np.int8) for name, values in inputs.items()}
    host = {
        "y1": mul_add.build("host")(arrays["x1"].reshape(1, 3, 8), arrays["x2"].reshape(1, 3, 8)),
        "y": soft.build("host")(arrays["x"].reshape(1, 10)),
    }
    expected = {
        "y1": host["y1"][0].ravel(),
        "y2": host["y1"][1].ravel(),
        "y": host["y"][0].ravel(),
        "y_arena": host["y"][0].ravel(),
    }
    return root, expected, compiled


def _check_printed(stdout: str, expected: dict[str, np.ndarray], arena_bytes: int) -> None:
    lines = {line.split()[0]: line.split()[1:] for line in stdout.splitlines() if line.strip()}
    assert lines["status"] == ["0", "0", "0", "-2" if arena_bytes else "0"]
    assert lines["x"] == ["1", "10", "0.100000", "2"]  # shape, scale, zero point macros
    for name, values in expected.items():
        np.testing.assert_array_equal(np.array(lines[name], dtype=np.int64), values, name)


def test_model_directory_names_the_source_tensors_and_exports_only_its_own_symbols(
    two_models,
):
    root, _, compiled = two_models
    header = (root / "soft" / "soft.h").read_text()
    assert "/* input_x: input 0, 'x' in the source model, int8[1, 10] */" in header
    assert "#define TVMQ_SOFT_INPUT_X_SCALE 0.100000001f" in header
    assert "#define TVMQ_SOFT_OUTPUT_Y_ZERO_POINT -128" in header
    assert f"#define TVMQ_SOFT_ARENA_BYTES {compiled.plan.arena_bytes}u" in header
    assert compiled.plan.arena_bytes > 0  # so that the caller's arena is used
    objects = root / "host-objects"
    objects.mkdir()
    for source in sorted((root / "soft").glob("*.c")):  # its own directory only
        _run(
            ["cc", "-c", "-O2", f"-I{root / 'soft'}", str(source), "-o", str(objects / source.stem)]
        )
    symbols = _run(["nm", "--defined-only", "-g", *map(str, sorted(objects.iterdir()))])
    exported = {line.split()[-1]: line.split()[-2] for line in symbols.splitlines() if " " in line}
    assert exported.pop("tvmq_model") in "VvWw"  # the harness's, weak
    assert exported and all(name.startswith("tvmq_soft_") for name in exported), exported


@needs_arm
def test_two_models_in_one_firmware_on_the_board_equal_their_host_builds(two_models):
    root, expected, compiled = two_models
    shutil.copyfile(HERE / "kernels" / "semihosting_vectors.c", root / "vectors.c")
    (root / "Makefile").write_text(MAKEFILE % {"arch": " ".join(CORTEX_M4), "vectors": "vectors.c"})
    _run(["make", "-s", "-C", str(root), "app.elf"])
    elf = str(root / "app.elf")
    headers = _run(["arm-none-eabi-readelf", "-S", "-W", elf])
    assert ".sram2" in headers and ".model_weights" in headers
    table = _run(["arm-none-eabi-objdump", "-t", elf])
    placed = {line.split()[-1]: line.split()[3] for line in table.splitlines() if "tvmq_" in line}
    assert placed["tvmq_soft_arena"] == ".sram2"
    assert placed["tvmq_mul_add_weights"] == ".model_weights"
    stdout = _run(
        ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
         "-semihosting-config", "enable=on,target=native", "-kernel", elf]
    )  # fmt: skip
    _check_printed(stdout, expected, compiled.plan.arena_bytes)


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is needed")
def test_the_cmake_libraries_of_two_models_build_the_same_application(two_models, tmp_path):
    root, expected, compiled = two_models
    (root / "CMakeLists.txt").write_text(CMAKE)
    build = tmp_path / "build"
    _run(["cmake", "-S", str(root), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"])
    _run(["cmake", "--build", str(build)])
    _check_printed(_run([str(build / "app")]), expected, compiled.plan.arena_bytes)


@needs_arm
def test_memory_json_splits_the_firmware_into_model_harness_and_stack(tmp_path):
    """The model's code, weights (in a section of their own) and arena (in another),
    the harness's part, alignment fill and stack add up to arm-none-eabi-size's totals."""
    from tvmq.backend.mcu import compile_firmware
    from tvmq.targets import load_target

    model = load_model(softmax_int8(tmp_path / "soft.tflite", (1, 10), 0.1, 2))
    out = tmp_path / "fw"
    placement = Placement(arena_section=".sram2", weights_section=".ext_flash")
    named = dataclasses.replace(model, name="kws_a")
    assert compile_firmware(named, load_target("qemu-cortex-m4"), out, placement=placement)
    report = json.loads((out / "memory.json").read_text())
    parts = [report[part] for part in ("model", "harness", "padding")]
    assert sum(part["flash"] for part in parts) == report["flash"]
    assert sum(part["ram"] for part in parts) + report["stack"] == report["ram"]
    model_part = report["model"]
    assert model_part["weights"] == report["weights_bytes"] == 500
    assert model_part["arena"] == report["arena_bytes"] > 0
    assert 0 < model_part["code"] < model_part["flash"] - model_part["weights"]
    assert model_part["ram"] >= model_part["arena"] + report["io_bytes"]
    assert report["stack"] == 16384  # STACK_SIZE of firmware/include/sections.ld
    assert report["harness"]["flash"] > 0
    headers = _run(["arm-none-eabi-readelf", "-S", "-W", str(out / "build" / "firmware.elf")])
    assert ".sram2" in headers and ".ext_flash" in headers
    assert (out / "model" / "kws_a.h").is_file() and (out / "model" / "kws_a.mk").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sections"] == {"weights": ".ext_flash", "arena": ".sram2"}


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--name", "9lives", "--name '9lives': not a C identifier"),
        ("--name", "kws-v2", "--name 'kws-v2': not a C identifier"),
        ("--arena-section", '.a")))', "--arena-section '.a\")))': not a linker section name"),
        ("--weights-section", "sram 2", "--weights-section 'sram 2': not a linker section name"),
    ],
)
def test_bad_names_are_refused_in_one_line(option, value, message, tmp_path, capsys):
    model = softmax_int8(tmp_path / "soft.tflite", (1, 10), 0.1, 2)
    out = tmp_path / "fw"
    command = ["compile", str(model), "--target", "qemu-cortex-m4", "-o", str(out)]
    assert main([*command, option, value]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("target", "option", "value"),
    [("rpi5", "--arena-section", ".sram2"), ("cuda-sm80", "--name", "kws")],
)
def test_options_that_do_not_apply_to_the_target_are_refused(
    target, option, value, tmp_path, capsys
):
    model = softmax_int8(tmp_path / "soft.tflite", (1, 10), 0.1, 2)
    out = tmp_path / "out"
    command = ["compile", str(model), "--target", target, "-o", str(out), option, value]
    assert main(command) == 2
    error = capsys.readouterr().err
    assert f"target '{target}'" in error and option in error and error.count("\n") == 1
    assert not out.exists()
