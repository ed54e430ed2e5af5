"""Write a compiled model as a directory of C sources (the model part of a firmware).

The directory is self-contained (compiled with ``-I<dir>`` alone) and every symbol
it exports starts with ``tvmq_<name>_``, so that several models link into one
firmware. Files written:
- ``tvmq_kernels.c``: TVM's generated code, the kernels and the entry that calls them
  (its symbols renamed ``tvmq_<name>_*`` by defines ahead of TVM's code);
- ``<name>.h`` / ``tvmq_model.c``: ``tvmq_<name>_run()`` on caller-owned buffers and
  ``tvmq_<name>_run_with_arena()`` on a caller-owned arena too, the weights as one
  const blob (flash), the arena and the I/O buffers (RAM), each tensor's name,
  shape, dtype and quantization as macros, and the ``tvmq_<name>_model`` descriptor
  of ``tvmq_model.h`` (copied in), also the harness's weak ``tvmq_model``;
- ``tvmq_dot.h`` (with ``tvmq_dot_neon.h``, ``tvmq_requant.h``, ``tvmq_sparse.h``): the
  SIMD micro-kernels the tensorized kernels call;
- ``tvmq_runtime.c``: the three symbols TVM's code expects from a runtime, here
  without one (a static workspace pool, an error hook);
- ``tvm/``, ``dlpack/``: the five TVM headers the kernels include (Apache-2.0);
- ``README.md``, ``<name>.mk``, ``CMakeLists.txt``: how to add it to a project
  (:mod:`tvmq.backend.integration`).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tvmq.backend.aot import ENTRY, CompiledModel, Scheduler, build_kernels, lower_model
from tvmq.backend.float_literals import exact_float_literals
from tvmq.backend.intrinsics import HEADER, HEADERS, KERNELS_DIR
from tvmq.backend.schedule import default_schedule
from tvmq.errors import TvmqError
from tvmq.model import Model, TensorSpec
from tvmq.resources import firmware_dir

FIRMWARE_INCLUDE = firmware_dir() / "include"

C_TYPES = {
    "int8": "int8_t",
    "uint8": "uint8_t",
    "int16": "int16_t",
    "int32": "int32_t",
    "int64": "int64_t",
    "float32": "float",
    "bool": "uint8_t",
}
TVM_HEADERS = {
    "tvm_ffi": ["tvm/ffi/extra/c_env_api.h", "tvm/ffi/c_api.h", "dlpack/dlpack.h"],
    "tvm": ["tvm/runtime/base.h", "tvm/runtime/c_backend_api.h"],
}
WORKSPACE_CALL = re.compile(r"TVMBackendAllocWorkspace\([^,]+,[^,]+,\s*\(uint64_t\)(\d+)")
C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SECTION_NAME = re.compile(r"\.?[A-Za-z_][A-Za-z0-9_.]*")
# What TVM's generated code defines or calls by a fixed name -> the model's own name.
RUNTIME_SYMBOLS = {
    f"__tvm_ffi_{ENTRY}": "entry",
    "__tvm_ffi_main": "main",  # TVM's alias of the entry, as the module's main
    "__tvm_ffi__library_ctx": "library_ctx",
    "TVMBackendAllocWorkspace": "alloc_workspace",
    "TVMBackendFreeWorkspace": "free_workspace",
    "TVMFFIErrorSetRaisedFromCStrParts": "error",
}


@dataclass(frozen=True)
class Placement:
    """Linker sections for the model's arena and weights, for the user's memory map
    (a second SRAM bank, external flash); None leaves them to the compiler."""

    arena_section: str | None = None
    weights_section: str | None = None

    def __post_init__(self) -> None:
        for option, section in (
            ("--arena-section", self.arena_section),
            ("--weights-section", self.weights_section),
        ):
            if section is not None and not SECTION_NAME.fullmatch(section):
                raise TvmqError(
                    f"{option} '{section}': not a linker section name "
                    "(letters, digits, '_' and '.', such as .sram2)"
                )


DEFAULT_PLACEMENT = Placement()


def data_sections(name: str, placement: Placement) -> tuple[str, str]:
    """The input sections of the weights and of the static arena of model `name`
    (compiled with -fdata-sections, as every tvmq Makefile does)."""
    return (
        placement.weights_section or f".rodata.tvmq_{name}_weights",
        placement.arena_section or f".bss.tvmq_{name}_arena",
    )


def check_model_name(name: str) -> str:
    """`name` if it can prefix the model's C symbols; a one-line error otherwise."""
    if not C_IDENTIFIER.fullmatch(name):
        raise TvmqError(
            f"--name '{name}': not a C identifier "
            "(letters, digits and '_', not starting with a digit)"
        )
    return name


def symbol_prefix(model: Model) -> str:
    """What every symbol of the model's C starts with: ``tvmq_<name>_``."""
    return f"tvmq_{c_identifier(model.name)}_"


def c_identifier(name: str) -> str:
    """`name` made a valid C identifier (model and tensor names come from files)."""
    text = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return f"m_{text}" if not text or text[0].isdigit() else text


def io_identifiers(compiled: CompiledModel) -> list[tuple[str, str, TensorSpec, str]]:
    """(role, graph tensor, spec, C name) of each input then each output.

    The C names come from the source file's tensor names, prefixed by their role
    (so none clashes with the generated code's own names) and made unique.
    """
    graph, model = compiled.graph, compiled.model
    io = [("input", t, spec) for t, spec in zip(graph.inputs, model.inputs, strict=True)]
    io += [("output", t, spec) for t, spec in zip(graph.outputs, model.outputs, strict=True)]
    taken: set[str] = set()  # upper-cased: the header's macros must differ too
    result = []
    for role, tensor, spec in io:
        base = f"{role}_{re.sub(r'[^0-9A-Za-z_]', '_', spec.name)}"
        name, suffix = base, 0
        while name.upper() in taken:
            suffix += 1
            name = f"{base}_{suffix}"
        taken.add(name.upper())
        result.append((role, tensor, spec, name))
    return result


def workspace_bytes(kernel_source: str) -> int:
    """Upper bound of what the kernels ask TVMBackendAllocWorkspace for at once.

    Kernels run one after another and free what they took, so the pool holds the
    most that one function asks for (each C function ends at a column-0 brace).
    """
    functions = re.split(r"^}", kernel_source, flags=re.MULTILINE)
    return max(
        (sum(int(size) + 16 for size in WORKSPACE_CALL.findall(f)) for f in functions), default=0
    )


def emit_model(
    model: Model,
    directory: Path,
    schedule: Scheduler = default_schedule,
    placement: Placement = DEFAULT_PLACEMENT,
    core: str | None = None,
) -> CompiledModel:
    """Lower `model` (for `core`: :func:`tvmq.backend.aot.lower_model`) and write its C
    sources into `directory` (created if missing)."""
    compiled = lower_model(model, schedule, core)
    emit_compiled(compiled, directory, placement)
    return compiled


def emit_compiled(
    compiled: CompiledModel, directory: Path, placement: Placement = DEFAULT_PLACEMENT
) -> None:
    """Generate the C of a lowered model and write its sources into `directory`."""
    import tvm

    kernels = build_kernels(compiled.tir, tvm.target.Target({"kind": "c"}))
    directory.mkdir(parents=True, exist_ok=True)
    source = exact_float_literals(compiled.tir, kernels.inspect_source())
    write_model_sources(compiled, source, directory, placement)


def write_model_sources(
    compiled: CompiledModel,
    kernel_source: str,
    directory: Path,
    placement: Placement = DEFAULT_PLACEMENT,
) -> None:
    """Write the model's C sources into `directory` (which must exist)."""
    from tvmq.backend.integration import write_integration_files

    name = c_identifier(compiled.model.name)
    (directory / "tvmq_kernels.c").write_text(_kernels_source(compiled, name, kernel_source))
    for header in HEADERS:
        shutil.copyfile(KERNELS_DIR / header, directory / header)
    shutil.copyfile(FIRMWARE_INCLUDE / "tvmq_model.h", directory / "tvmq_model.h")
    (directory / f"{name}.h").write_text(_header(compiled, name))
    (directory / "tvmq_model.c").write_text(_model_source(compiled, name, placement))
    (directory / "tvmq_runtime.c").write_text(_runtime_source(name, workspace_bytes(kernel_source)))
    _copy_tvm_headers(directory)
    write_integration_files(compiled, name, directory)


def _kernels_source(compiled: CompiledModel, name: str, kernel_source: str) -> str:
    """TVM's code with each symbol it defines or needs renamed to the model's own."""
    renames = {symbol: f"tvmq_{name}_{short}" for symbol, short in RUNTIME_SYMBOLS.items()}
    renames.update({kernel: f"tvmq_{name}_{kernel}" for kernel in compiled.graph.kernels})
    lines = [
        f"/* Model '{_comment(compiled.model.name)}': each symbol of this file is renamed",
        f"   tvmq_{name}_*, so that several models link into one firmware. */",
        *(f"#define {symbol} {renamed}" for symbol, renamed in renames.items()),
        f'#include "{HEADER}"',
    ]
    return "\n".join(lines) + "\n" + kernel_source


def _copy_tvm_headers(directory: Path) -> None:
    import tvm
    import tvm_ffi

    roots = {
        "tvm_ffi": Path(tvm_ffi.__file__).parent / "include",
        "tvm": Path(tvm.__file__).parent / "include",
    }
    for package, headers in TVM_HEADERS.items():
        for header in headers:
            target = directory / header
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(roots[package] / header, target)


def _signature(compiled: CompiledModel, name: str, with_arena: bool = False) -> str:
    params = [
        f"{'const ' if role == 'input' else ''}{C_TYPES[compiled.graph.tensors[t].dtype]} *{c}"
        for role, t, _, c in io_identifiers(compiled)
    ]
    if with_arena:
        return f"int32_t tvmq_{name}_run_with_arena({', '.join([*params, 'void *arena'])})"
    return f"int32_t tvmq_{name}_run({', '.join(params)})"


def _header(compiled: CompiledModel, name: str) -> str:
    upper = name.upper()
    lines = [
        f"/* {_comment(compiled.model.name)}: compiled by tvmq (build {compiled.build_id}). */",
        f"#ifndef TVMQ_{upper}_H",
        f"#define TVMQ_{upper}_H",
        "#include <stdint.h>",
        "",
        "/* The activation arena: what tvmq_" + name + "_run_with_arena() takes (aligned to",
        "   TVMQ_" + upper + "_ARENA_ALIGN); tvmq_" + name + "_run() uses a static one. */",
        f"#define TVMQ_{upper}_ARENA_BYTES {compiled.plan.arena_bytes}u",
        f"#define TVMQ_{upper}_ARENA_ALIGN 16u",
        f"#define TVMQ_{upper}_WEIGHTS_BYTES {len(compiled.weights)}u",
        f"#define TVMQ_{upper}_NUM_INPUTS {len(compiled.graph.inputs)}u",
        f"#define TVMQ_{upper}_NUM_OUTPUTS {len(compiled.graph.outputs)}u",
        "",
        "/* One buffer per input and output, in argument order (row-major, as numpy's",
        "   tobytes()), each named after the source model's tensor; a quantized one",
        "   holds q with real = SCALE * (q - ZERO_POINT). */",
    ]
    index = {"input": 0, "output": 0}
    for role, tensor_name, spec, identifier in io_identifiers(compiled):
        tensor = compiled.graph.tensors[tensor_name]
        lines += [
            f"/* {identifier}: {role} {index[role]}, '{_comment(spec.name)}' in the source model,"
            f" {tensor.dtype}{list(tensor.shape)} */",
            f"#define TVMQ_{upper}_{role.upper()}{index[role]}_BYTES {tensor.nbytes}u",
            *_tensor_macros(f"TVMQ_{upper}_{identifier.upper()}", index[role], spec, tensor),
        ]
        index[role] += 1
    lines += [
        "",
        "/* Runs one inference on caller-owned buffers (inputs, then outputs); returns 0",
        "   on success. Not reentrant: the activations live in one static arena. */",
        f"{_signature(compiled, name)};",
        "",
        "/* The same on a caller-owned arena of TVMQ_" + upper + "_ARENA_BYTES, aligned to",
        "   TVMQ_" + upper + "_ARENA_ALIGN (-2 if it is not): memory the caller may use",
        "   for something else between inferences. */",
        f"{_signature(compiled, name, with_arena=True)};",
        "",
        "#endif",
        "",
    ]
    return "\n".join(lines)


def _tensor_macros(prefix: str, index: int, spec: TensorSpec, tensor) -> list[str]:
    """Index, bytes, dtype, shape and quantization of one input or output."""
    lines = [
        f"#define {prefix}_INDEX {index}u",
        f"#define {prefix}_BYTES {tensor.nbytes}u",
        f'#define {prefix}_DTYPE "{tensor.dtype}"',
        f"#define {prefix}_RANK {len(tensor.shape)}u",
        f"#define {prefix}_SHAPE {{{', '.join(str(d) for d in tensor.shape) or '1'}}}",
    ]
    quant = spec.quant
    if quant is None:
        return lines
    if quant.per_tensor:
        return [
            *lines,
            f"#define {prefix}_SCALE {_float_literal(quant.scale[0])}",
            f"#define {prefix}_ZERO_POINT {quant.zero_point[0]}",
        ]
    return [
        *lines,
        f"#define {prefix}_QUANT_AXIS {quant.axis}",
        f"#define {prefix}_SCALES {{{', '.join(_float_literal(s) for s in quant.scale)}}}",
        f"#define {prefix}_ZERO_POINTS {{{', '.join(str(z) for z in quant.zero_point)}}}",
    ]


def _float_literal(value: float) -> str:
    """A C float literal that reads back as the same float32."""
    text = f"{float(np.float32(value)):.9g}"
    return f"{text}f" if any(c in text for c in ".en") else f"{text}.0f"


def _comment(text: str) -> str:
    """`text` safe inside a C comment or string literal (it comes from a file)."""
    return re.sub(r"[^ -~]|\*/|\\|\"", "?", text)


def _bytes_initializer(data: bytes) -> str:
    rows = [", ".join(f"0x{b:02x}" for b in data[i : i + 16]) for i in range(0, len(data), 16)]
    return ",\n  ".join(rows) or "0"


def _attributes(section: str | None) -> str:
    return (
        f'__attribute__((aligned(16), section("{section}")))'
        if section
        else ("__attribute__((aligned(16)))")
    )


def _model_source(compiled: CompiledModel, name: str, placement: Placement) -> str:
    graph, model = compiled.graph, compiled.model
    io = io_identifiers(compiled)
    count = len(io) + 2
    arguments = ", ".join(c for _, _, _, c in io)
    lines = [
        "/* Generated by tvmq: the data of the model, its run functions and descriptor. */",
        "#include <stdint.h>",
        "",
        '#include "tvm/ffi/c_api.h"',
        '#include "tvmq_model.h"',
        f'#include "{name}.h"',
        "",
        f"int32_t tvmq_{name}_entry(void *self, void *args, int32_t num_args, void *result);",
        "",
        "/* Weights and constants: const, so the linker keeps them in flash. */",
        f"static const uint8_t tvmq_{name}_weights[{max(len(compiled.weights), 1)}]"
        f" {_attributes(placement.weights_section)} = {{",
        f"  {_bytes_initializer(compiled.weights)}",
        "};",
        "",
        f"static inline int32_t invoke({_signature(compiled, name, True).split('(', 1)[1]}",
        "{",
        f"  void *pointers[{count}] = {{"
        + ", ".join(f"(void *){c}" for _, _, _, c in io)
        + f", (void *)tvmq_{name}_weights, arena}};",
        f"  TVMFFIAny args[{count}];",
        "  TVMFFIAny result;",
        f"  for (int i = 0; i < {count}; ++i) {{",
        "    args[i].type_index = kTVMFFIOpaquePtr;",
        "    args[i].zero_padding = 0;",
        "    args[i].v_int64 = 0;",
        "    args[i].v_ptr = pointers[i];",
        "  }",
        "  result.type_index = kTVMFFINone;",
        f"  return tvmq_{name}_entry(0, args, {count}, &result);",
        "}",
        "",
        _signature(compiled, name, with_arena=True),
        "{",
        f"  if ({'arena == 0 || ' if compiled.plan.arena_bytes else ''}"
        "((uintptr_t)arena & 15u) != 0) return -2;",
        f"  return invoke({arguments}, arena);",
        "}",
        "",
        "/* Activations: one arena, offsets planned at compile time. */",
        f"static uint8_t tvmq_{name}_arena[{max(compiled.plan.arena_bytes, 1)}]"
        f" {_attributes(placement.arena_section)};",
        "",
        _signature(compiled, name),
        "{",
        f"  return invoke({arguments}, tvmq_{name}_arena);",
        "}",
        "",
        "/* Input and output buffers for the descriptor (the firmware harness). */",
    ]
    for _, tensor_name, _, identifier in io:
        tensor = graph.tensors[tensor_name]
        lines.append(
            f"static {C_TYPES[tensor.dtype]} {identifier}_data"
            f"[{max(int(np.prod(tensor.shape)), 1)}] __attribute__((aligned(16)));"
        )
    for role in ("input", "output"):
        lines.append(f"static const tvmq_tensor_t {role}s[] = {{")
        for tensor_role, tensor_name, spec, identifier in io:
            if tensor_role == role:
                tensor = graph.tensors[tensor_name]
                lines.append(
                    f'  {{"{_comment(spec.name)}", "{tensor.dtype}", {tensor.nbytes}u, '
                    f"{identifier}_data}},"
                )
        lines.append("};")
    call = ", ".join(f"{c}_data" for _, _, _, c in io)
    lines += [
        "",
        f"static int32_t run(void) {{ return tvmq_{name}_run({call}); }}",
        "",
        f"const tvmq_model_t tvmq_{name}_model = {{",
        f'  "{_comment(model.name)}", "{compiled.build_id}",',
        f"  {len(graph.inputs)}u, {len(graph.outputs)}u, inputs, outputs,",
        f"  {compiled.plan.arena_bytes}u, run,",
        "};",
        "",
        "/* The model the tvmq harness runs; weak, so that a firmware links several models",
        "   (the harness then runs the first one linked). */",
        "extern const tvmq_model_t tvmq_model",
        f'    __attribute__((weak, alias("tvmq_{name}_model")));',
        "",
    ]
    return "\n".join(lines)


def _runtime_source(name: str, workspace: int) -> str:
    return f"""/* Generated by tvmq: what TVM's kernels expect of a runtime, without one, under the
   model's own names (tvmq_kernels.c renames TVM's). */
#include <stddef.h>
#include <stdint.h>

/* Kernels that need scratch memory take it from this static pool, stack-wise. */
#define WORKSPACE_BYTES {workspace}u
static uint8_t pool[WORKSPACE_BYTES + 1] __attribute__((aligned(16)));
static size_t pool_top;

void *tvmq_{name}_alloc_workspace(int device_type, int device_id, uint64_t size,
                               int dtype_code_hint, int dtype_bits_hint) {{
  size_t need = (size_t)((size + 15u) & ~(uint64_t)15u);
  (void)device_type; (void)device_id; (void)dtype_code_hint; (void)dtype_bits_hint;
  if (need > WORKSPACE_BYTES - pool_top) return NULL;
  void *block = &pool[pool_top];
  pool_top += need;
  return block;
}}

int tvmq_{name}_free_workspace(int device_type, int device_id, void *ptr) {{
  (void)device_type; (void)device_id;
  if (ptr == NULL) return -1;
  pool_top = (size_t)((uint8_t *)ptr - pool);
  return 0;
}}

/* TVM reports argument errors through this hook; there is no one to tell. */
void tvmq_{name}_error(const char *kind, const char **parts, int32_t count) {{
  (void)kind; (void)parts; (void)count;
}}
"""
