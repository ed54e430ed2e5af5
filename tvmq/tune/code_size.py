"""How much flash a kernel's schedule costs: its compiled code, measured per record.

Tuned schedules unroll and specialize; a few percent fewer instructions can
cost several times the code. Each kernel is compiled alone, as the target
compiles a model's kernels (the firmware's or the library's own Makefile and
flags), and its object's code and read-only data counted; the flash objective
(:mod:`tvmq.tune.apply`) compares a record's bytes with the default
schedule's. Constants are pointers into the weights, so a kernel's code does
not depend on their values: the kernel is compiled with every argument an input.
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import tvm

from tvmq.backend.graph import INPUT, Tensor
from tvmq.backend.registry import backend_for
from tvmq.backend.schedule import default_schedule
from tvmq.targets import Target
from tvmq.tune.tasks import WORKLOAD_ATTR, Task

SHF_WRITE, SHF_ALLOC, SHT_NOBITS = 0x1, 0x2, 8


def kernel_code_bytes(func: tvm.tirx.PrimFunc, target: Target) -> int:
    """Code and read-only data bytes of the scheduled kernel `func` on `target`."""
    from tvmq.backend.emit_c import emit_compiled
    from tvmq.tune.board import kernel_model

    func = func.without_attr(WORKLOAD_ATTR)
    arguments = [
        Tensor(f"a{i}", tuple(int(d) for d in p.ty.shape), str(p.ty.dtype), INPUT)
        for i, p in enumerate(func.params)
    ]
    task = Task("kernel", tvm.IRModule({"main": func}), 1, arguments)
    with tempfile.TemporaryDirectory(prefix="tvmq-code-") as scratch:
        directory = Path(scratch)
        compiled = kernel_model(task, func)
        emit_compiled(compiled, directory / "model")
        backend = backend_for(target).load()
        return _read_only_bytes(backend.build_kernels_object(compiled, target, directory))


def default_code_bytes(mod: tvm.IRModule, target: Target) -> int:
    """Code bytes of the default schedule of workload `mod`'s kernel."""
    func = mod["main"].without_attr(WORKLOAD_ATTR)
    return kernel_code_bytes(default_schedule(func).func, target)


def measure_database(directory: Path, target: Target, progress: bool = True) -> int:
    """Record in the database at `directory` the code bytes the flash objective
    reads: each kernel's default schedule, and its records fastest first up to
    the first that fits (a build never looks past it). Sizes already recorded
    are kept; the number of kernels compiled is returned."""
    from tqdm import tqdm

    from tvmq.tune.apply import unrolls_a_reduction, within_flash
    from tvmq.tune.database import RecordReader

    reader = RecordReader(directory, target)
    code, compiled = reader.code, 0
    for item in tqdm(reader.workloads(), desc="code bytes", unit="kernel", disable=not progress):
        if code.of_default(item.mod) is None:
            code.note_default(item.mod, default_code_bytes(item.mod, target))
            compiled += 1
        for record in reader.records(item.mod):
            if unrolls_a_reduction(record.trace):
                continue
            if code.of_record(record) is None:
                code.note_record(item.mod, record.trace, record_code_bytes(record, target))
                compiled += 1
                code.write(Path(directory))
            if within_flash(code.of_record(record), code.of_default(item.mod)):
                break
    code.write(Path(directory))
    return compiled


def record_code_bytes(record, target: Target) -> int:
    """Code bytes of a record's schedule of its workload's kernel."""
    from tvm import s_tir

    sch = s_tir.Schedule(record.workload.mod)
    record.trace.apply_to_schedule(sch, remove_postproc=True)
    return kernel_code_bytes(sch.mod["main"], target)


def _read_only_bytes(path: Path) -> int:
    """Sum of an ELF object's allocated, read-only sections (code, constants)."""
    data = path.read_bytes()
    order = "<" if data[5] == 1 else ">"  # EI_DATA
    if data[4] == 2:  # ELFCLASS64
        (table,) = struct.unpack_from(order + "Q", data, 0x28)
        entry, count = struct.unpack_from(order + "HH", data, 0x3A)
        header = order + "IIQQQQ"  # name, type, flags, address, offset, size
    else:
        (table,) = struct.unpack_from(order + "I", data, 0x20)
        entry, count = struct.unpack_from(order + "HH", data, 0x2E)
        header = order + "IIIIII"
    total = 0
    for index in range(count):
        _, kind, flags, _, _, size = struct.unpack_from(header, data, table + index * entry)
        if flags & SHF_ALLOC and not flags & SHF_WRITE and kind != SHT_NOBITS:
            total += size
    return total
