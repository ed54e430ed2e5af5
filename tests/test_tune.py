"""Auto-tuning: MetaSchedule searches, records land in a database, builds apply them.

Tiny trial counts: these tests check that tuning runs, resumes, measures on the
emulated board and over RPC, and that tuned builds compute exactly what the
untuned ones do; how much faster tuned code is lives in bench/tune_cost.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tvmq.errors import TvmqError
from tvmq.examples import DIGITS_MODEL, digits_split
from tvmq.targets import load_target
from tvmq.tune.database import RECORDS, SCHEDULES_DIR, load_records

EXIT_USER_ERROR = 2
REPO = Path(__file__).resolve().parents[1]
needs_board = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The bundled example, quantized, as a model and as a .tvmq file."""
    from tvmq.frontend import load_model
    from tvmq.frontend.saved import save_model
    from tvmq.quantize.quantizer import quantize_model

    calibration, _ = digits_split("train")
    quantized = quantize_model(load_model(DIGITS_MODEL), [[x] for x in calibration[:50]])
    path = tmp_path_factory.mktemp("model") / "digits.tvmq"
    save_model(quantized, path)
    return quantized, path


def tvmq(*args, tmpdir: Path | None = None, **kwargs) -> subprocess.Popen:
    """`tvmq ARGS` in a subprocess; `tmpdir` takes its temporary files (one it cannot
    clean, being killed with SIGKILL, stays in the test's directory)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO)}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return subprocess.Popen(
        [sys.executable, "-m", "tvmq", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs,
    )  # fmt: skip


def assert_user_error(process: subprocess.Popen, *words: str) -> None:
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == EXIT_USER_ERROR, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tvmq: error: "), stderr
    assert all(word in lines[0] for word in words), lines[0]


@pytest.mark.parametrize("target_name", ["qemu-cortex-m4", "armv8.2-a-dotprod-i8mm"])
def test_board_search_explores_every_simd_variant(digits, target_name):
    """MetaSchedule's own search over a convolution's space (random cost model,
    made-up costs: no board) proposes new candidates round after round until the
    space is spent; they cover every SIMD form (channels per call, one or two
    pixels, and on i8mm pixel pairs with and without SMMLA), and each
    candidate's trace replays to the same kernel."""
    import random
    import re

    import tvm_ffi
    from tvm import s_tir
    from tvm.s_tir import meta_schedule as ms

    from tvmq.tune.database import tuning_target
    from tvmq.tune.space import mcu_space, offers_mmla, variants
    from tvmq.tune.tuner import TRIALS_PER_ROUND, search_strategy, tunable_tasks

    model, _ = digits
    target = load_target(target_name)
    mmla_choice = offers_mmla(target)
    conv = next(t for t in tunable_tasks(model, target) if t.name == "k4_conv2d1")
    context = ms.TuneContext(
        mod=conv.mod,
        target=tuning_target(target),
        space_generator=mcu_space(from_default=False, mmla_choice=mmla_choice),
        search_strategy=search_strategy(),
        num_threads=1,
        rand_state=1,
    )
    spaces = context.generate_design_space()
    strategy = context.search_strategy
    strategy.pre_tuning(64, TRIALS_PER_ROUND, spaces, ms.database.MemoryDatabase(),
                        ms.cost_model.RandomModel())  # fmt: skip
    forms, kernels, rounds, costs = set(), [], 0, random.Random(0)
    while candidates := strategy.generate_measure_candidates():
        rounds += 1
        for candidate in candidates:
            kernel = candidate.sch.mod["main"]
            assert not any(tvm_ffi.structural_equal(kernel, k) for k in kernels)
            kernels.append(kernel)
            # The intrinsic each candidate's tensorization names:
            # tvmq_dot_s8_<pixels>x<lanes>[_no_mmla]_...
            trace = str(candidate.sch.trace)
            forms |= set(re.findall(r"tvmq_dot_s8_(\d)x(\d)(_no_mmla)?_", trace))
            replay = s_tir.Schedule(conv.mod)
            candidate.sch.trace.apply_to_schedule(replay, remove_postproc=False)
            assert tvm_ffi.structural_equal(replay.mod["main"], kernel)
        results = [ms.runner.RunnerResult([costs.random()], None) for _ in candidates]
        strategy.notify_runner_results(candidates, results)
    expected = {
        (str(v.pixels), str(v.lanes), "" if v.mmla else "_no_mmla")
        for v in variants(conv.mod["main"], mmla_choice)
    }
    assert forms == expected and len(expected) >= (6 if mmla_choice else 4), forms
    assert rounds > 1 and len(kernels) > len(expected)  # the outer split varies too


@needs_board
def test_tune_on_board_survives_kill_resumes_and_builds_identically(digits, tmp_path):
    """Kill -9 mid-run leaves a database that loads; the same command continues
    from it; the tuned firmware's outputs equal the untuned one's and the host's."""
    from tvmq.backend.mcu import build_mcu
    from tvmq.tune.apply import TunedSchedules

    model, path = digits
    target = load_target("qemu-cortex-m4")
    work = tmp_path / "db"
    command = ["tune", path, "--target", target.name, "--trials", 6, "--work-dir", work]
    first = tvmq(*command, "--seed", 1, tmpdir=tmp_path)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and first.poll() is None:
        if (work / RECORDS).is_file() and (work / RECORDS).read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()
    first.send_signal(signal.SIGKILL)
    first.communicate()
    recorded = len(load_records(work, target))
    assert 1 <= recorded < 6

    second = tvmq(*command, "--seed", 2)
    stdout, stderr = second.communicate(timeout=300)
    assert second.returncode == 0, stderr
    assert f"{recorded} trials already recorded" in stdout
    assert len(load_records(work, target)) >= 6

    schedules = TunedSchedules(target, work, objective="speed")
    inputs, _ = digits_split("test")
    host = model.build("host")
    with build_mcu(model, target, schedules) as tuned, build_mcu(model, target) as untuned:
        assert schedules.applied >= 1
        for x in inputs[:3]:
            expected = host(x)
            for got, plain, reference in zip(tuned(x), untuned(x), expected, strict=True):
                np.testing.assert_array_equal(got, plain)
                np.testing.assert_array_equal(got, reference)


@pytest.mark.skipif(
    not (shutil.which("aarch64-linux-gnu-gcc") and shutil.which("qemu-aarch64")),
    reason="aarch64-linux-gnu-gcc and qemu-aarch64 are needed",
)
def test_tune_cortex_a_counts_instructions_and_builds_identically(digits, tmp_path):
    """rpi5 candidates run as one-kernel programs under qemu-aarch64; the library
    built with the records computes what the host integer model does."""
    from tvmq.backend.linux import build_linux
    from tvmq.tune.apply import TunedSchedules
    from tvmq.tune.database import CodeBytes

    model, path = digits
    target = load_target("rpi5")
    work = tmp_path / "db"
    process = tvmq("tune", path, "--target", "rpi5", "--trials", 4, "--seed", 1, "--work-dir", work)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "instructions" in stdout
    records = load_records(work, target)
    assert len(records) >= 4
    costs = [float(s) for r in records for s in r.run_secs]
    assert all(c > 0 for c in costs) and len(set(costs)) > 1  # instructions, not a constant
    code = CodeBytes.read(work)  # the flash objective's figures, as the library compiles them
    assert all(code.of_record(r) > 0 for r in records) and code.of_default(records[0].workload.mod)
    schedules = TunedSchedules(target, work, objective="speed")
    inputs, _ = digits_split("test")
    host = model.build("host")
    with build_linux(model, target, schedules) as tuned:
        assert schedules.applied >= 1
        for x in inputs[:3]:
            for got, expected in zip(tuned(x), host(x), strict=True):
                np.testing.assert_array_equal(got, expected)


def _sum_kernel(name: str):
    import tvm
    from tvm import te

    a = te.placeholder((64,), "int32", name="a")
    k = te.reduce_axis((0, 64), name="k")
    out = te.compute((1,), lambda _: te.sum(a[k], axis=k), name=name)
    return tvm.IRModule({"main": te.create_prim_func([a, out])})


def _split_record(mod, block: str):
    import tvm
    from tvm import s_tir
    from tvm.s_tir import meta_schedule as ms

    sch = s_tir.Schedule(mod)
    sch.split(sch.get_loops(sch.get_sblock(block))[-1], [None, 4])
    return ms.database.TuningRecord(
        sch.trace, ms.database.Workload(mod), [1e-6], tvm.target.Target("llvm")
    )


def test_record_naming_blocks_its_stored_kernel_lacks_is_dropped(tmp_path):
    """Two models' equal kernels are one workload; a trace naming the second's blocks
    cannot replay on the first's, so it is not stored (the database stays loadable)."""
    from tvmq.tune.database import ScheduleDatabase

    target = load_target("host")
    database = ScheduleDatabase(tmp_path, target)
    database.commit_tuning_record(_split_record(_sum_kernel("sum_a"), "sum_a"))
    database.commit_tuning_record(_split_record(_sum_kernel("sum_b"), "sum_b"))
    assert (len(database), database.dropped) == (1, 1)
    assert len(load_records(tmp_path, target)) == 1


def test_damaged_or_foreign_database_is_a_one_line_error(digits, tmp_path):
    """A write cut short, another target's records, files that are not ours: one
    line naming the problem, before any tuning."""
    _, path = digits
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    info = {"format": "tvmq-schedules/1", "target": "qemu-cortex-m4"}
    (damaged / "tvmq_schedules.json").write_text(json.dumps(info))
    (damaged / "database_workload.json").write_text('["1", "AAAA"]\n')
    (damaged / RECORDS).write_text('[0, [[[["GetSBlock", [], ["ro')  # a write cut short
    assert_user_error(
        tvmq("tune", path, "--target", "qemu-cortex-m4", "--trials", 1, "--work-dir", damaged),
        str(damaged / RECORDS), "corrupted at line 1",
    )  # fmt: skip
    with pytest.raises(TvmqError, match="for target 'qemu-cortex-m4', not 'qemu-cortex-m7'"):
        load_records(damaged, load_target("qemu-cortex-m7"))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / RECORDS).write_text("[0, 1]\n")
    assert_user_error(
        tvmq("tune", path, "--target", "qemu-cortex-m4", "--trials", 1, "--work-dir", foreign),
        "not a tvmq schedule database",
    )  # fmt: skip


def test_runner_must_fit_the_target(digits, tmp_path):
    _, path = digits
    assert_user_error(
        tvmq("tune", path, "--target", "qemu-cortex-m4", "--trials", 1, "--runner", "local",
             "--work-dir", tmp_path),
        "--runner board",
    )  # fmt: skip
    assert_user_error(
        tvmq("tune", path, "--target", "host", "--trials", 1, "--runner", "rpc",
             "--work-dir", tmp_path),
        "--tracker",
    )  # fmt: skip
    assert_user_error(
        tvmq("tune", path, "--target", "rpi5", "--trials", 1, "--runner", "local",
             "--work-dir", tmp_path),
        "rpi5", "--runner board", "--runner rpc",
    )  # fmt: skip
    assert_user_error(
        tvmq("tune", path, "--target", "rpi5", "--trials", 1, "--runner", "rpc",
             "--tracker", "127.0.0.1:1", "--work-dir", tmp_path),
        "--tracker 127.0.0.1:1", "no RPC tracker answers",
    )  # fmt: skip


def test_rpc_farm_tunes_the_host(digits, tmp_path):
    """A tracker and two servers on loopback measure the candidates of a small
    task; the host build with its records computes what the untuned one does."""
    from tvm import rpc
    from tvm.rpc.tracker import Tracker

    from tvmq.tune.apply import build_host_tuned
    from tvmq.tune.database import ScheduleDatabase
    from tvmq.tune.tasks import extract_tasks
    from tvmq.tune.tuner import tune_tasks

    model, _ = digits
    target = load_target("host")
    pool = [t for t in extract_tasks(model, target) if t.name == "max_pool2d"]
    tracker = Tracker(host="127.0.0.1", port=9190, port_end=9290, silent=True)
    servers = [
        rpc.Server(host="127.0.0.1", port=9300, port_end=9400, key="tvmq-test",
                   tracker_addr=("127.0.0.1", tracker.port), silent=True)
        for _ in range(2)
    ]  # fmt: skip
    try:
        database = ScheduleDatabase(tmp_path / "db", target)
        result = tune_tasks(
            pool, target, 3, database, "rpc", tracker=f"127.0.0.1:{tracker.port}",
            key="tvmq-test", seed=1, progress=False,
        )  # fmt: skip
    finally:
        for server in servers:
            server.terminate()
        tracker.terminate()
    assert result.trials_run >= 3
    assert result.best_seconds and all(0 < s < 1 for s in result.best_seconds.values())
    tuned, records = build_host_tuned(model, target, tmp_path / "db")
    assert records >= 3
    host = model.build("host")
    inputs, _ = digits_split("test")
    for x in inputs[:5]:
        for got, expected in zip(tuned(x), host(x), strict=True):
            np.testing.assert_array_equal(got, expected)


LINUX_BOARD = """\
name = "this-machine-board"
kind = "cortex-a"
description = "this machine as a Linux board: a stock TVM RPC server on loopback"

[tvm]
kind = "llvm"
mtriple = "x86_64-linux-gnu"

[toolchain]
cc = "cc"
ar = "ar"
cflags = ["-O2"]
emulator = []
"""


def wait_for_key(port: int, key: str) -> None:
    """Until a server has registered `key` at the loopback tracker on `port`."""
    from tvm import rpc

    deadline = time.monotonic() + 30
    while key not in rpc.connect_tracker("127.0.0.1", port).summary()["queue_info"]:
        assert time.monotonic() < deadline, f"no server registered '{key}'"
        time.sleep(0.2)


def test_rpc_board_times_cortex_a_candidates_and_builds_identically(digits, tmp_path):
    """A Cortex-A target tuned on a board's stock TVM RPC server (tracker and
    server on loopback; the board is this machine, built with its own cc, as no
    aarch64 TVM runtime exists here): each candidate is uploaded as a TVM module
    and timed there; the build with the records computes what the host does; the
    records' wall times never mix with QEMU instruction counts."""
    from tvm import rpc
    from tvm.rpc.tracker import Tracker

    from tvmq.backend.linux import build_linux
    from tvmq.tune.apply import TunedSchedules
    from tvmq.tune.database import ScheduleDatabase
    from tvmq.tune.tuner import tunable_tasks, tune_tasks

    model, _ = digits
    (tmp_path / "board.toml").write_text(LINUX_BOARD)
    target = load_target(tmp_path / "board.toml")
    first = tunable_tasks(model, target)[:1]
    tracker = Tracker(host="127.0.0.1", port=9190, port_end=9290, silent=True)
    server = rpc.Server(host="127.0.0.1", port=9300, port_end=9400, key="board",
                        tracker_addr=("127.0.0.1", tracker.port), silent=True)  # fmt: skip
    address = f"127.0.0.1:{tracker.port}"
    try:
        wait_for_key(tracker.port, "board")
        database = ScheduleDatabase(tmp_path / "db", target)
        unknown = r"no board registered under key 'rpi5' \(keys: board\)"
        with pytest.raises(TvmqError, match=unknown):
            tune_tasks(first, target, 4, database, "rpc", tracker=address, key="rpi5")
        result = tune_tasks(
            first, target, 4, database, "rpc", tracker=address, key="board", seed=1,
            progress=False,
        )  # fmt: skip
    finally:
        server.terminate()
        tracker.terminate()
    assert result.trials_run >= 4 and not result.errors, result.errors
    assert all(0 < s < 0.01 for s in result.best_seconds.values())
    reloaded = ScheduleDatabase(tmp_path / "db", target)
    assert reloaded.measure == "wall-time"
    with pytest.raises(TvmqError, match=r"do not compare .* another --work-dir"):
        tune_tasks(first, target, 8, reloaded, "board")
    schedules = TunedSchedules(target, tmp_path / "db", objective="speed")
    inputs, _ = digits_split("test")
    host = model.build("host")
    with build_linux(model, target, schedules) as tuned:
        assert schedules.applied == 1
        for x in inputs[:5]:
            for got, expected in zip(tuned(x), host(x), strict=True):
                np.testing.assert_array_equal(got, expected)


SHIPPED = sorted(p.name for p in SCHEDULES_DIR.iterdir() if (p / RECORDS).is_file())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_database_applies_and_keeps_outputs(digits, name):
    """Every shipped database loads, applies to the example, and changes no output."""
    model, _ = digits
    target = load_target(name)
    inputs, _ = digits_split("test")
    host = model.build("host")
    info = json.loads((SCHEDULES_DIR / name / "tvmq_schedules.json").read_text())
    assert info["target"] == name
    if target.kind == "host":
        from tvmq.tune.apply import build_host_tuned

        tuned, records = build_host_tuned(model, target)
        assert records > 0
        for x in inputs[:5]:
            for got, expected in zip(tuned(x), host(x), strict=True):
                np.testing.assert_array_equal(got, expected)
        return
    if not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")):
        pytest.skip("arm-none-eabi-gcc and qemu-system-arm are needed")
    from tvmq.backend.mcu import build_mcu
    from tvmq.tune.apply import TunedSchedules

    schedules = TunedSchedules(target, objective="speed")
    with build_mcu(model, target, schedules) as tuned:
        assert schedules.applied >= 1
        for x in inputs[:3]:
            for got, expected in zip(tuned(x), host(x), strict=True):
                np.testing.assert_array_equal(got, expected)


# -- every build applies the tuned records, within the flash objective -------------------


def _cli(capsys, *args) -> str:
    """stdout of `tvmq ARGS` run in this process (exit status 0 asserted)."""
    from tvmq.cli import main

    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert status == 0, err
    return out


def _tuned_line(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith("tuned schedules:"))


@needs_board
def test_run_compile_and_the_api_build_the_same_tuned_firmware(digits, tmp_path, capsys):
    """`tvmq run` applies the shipped records as `tvmq compile` does (it did not):
    the same kernels tuned and the same firmware, which the Python API builds
    too; --no-tuned builds the default schedules' firmware; under the flash
    objective the tuned firmware is at most 5 % larger than the default one. On the
    M55: the shipped M4/M7 databases predate the row kernels, so digits' row-calling
    kernels take no records there and the tuned firmware is the default one."""
    from tvmq.backend.aot import lower_model
    from tvmq.backend.mcu import elf_sizes
    from tvmq.tune.apply import schedules_for

    model, path = digits
    target = load_target("qemu-cortex-m55")
    compiled = _cli(capsys, "compile", path, "--target", target.name, "-o", tmp_path / "tuned")
    line = _tuned_line(compiled)
    applied, kernels = (int(w) for w in line.split()[2:5:2])
    assert applied > 0 and kernels > applied, line
    inputs, _ = digits_split("test")
    np.save(tmp_path / "x.npy", inputs[0])
    ran = _cli(capsys, "run", path, "--input", tmp_path / "x.npy", "--target", target.name)
    assert _tuned_line(ran) == line
    manifest = json.loads((tmp_path / "tuned" / "manifest.json").read_text())
    memory = json.loads((tmp_path / "tuned" / "memory.json").read_text())
    with model.build(target.name) as api:
        assert api.compiled.build_id == manifest["build_id"]
        assert elf_sizes(api.firmware)["flash"] == memory["flash"]
    untuned = _cli(
        capsys, "compile", path, "--target", target.name, "-o", tmp_path / "plain", "--no-tuned"
    )
    assert _tuned_line(untuned) == "tuned schedules: off (--no-tuned); default schedules"
    plain = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    assert (
        plain["build_id"]
        == lower_model(model, schedules_for(target, tuned=False), target.tvm["mcpu"]).build_id
        != manifest["build_id"]
    )
    plain_flash = json.loads((tmp_path / "plain" / "memory.json").read_text())["flash"]
    assert memory["flash"] <= plain_flash * 1.05


@pytest.fixture(scope="module")
def tuned_database(digits, tmp_path_factory):
    """A database written by a tiny `tvmq tune` on the emulated M4."""
    from tvmq.cli import main

    _, path = digits
    work = tmp_path_factory.mktemp("tuned") / "db"
    command = ["tune", path, "--target", "qemu-cortex-m4", "--trials", 2, "--work-dir", work]
    assert main([str(a) for a in [*command, "--seed", 1]]) == 0
    return work


@needs_board
def test_tune_records_code_bytes_and_schedules_dir_applies_them(
    digits, tuned_database, tmp_path, capsys
):
    """Each record tune writes carries its kernel's code bytes (as a rebuild measures
    them) next to the default schedule's; --schedules DIR builds with them."""
    from tvmq.tune.code_size import default_code_bytes, record_code_bytes
    from tvmq.tune.database import CODE_BYTES, CodeBytes

    target = load_target("qemu-cortex-m4")
    records = load_records(tuned_database, target)
    code = CodeBytes.read(tuned_database)
    assert records and (tuned_database / CODE_BYTES).is_file()
    record = records[0]
    assert code.of_record(record) == record_code_bytes(record, target)
    assert code.of_default(record.workload.mod) == default_code_bytes(record.workload.mod, target)
    _, path = digits
    out = _cli(
        capsys, "compile", path, "--target", target.name, "-o", tmp_path / "fw",
        "--schedules", tuned_database, "--objective", "speed",
    )  # fmt: skip
    line = _tuned_line(out)
    assert line.split()[2] != "0" and str(tuned_database) in line, line


@needs_board
def test_flash_objective_refuses_a_record_that_grows_code(digits, tuned_database, tmp_path):
    """A record whose kernel's code exceeds the default's by over 5 % is applied only
    under --objective speed; one within 5 % is applied by default."""
    from tvmq.backend.aot import lower_model
    from tvmq.tune.apply import TunedSchedules
    from tvmq.tune.database import CODE_BYTES

    model, _ = digits
    target = load_target("qemu-cortex-m4")
    database = tmp_path / "db"
    shutil.copytree(tuned_database, database)
    sizes = json.loads((database / CODE_BYTES).read_text())

    def applied(factor: float, objective: str = "flash") -> TunedSchedules:
        for key, records in sizes["records"].items():
            for trace in records:
                records[trace] = int(sizes["default"][key] * factor)
        (database / CODE_BYTES).write_text(json.dumps(sizes))
        schedules = TunedSchedules(target, database, objective)
        lower_model(model, schedules)
        return schedules

    fits, grows, fast = applied(1.05), applied(1.06), applied(1.06, "speed")
    assert fits.applied > 0 and fits.kept_small == 0
    assert grows.applied == 0 and grows.kept_small == fits.applied
    assert "objective flash" in grows.summary()
    assert fast.applied == fits.applied


def test_default_database_is_the_users(monkeypatch, tmp_path):
    """$TVMQ_SCHEDULES, else the project's ./schedules, else the user's cache: never
    the installed package; builds fall back to the shipped records after it."""
    from tvmq.tune.database import lookup_directories, shipped_directory, user_directory

    target = load_target("qemu-cortex-m4")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TVMQ_SCHEDULES", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert user_directory(target) == tmp_path / "cache" / "tvmq" / "schedules" / target.name
    (tmp_path / "schedules").mkdir()
    assert user_directory(target) == Path("schedules") / target.name
    monkeypatch.setenv("TVMQ_SCHEDULES", str(tmp_path / "mine"))
    assert user_directory(target) == tmp_path / "mine" / target.name
    assert lookup_directories(target) == [
        tmp_path / "mine" / target.name,
        shipped_directory(target),
    ]


def test_schedules_option_needs_a_database(digits, tmp_path, capsys):
    from tvmq.cli import main

    _, path = digits
    empty = tmp_path / "empty"
    empty.mkdir()
    for directory, words in ((empty, "no tvmq schedule database"), (tmp_path / "nope", "no such")):
        command = ["compile", path, "--target", "qemu-cortex-m4", "-o", tmp_path / "fw"]
        status = main([str(a) for a in [*command, "--schedules", directory]])
        _, stderr = capsys.readouterr()
        assert status == EXIT_USER_ERROR
        assert stderr.startswith(f"tvmq: error: --schedules {directory}: {words}"), stderr
        assert stderr.count("\n") == 1
    assert not (tmp_path / "fw").exists()
    smoke = REPO / "ci" / "smoke.toml"
    assert main(["ci", "run", str(smoke), "--schedules", str(tmp_path / "nope")]) == EXIT_USER_ERROR
    assert (
        capsys.readouterr().err
        == f"tvmq: error: --schedules {tmp_path / 'nope'}: no such directory\n"
    )
