"""How a generated model directory goes into the user's own firmware project.

The model directory is self-contained; these files say how to add it to an
existing project: a Makefile fragment (``<name>.mk``), a CMake library
(``CMakeLists.txt``, for ``add_subdirectory``) and a README naming the API.
They carry the compiler flags the benchmarks were measured with.
"""

from __future__ import annotations

from pathlib import Path

from tvmq.backend.aot import CompiledModel

# The flags of firmware/Makefile's MODEL_CFLAGS that change the generated code.
MODEL_OPTIMIZATION = "-O3 -fno-schedule-insns"


def write_integration_files(compiled: CompiledModel, name: str, directory: Path) -> None:
    """README.md, `<name>.mk` and CMakeLists.txt into the model `directory`."""
    (directory / f"{name}.mk").write_text(_makefile_fragment(name))
    (directory / "CMakeLists.txt").write_text(_cmake_library(name))
    (directory / "README.md").write_text(_readme(compiled, name))


def _makefile_fragment(name: str) -> str:
    upper = name.upper()
    return f"""# tvmq model '{name}' for a Makefile project:
#   include path/to/{name}/{name}.mk
#   SOURCES += $(TVMQ_{upper}_SOURCES)
#   CFLAGS  += $(TVMQ_{upper}_INCLUDES)
# and compile the sources with $(TVMQ_{upper}_CFLAGS) (the flags tvmq measured with).
TVMQ_{upper}_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
TVMQ_{upper}_SOURCES := $(wildcard $(TVMQ_{upper}_DIR)/*.c)
TVMQ_{upper}_INCLUDES := -I$(TVMQ_{upper}_DIR)
TVMQ_{upper}_CFLAGS := {MODEL_OPTIMIZATION} $(TVMQ_{upper}_INCLUDES)
"""


def _cmake_library(name: str) -> str:
    return f"""# tvmq model '{name}' as a static library for a CMake project:
#   add_subdirectory(path/to/{name})
#   target_link_libraries(your_firmware PRIVATE tvmq_{name})
cmake_minimum_required(VERSION 3.13)
file(GLOB TVMQ_{name.upper()}_SOURCES CONFIGURE_DEPENDS ${{CMAKE_CURRENT_SOURCE_DIR}}/*.c)
add_library(tvmq_{name} STATIC ${{TVMQ_{name.upper()}_SOURCES}})
target_include_directories(tvmq_{name} PUBLIC ${{CMAKE_CURRENT_SOURCE_DIR}})
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  target_compile_options(tvmq_{name} PRIVATE {MODEL_OPTIMIZATION})
endif()
"""


def _readme(compiled: CompiledModel, name: str) -> str:
    upper = name.upper()
    return f"""# Model `{name}` (tvmq build {compiled.build_id})

Self-contained C: no runtime, no heap, only this directory on the include path.

- Makefile project: `include {name}/{name}.mk`, then add `$(TVMQ_{upper}_SOURCES)` to
  the sources and `$(TVMQ_{upper}_INCLUDES)` to CFLAGS (compile them with
  `$(TVMQ_{upper}_CFLAGS)`: `{MODEL_OPTIMIZATION}`, what tvmq measured with).
- CMake project: `add_subdirectory({name})` and
  `target_link_libraries(<your target> PRIVATE tvmq_{name})`.

`#include "{name}.h"`, then call `tvmq_{name}_run(inputs..., outputs...)` on your
buffers (0 on success), or `tvmq_{name}_run_with_arena(inputs..., outputs..., arena)`
with an arena of `TVMQ_{upper}_ARENA_BYTES` aligned to 16 (with `-Wl,--gc-sections`
the static arena of `tvmq_{name}_run` is then left out). The header names each input
and output after the source model's tensor: `TVMQ_{upper}_<INPUT|OUTPUT>_<NAME>_`
`BYTES`, `_SHAPE`, `_DTYPE`, `_SCALE` and `_ZERO_POINT` (real = scale * (q - zero point)).

Every symbol starts with `tvmq_{name}_`, so several models link into one firmware;
`tvmq_model` (the descriptor the tvmq harness runs) is a weak alias of
`tvmq_{name}_model`. `tvmq compile --arena-section S --weights-section S` puts the
arena and the weights in the linker sections your linker script places.
"""
