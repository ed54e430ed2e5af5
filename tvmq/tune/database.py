"""Where tuning records live: one database directory per target.

A build reads the user's database for the target first (see
:func:`user_directory`), then the one shipped with tvmq (:func:`shipped_directory`),
taking each kernel's records from the first that has them; ``tvmq tune`` writes
into the user's. The files are MetaSchedule's JSON database (``database_workload.json``,
``database_tuning_record.json``) plus ``tvmq_schedules.json`` saying which
target they are for and what their costs measure (instructions counted under
QEMU, or time on the device: the two never mix in one database) and
``tvmq_code_bytes.json``, the code size of each record's kernel and of the
kernel's default schedule, which the flash objective compares. Records of
every model tuned for a target merge into one database. Each commit rewrites
both files atomically (workloads first: records only point at workloads
already written, in a fixed order), so a run killed at any moment leaves a
database that loads, holding every record committed before the kill.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from pathlib import Path

import tvm
import tvm_ffi
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from tvmq.errors import TvmqError
from tvmq.fileio import write_atomically
from tvmq.resources import shipped_schedules_dir
from tvmq.scratch import scratch_directory
from tvmq.targets import Target

SCHEDULES_DIR = shipped_schedules_dir()
WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"
INFO = "tvmq_schedules.json"
CODE_BYTES = "tvmq_code_bytes.json"
ENVIRONMENT = "TVMQ_SCHEDULES"
FORMAT = "tvmq-schedules/1"
# The generation of micro-kernels a database was tuned against (its info's "kernels";
# 1 when absent): 2 added whole rows of pixels (odd rows, depthwise rows, row
# requantization), which records of generation 1 never chose between; 3 dense layers
# four rows per call on interleaved weights (DSP cores, tvmq.backend.dense).
KERNELS = 3
ROW_KERNELS = 2
MEASURES = {  # what a database's costs are -> how to say it
    "qemu-instructions": "instructions counted under QEMU",
    "wall-time": "times measured on the device",
}


def shipped_directory(target: Target) -> Path:
    """The database shipped with tvmq for `target` (read only)."""
    return SCHEDULES_DIR / target.name


def user_directory(target: Target) -> Path:
    """The user's database for `target`, where ``tvmq tune`` writes by default.

    ``$TVMQ_SCHEDULES/<target>`` when that is set; else the project's
    ``./schedules/<target>`` when the current directory has ``schedules/``;
    else ``$XDG_CACHE_HOME/tvmq/schedules/<target>`` (``~/.cache`` by default).
    Never inside the installed package.
    """
    if os.environ.get(ENVIRONMENT):
        return Path(os.environ[ENVIRONMENT]) / target.name
    if Path("schedules").is_dir():
        return Path("schedules") / target.name
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "tvmq" / "schedules" / target.name


default_directory = user_directory  # tune's --work-dir when none is given


def lookup_directories(target: Target) -> list[Path]:
    """Where a build looks for `target`'s records, in order: the user's, the shipped."""
    user, shipped = user_directory(target), shipped_directory(target)
    return [user] if user.resolve() == shipped.resolve() else [user, shipped]


def tuning_target(target: Target) -> tvm.target.Target:
    """The TVM target records are tuned and looked up for (MetaSchedule wants a core count)."""
    import os

    cores = (os.cpu_count() or 1) if target.is_host else 1
    return tvm.target.Target({**target.tvm_config(), "num-cores": cores})


def default_measure(target: Target) -> str:
    """What the costs of a database written before it said so measure."""
    return "wall-time" if target.is_host else "qemu-instructions"


def tuned_for_this_cpu(info: dict, target: Target) -> bool:
    """Whether a database's records were tuned for the CPU `target` builds for: a host
    database records the CPU (``mcpu``) it was tuned on; one without says nothing."""
    return "mcpu" not in info or info["mcpu"] == target.tvm_config().get("mcpu")


def _check_info(directory: Path, target: Target) -> dict:
    info_path = directory / INFO
    try:
        info = json.loads(info_path.read_text())
    except FileNotFoundError:
        raise TvmqError(
            f"{directory}: database files without {INFO}: not a tvmq schedule database"
        ) from None
    except (OSError, ValueError) as error:
        raise TvmqError(f"{info_path}: unreadable ({error})") from error
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise TvmqError(f"{info_path}: not a tvmq schedule database (format {FORMAT} expected)")
    if info.get("target") != target.name:
        raise TvmqError(
            f"{directory}: records for target '{info.get('target')}', not '{target.name}'"
        )
    info.setdefault("measure", default_measure(target))
    if info["measure"] not in MEASURES:
        raise TvmqError(f"{info_path}: unknown measure '{info['measure']}'")
    return info


def _read_lines(path: Path) -> list:
    """Every line of a database file, parsed; each must be JSON (MetaSchedule
    would abort on one that is not)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise TvmqError(f"{path}: missing; the database is incomplete") from None
    except (OSError, UnicodeDecodeError) as error:
        raise TvmqError(f"{path}: unreadable ({error})") from error
    parsed = []
    for number, line in enumerate(lines, start=1):
        try:
            parsed.append(json.loads(line))
        except ValueError as error:
            raise TvmqError(f"{path}: corrupted at line {number} ({error})") from error
    return parsed


def _register_intrinsics(workloads: Path, target: Target) -> None:
    """Register the SIMD intrinsics the records' traces may name: MetaSchedule
    replays every trace while it loads a database."""
    for line in workloads.read_text().splitlines():
        _workload(json.loads(line), workloads, target)


def _workload(line: list, workloads: Path, target: Target) -> ms.database.Workload:
    """One line of the workload file as a workload, its intrinsics registered."""
    from tvmq.tune.space import offers_mmla, variants
    from tvmq.tune.tasks import WORKLOAD_ATTR

    try:
        workload = ms.database.Workload.from_json(line)
    except Exception as error:  # TVM's own error types for a malformed module
        raise TvmqError(f"{workloads}: not a MetaSchedule workload ({error})") from error
    func = workload.mod["main"]
    if func.attrs is not None and WORKLOAD_ATTR in func.attrs:
        variants(func, offers_mmla(target))
    return workload


def workload_key(mod: tvm.IRModule) -> str:
    """A workload's key in the database files: its structural hash, unsigned."""
    return str(tvm_ffi.structural_hash(mod) & 0xFFFFFFFFFFFFFFFF)


def trace_key(trace) -> str:
    """A record's trace, named by a digest of its text, decisions included (the
    same after a reload)."""
    text = "\n".join(str(line) for line in trace.as_python(remove_postproc=True))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class CodeBytes:
    """Code bytes (text and read-only data) of each kernel's default schedule and
    of each record's schedule, as the target compiles them: what the flash
    objective compares. Keyed by workload and trace, so records keep their
    sizes however the database files are rewritten."""

    def __init__(self, default: dict[str, int] | None = None, records=None):
        self.default: dict[str, int] = default or {}
        self.records: dict[str, dict[str, int]] = records or {}

    @classmethod
    def read(cls, directory: Path) -> CodeBytes:
        path = directory / CODE_BYTES
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text())
            return cls(dict(data["default"]), {k: dict(v) for k, v in data["records"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise TvmqError(f"{path}: unreadable ({error})") from error

    def of_record(self, record: ms.database.TuningRecord) -> int | None:
        return self.records.get(workload_key(record.workload.mod), {}).get(trace_key(record.trace))

    def of_default(self, mod: tvm.IRModule) -> int | None:
        return self.default.get(workload_key(mod))

    def note_record(self, mod: tvm.IRModule, trace, size: int) -> None:
        self.records.setdefault(workload_key(mod), {})[trace_key(trace)] = int(size)

    def note_default(self, mod: tvm.IRModule, size: int) -> None:
        self.default[workload_key(mod)] = int(size)

    def write(self, directory: Path) -> None:
        data = {"default": self.default, "records": self.records}
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        write_atomically(directory / CODE_BYTES, lambda f: f.write(text.encode()))
        (directory / CODE_BYTES).chmod(0o644)


class RecordReader:
    """A database read kernel by kernel, for builds.

    Loading a whole database replays every record's trace (seconds per hundred
    records); a build needs only the records of its own kernels, so the files
    are indexed by workload and a workload's records are made when asked for.
    """

    def __init__(self, directory: Path, target: Target):
        self.directory, self.target = Path(directory), target
        files = [self.directory / WORKLOADS, self.directory / RECORDS]
        self.exists = any(f.exists() for f in files)
        self.code = CodeBytes()
        self.kernels = KERNELS
        self._workloads: dict[str, list] = {}
        self._records: dict[int, list] = {}
        if not self.exists:
            return
        self.info = _check_info(self.directory, target)
        self.kernels = int(self.info.get("kernels", 1))
        if not tuned_for_this_cpu(self.info, target):
            self.exists = False  # times from another CPU say nothing about this one
            return
        lines = _read_lines(files[0])
        self._workloads = {str(int(line[0]) & 0xFFFFFFFFFFFFFFFF): line for line in lines}
        self._index = {str(int(line[0]) & 0xFFFFFFFFFFFFFFFF): i for i, line in enumerate(lines)}
        for line in _read_lines(files[1]):
            self._records.setdefault(line[0], []).append(line[1])
        self.code = CodeBytes.read(self.directory)

    def workloads(self) -> list[ms.database.Workload]:
        """Every workload of the database (their intrinsics registered)."""
        path = self.directory / WORKLOADS
        return [_workload(line, path, self.target) for line in self._workloads.values()]

    def has(self, mod: tvm.IRModule) -> bool:
        return workload_key(mod) in self._workloads

    def records(self, mod: tvm.IRModule) -> list[ms.database.TuningRecord]:
        """The records of workload `mod`, fastest first (as MetaSchedule ranks them)."""
        key = workload_key(mod)
        if key not in self._workloads:
            return []
        workload = _workload(self._workloads[key], self.directory / WORKLOADS, self.target)
        if not tvm_ffi.structural_equal(workload.mod, mod):
            return []  # a hash collision: another kernel
        try:
            records = [
                ms.database.TuningRecord.from_json(line, workload)
                for line in self._records.get(self._index[key], [])
            ]
        except Exception as error:  # TVM raises its own error types for malformed records
            said = str(error).strip()
            first = said.splitlines()[-1] if said else type(error).__name__
            raise TvmqError(
                f"{self.directory}: not a valid MetaSchedule database ({first})"
            ) from error
        timed = [r for r in records if r.run_secs]
        return sorted(timed, key=lambda r: sum(float(s) for s in r.run_secs) / len(r.run_secs))


def load_records(directory: Path, target: Target) -> list[ms.database.TuningRecord]:
    """Every record of the database in `directory` (none when there is none yet).

    A database for another target, or one whose files are damaged, is refused
    with one line naming the file.
    """
    return _load(directory, target)[1]


def _load(directory: Path, target: Target) -> tuple[dict | None, list[ms.database.TuningRecord]]:
    """The database's checked info (None when there is no database yet) and records."""
    files = [directory / WORKLOADS, directory / RECORDS]
    if not any(f.exists() for f in files):
        return None, []
    info = _check_info(directory, target)
    if not tuned_for_this_cpu(info, target):
        return info, []
    for path in files:
        _read_lines(path)
    _register_intrinsics(files[0], target)
    try:
        database = ms.database.JSONDatabase(
            path_workload=str(files[0]), path_tuning_record=str(files[1]), allow_missing=False
        )
        return info, list(database.get_all_tuning_records())
    except Exception as error:  # TVM raises its own error types for malformed records
        first = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise TvmqError(f"{directory}: not a valid MetaSchedule database ({first})") from error


@derived_object
class ScheduleDatabase(ms.database.PyDatabase):
    """MetaSchedule's in-memory database, written through to `directory` on each commit."""

    def __init__(self, directory: Path, target: Target):
        super().__init__()
        self.directory, self.target = Path(directory), target
        self.memory = ms.database.MemoryDatabase()
        self.records: list[ms.database.TuningRecord] = []
        self.dropped = 0  # records whose trace does not replay on their stored workload
        self.code = CodeBytes.read(self.directory)
        info, records = _load(self.directory, target)
        for record in records:
            self.commit_workload(record.workload.mod)
            self._add(record)
        # A key of MEASURES; None while the database is empty.
        self.measure = info["measure"] if self.records else None

    def claim(self, measure: str) -> None:
        """Record costs of kind `measure` (a key of MEASURES) from now on; refused
        when the database holds the other kind, since costs of two kinds do not
        compare (a Cortex-A's instruction count at 1 GHz vs its real time)."""
        if self.measure not in (None, measure):
            raise TvmqError(
                f"{self.directory}: holds {MEASURES[self.measure]}, which do not compare "
                f"with {MEASURES[measure]}: tune into another --work-dir"
            )
        self.measure = measure

    def has_workload(self, mod: tvm.IRModule) -> bool:
        return self.memory.has_workload(mod)

    def commit_workload(self, mod: tvm.IRModule) -> ms.database.Workload:
        return self.memory.commit_workload(mod)

    def commit_tuning_record(self, record: ms.database.TuningRecord) -> None:
        """Keep `record` if its trace replays on the workload it is stored under.

        Structurally equal kernels of two models are one workload, but a trace
        names blocks, and block names differ between models (``lv281_red`` vs
        ``lv273_red``): such a record could never be applied, and MetaSchedule
        refuses to load a database holding one. It is dropped (``self.dropped``).
        """
        stored = self.memory.commit_workload(record.workload.mod)
        if not _replays(record.trace, stored.mod):
            self.dropped += 1
            return
        self._add(ms.database.TuningRecord(
            record.trace, stored, record.run_secs, record.target, record.args_info
        ))  # fmt: skip
        self.save()

    def get_top_k(self, workload: ms.database.Workload, top_k: int):
        return self.memory.get_top_k(workload, top_k)

    def get_all_tuning_records(self):
        return list(self.records)

    def query_tuning_record(self, mod, target, workload_name):
        return self.memory.query_tuning_record(mod, target, workload_name)

    def query_schedule(self, mod, target, workload_name):
        return self.memory.query_schedule(mod, target, workload_name)

    def query_ir_module(self, mod, target, workload_name):
        return self.memory.query_ir_module(mod, target, workload_name)

    def __len__(self) -> int:
        return len(self.records)

    def _add(self, record: ms.database.TuningRecord) -> None:
        self.memory.commit_tuning_record(record)
        self.records.append(record)

    def count(self, mod: tvm.IRModule) -> int:
        """Records (trials measured) of the workload `mod`."""
        if not self.memory.has_workload(mod):
            return 0
        key = id_key(self.memory.commit_workload(mod))
        return sum(1 for r in self.records if id_key(r.workload) == key)

    def save(self) -> None:
        """Write the database atomically: info, workloads, then records.

        TVM's own JSONDatabase writes the files (in a scratch directory beside
        them), so they are exactly what MetaSchedule reads; they are then
        renamed into place. Only workloads with records are kept, in the order
        of their first record: an append-only order, so the records already on
        disk keep their workload indices between the two renames.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        self.code.write(self.directory)  # first: a record on disk has its size
        info = {"format": FORMAT, "target": self.target.name, "tvm": tvm.__version__}
        info["kernels"] = KERNELS
        info["measure"] = self.measure or default_measure(self.target)
        if "mcpu" in self.target.tvm:
            info["mcpu"] = self.target.tvm_config()["mcpu"]
        text = json.dumps(info, indent=2) + "\n"
        write_atomically(self.directory / INFO, lambda f: f.write(text.encode()))
        with scratch_directory(".save-", self.directory) as scratch:
            staged = ms.database.JSONDatabase(
                path_workload=str(scratch / WORKLOADS),
                path_tuning_record=str(scratch / RECORDS),
            )
            used: dict[str, tvm.IRModule] = {}
            for record in self.records:
                used.setdefault(id_key(record.workload), record.workload.mod)
            for mod in used.values():
                staged.commit_workload(mod)
            for record in self.records:
                staged.commit_tuning_record(record)
            _compact_workloads(scratch / WORKLOADS)
            for name in (WORKLOADS, RECORDS):
                (scratch / name).chmod(0o644)  # shipped in the repository, read by all
                os.replace(scratch / name, self.directory / name)
        (self.directory / INFO).chmod(0o644)


def _compact_workloads(path: Path) -> None:
    """Rewrite MetaSchedule's workload file without the indentation of its modules.

    Each line is [structural hash, base64 of (uint64 length, JSON graph of the
    module)]; TVM indents that JSON, which doubles the shipped files. The same
    graph without whitespace loads into the same module.
    """
    lines = []
    for line in path.read_text().splitlines():
        key, encoded = json.loads(line)
        graph = base64.b64decode(encoded)[struct.calcsize("<Q") :]
        text = json.dumps(json.loads(graph), separators=(",", ":")).encode()
        packed = base64.b64encode(struct.pack("<Q", len(text)) + text).decode()
        lines.append(json.dumps([key, packed]))
    path.write_text("".join(line + "\n" for line in lines))


def _replays(trace, mod: tvm.IRModule) -> bool:
    from tvm import s_tir

    try:
        trace.apply_to_schedule(s_tir.Schedule(mod), remove_postproc=False)
    except Exception:  # TVM's own error types: the trace names what the kernel lacks
        return False
    return True


def id_key(workload: ms.database.Workload) -> int:
    """A workload's structural hash (of its module)."""
    return tvm_ffi.structural_hash(workload.mod)
