"""Write a compiled model as a directory of C sources (the model part of a firmware).

Files written (all compiled with ``-I<dir>``):
- ``tvmq_kernels.c``: TVM's generated code, the kernels and the entry that calls them;
- ``<name>.h`` / ``tvmq_model.c``: ``tvmq_<name>_run()`` on caller-owned buffers, the
  weights as one const blob (flash), the arena and the I/O buffers (RAM), and
  the ``tvmq_model`` descriptor of ``firmware/include/tvmq_model.h``;
- ``tvmq_dot.h`` (with ``tvmq_dot_neon.h``, ``tvmq_requant.h``): the SIMD micro-kernels the
  tensorized kernels call;
- ``tvmq_runtime.c``: the three symbols TVM's code expects from a runtime, here
  without one (a static workspace pool, an error hook);
- ``tvm/``, ``dlpack/``: the five TVM headers the kernels include (Apache-2.0).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from tvmq.backend.aot import ENTRY, CompiledModel, Scheduler, build_kernels, lower_model
from tvmq.backend.intrinsics import HEADER, HEADERS, KERNELS_DIR
from tvmq.backend.schedule import default_schedule
from tvmq.model import Model, TensorSpec

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
    taken: set[str] = set()
    result = []
    for role, tensor, spec in io:
        base = f"{role}_{re.sub(r'[^0-9A-Za-z_]', '_', spec.name)}"
        name, suffix = base, 0
        while name in taken:
            suffix += 1
            name = f"{base}_{suffix}"
        taken.add(name)
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
    model: Model, directory: Path, schedule: Scheduler = default_schedule
) -> CompiledModel:
    """Lower `model` and write its C sources into `directory` (created if missing)."""
    compiled = lower_model(model, schedule)
    emit_compiled(compiled, directory)
    return compiled


def emit_compiled(compiled: CompiledModel, directory: Path) -> None:
    """Generate the C of a lowered model and write its sources into `directory`."""
    import tvm

    kernels = build_kernels(compiled.tir, tvm.target.Target({"kind": "c"}))
    directory.mkdir(parents=True, exist_ok=True)
    write_model_sources(compiled, kernels.inspect_source(), directory)


def write_model_sources(compiled: CompiledModel, kernel_source: str, directory: Path) -> None:
    """Write the model's C sources into `directory` (which must exist)."""
    name = c_identifier(compiled.model.name)
    (directory / "tvmq_kernels.c").write_text(f'#include "{HEADER}"\n' + kernel_source)
    for header in HEADERS:
        shutil.copyfile(KERNELS_DIR / header, directory / header)
    (directory / f"{name}.h").write_text(_header(compiled, name))
    (directory / "tvmq_model.c").write_text(_model_source(compiled, name))
    (directory / "tvmq_runtime.c").write_text(_runtime_source(workspace_bytes(kernel_source)))
    _copy_tvm_headers(directory)


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


def _signature(compiled: CompiledModel, name: str) -> str:
    params = [
        f"{'const ' if role == 'input' else ''}{C_TYPES[compiled.graph.tensors[t].dtype]} *{c}"
        for role, t, _, c in io_identifiers(compiled)
    ]
    return f"int32_t tvmq_{name}_run({', '.join(params)})"


def _header(compiled: CompiledModel, name: str) -> str:
    upper = name.upper()
    io = io_identifiers(compiled)
    lines = [
        f"/* {_comment(compiled.model.name)}: compiled by tvmq (build {compiled.build_id}). */",
        f"#ifndef TVMQ_{upper}_H",
        f"#define TVMQ_{upper}_H",
        "#include <stdint.h>",
        "",
        f"#define TVMQ_{upper}_ARENA_BYTES {compiled.plan.arena_bytes}u",
        f"#define TVMQ_{upper}_NUM_INPUTS {len(compiled.graph.inputs)}u",
        f"#define TVMQ_{upper}_NUM_OUTPUTS {len(compiled.graph.outputs)}u",
        "",
        "/* One buffer per input and output, in argument order: the bytes of each",
        "   (row-major, as numpy's tobytes()) and its parameter in the run call. */",
    ]
    index = {"input": 0, "output": 0}
    for role, tensor_name, spec, identifier in io:
        tensor = compiled.graph.tensors[tensor_name]
        lines.append(
            f"#define TVMQ_{upper}_{role.upper()}{index[role]}_BYTES {tensor.nbytes}u"
            f"  /* {identifier}: '{_comment(spec.name)}' {tensor.dtype}{list(tensor.shape)} */"
        )
        index[role] += 1
    lines += [
        "",
        "/* Runs one inference on caller-owned buffers (inputs, then outputs); returns 0",
        "   on success. Not reentrant: the activations live in one static arena. */",
        f"{_signature(compiled, name)};",
        "",
        "#endif",
        "",
    ]
    return "\n".join(lines)


def _comment(text: str) -> str:
    """`text` safe inside a C comment or string literal (it comes from a file)."""
    return re.sub(r"[^ -~]|\*/|\\|\"", "?", text)


def _bytes_initializer(data: bytes) -> str:
    rows = [", ".join(f"0x{b:02x}" for b in data[i : i + 16]) for i in range(0, len(data), 16)]
    return ",\n  ".join(rows) or "0"


def _model_source(compiled: CompiledModel, name: str) -> str:
    graph, model = compiled.graph, compiled.model
    io = io_identifiers(compiled)
    count = len(io) + 2
    lines = [
        "/* Generated by tvmq: the data of the model and its descriptor. */",
        '#include "tvm/ffi/c_api.h"',
        '#include "tvmq_model.h"',
        f'#include "{name}.h"',
        "",
        f"int32_t __tvm_ffi_{ENTRY}(void *self, void *args, int32_t num_args, void *result);",
        "",
        "/* Weights and constants: const, so the linker keeps them in flash. */",
        f"static const uint8_t weights[{max(len(compiled.weights), 1)}]"
        " __attribute__((aligned(16))) = {",
        f"  {_bytes_initializer(compiled.weights)}",
        "};",
        "",
        "/* Activations: one arena, offsets planned at compile time. */",
        f"static uint8_t arena[{max(compiled.plan.arena_bytes, 1)}] __attribute__((aligned(16)));",
        "",
        _signature(compiled, name),
        "{",
        f"  void *pointers[{count}] = {{"
        + ", ".join(f"(void *){c}" for _, _, _, c in io)
        + ", (void *)weights, (void *)arena};",
        f"  TVMFFIAny args[{count}];",
        "  TVMFFIAny result;",
        f"  for (int i = 0; i < {count}; ++i) {{",
        "    args[i].type_index = kTVMFFIOpaquePtr;",
        "    args[i].zero_padding = 0;",
        "    args[i].v_int64 = 0;",
        "    args[i].v_ptr = pointers[i];",
        "  }",
        "  result.type_index = kTVMFFINone;",
        f"  return __tvm_ffi_{ENTRY}(0, args, {count}, &result);",
        "}",
        "",
        "/* Input and output buffers for the firmware harness. */",
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
        "const tvmq_model_t tvmq_model = {",
        f'  "{_comment(model.name)}", "{compiled.build_id}",',
        f"  {len(graph.inputs)}u, {len(graph.outputs)}u, inputs, outputs,",
        f"  {compiled.plan.arena_bytes}u, run,",
        "};",
        "",
    ]
    return "\n".join(lines)


def _runtime_source(workspace: int) -> str:
    return f"""/* Generated by tvmq: what TVM's kernels expect of a runtime, without one. */
#include <stddef.h>
#include <stdint.h>

/* Kernels that need scratch memory take it from this static pool, stack-wise. */
#define TVMQ_WORKSPACE_BYTES {workspace}u
static uint8_t pool[TVMQ_WORKSPACE_BYTES + 1] __attribute__((aligned(16)));
static size_t pool_top;

void *TVMBackendAllocWorkspace(int device_type, int device_id, uint64_t size,
                               int dtype_code_hint, int dtype_bits_hint) {{
  size_t need = (size_t)((size + 15u) & ~(uint64_t)15u);
  (void)device_type; (void)device_id; (void)dtype_code_hint; (void)dtype_bits_hint;
  if (need > TVMQ_WORKSPACE_BYTES - pool_top) return NULL;
  void *block = &pool[pool_top];
  pool_top += need;
  return block;
}}

int TVMBackendFreeWorkspace(int device_type, int device_id, void *ptr) {{
  (void)device_type; (void)device_id;
  if (ptr == NULL) return -1;
  pool_top = (size_t)((uint8_t *)ptr - pool);
  return 0;
}}

/* TVM reports argument errors through this hook; there is no one to tell. */
void TVMFFIErrorSetRaisedFromCStrParts(const char *kind, const char **parts, int32_t count) {{
  (void)kind; (void)parts; (void)count;
}}
"""
