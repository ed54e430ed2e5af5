"""``tvmq ci``: the smoke matrix (ci/smoke.toml) run for real, compiled and run on
emulated boards over the serial harness; a deliberate regression reported with
its figures; failing boards that do not stop the others; matrix mistakes."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import socket
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests import hil_fixtures
from tests.test_hil_power import Simulator, lpm01a_simulator
from tvmq.ci.matrix import load_matrix
from tvmq.ci.runner import compare_outputs
from tvmq.cli import main
from tvmq.errors import TvmqError
from tvmq.examples import DIGITS_MODEL
from tvmq.hil.emulator import Emulator

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "ci" / "smoke.toml"
firmware = hil_fixtures.firmware

needs_boards = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (make toolchains)",
)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke matrix run once: (exit status, report directory, printed output)."""
    report = tmp_path_factory.mktemp("smoke") / "report"
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = main(["ci", "run", str(SMOKE), "--report", str(report), "--jobs", "2"])
    return status, report, output.getvalue()


@needs_boards
def test_smoke_matrix_passes_with_reports(smoke):
    status, report, output = smoke
    assert status == 0, output
    assert "[m4] digits-int8/digits: running on QEMU mps2-an386" in output  # progress
    assert "[m4] digits-int8/digits: tuned schedules: " in output  # the firmware users get
    results = json.loads((report / "results.json").read_text())["entries"]
    assert set(results) == {"digits-int8/digits@m4", "digits-int8/digits@m55"}
    for entry in results.values():
        figures = entry["figures"]
        assert entry["status"] == "passed"
        assert figures["accuracy"] >= 0.9 and 20_000 < figures["instructions"] < 1_000_000
        assert figures["flash"] < 32_768 and figures["ram"] < 32_768
        assert entry["details"]["checked_against_host"] == 4
        assert entry["details"]["inferences"] == 24
        assert entry["details"]["latency_spread"] == 0.0  # exact under -icount
    suites = ET.parse(report / "junit.xml").getroot()
    assert [s.get("name") for s in suites] == ["m4", "m55"]
    assert all(s.get("failures") == "0" and s.get("errors") == "0" for s in suites)
    assert "| digits-int8/digits@m4 | pass |" in (report / "summary.md").read_text()
    for plot in ("latency.png", "memory.png"):
        assert (report / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_boards
def test_committed_baseline_holds_what_the_code_measures(smoke):
    """The smoke matrix builds ci/matrix.toml's digits entries (same model, calibration
    and runs): their exact figures must be the committed baseline's, or the baseline
    is stale and ``tvmq ci run ci/matrix.toml`` would fail on its first run."""
    _, report, _ = smoke
    results = json.loads((report / "results.json").read_text())["entries"]
    committed = json.loads((REPO / "ci" / "baseline.json").read_text())["entries"]
    for entry in ("digits-int8/digits@m4", "digits-int8/digits@m55"):
        exact = ("flash", "ram", "instructions")
        measured = {k: results[entry]["figures"][k] for k in exact}
        assert measured == {k: committed[entry][k] for k in exact}, (
            f"{entry}: regenerate ci/baseline.json (tvmq ci update-baseline ci/matrix.toml)"
        )


def _degraded_model(path: Path) -> Path:
    """The bundled model with its first convolution's weights scrambled: the same
    graph (so the same code), worse accuracy."""
    model = onnx.load(DIGITS_MODEL)
    conv = next(node for node in model.graph.node if node.op_type == "Conv")
    weights = next(t for t in model.graph.initializer if t.name == conv.input[1])
    values = numpy_helper.to_array(weights)
    scrambled = np.random.default_rng(0).permutation(values.ravel()).reshape(values.shape)
    weights.CopyFrom(numpy_helper.from_array(scrambled, weights.name))
    onnx.save(model, path)
    return path


@needs_boards
def test_regression_is_reported_with_the_figures(smoke, tmp_path, capsys):
    status, report, _ = smoke
    assert status == 0
    baseline = tmp_path / "baseline.json"
    assert main(["ci", "update-baseline", str(SMOKE), "--baseline", str(baseline),
                 "--from", str(report)]) == 0  # fmt: skip
    good = json.loads(baseline.read_text())["entries"]["digits-int8/digits@m4"]
    budget = good["instructions"] - 1000
    matrix = SMOKE.read_text().replace('"../tvmq/examples/digits_cnn.onnx"',
                                       f'"{_degraded_model(tmp_path / "worse.onnx")}"')  # fmt: skip
    matrix = matrix.replace("check_outputs = 4", "check_outputs = 0")
    matrix = matrix.replace("max = 1_000_000", f"max = {budget}")
    (tmp_path / "regressed.toml").write_text(matrix)
    capsys.readouterr()
    args = ["ci", "run", str(tmp_path / "regressed.toml"), "--baseline", str(baseline)]
    assert main([*args, "--report", str(tmp_path / "report"), "--only", "*@m4"]) == 1
    output = capsys.readouterr().out
    assert output.startswith("1 entries on 1 boards")
    results = json.loads((tmp_path / "report" / "results.json").read_text())["entries"]
    assert list(results) == ["digits-int8/digits@m4"]
    now = results["digits-int8/digits@m4"]
    assert now["status"] == "failed"
    failed = {(c["metric"], c["kind"]) for c in now["checks"] if not c["passed"]}
    assert ("instructions", "budget") in failed and ("accuracy", "baseline") in failed
    assert now["figures"]["accuracy"] < good["accuracy"] - 0.1
    line = next(x for x in output.splitlines() if x.startswith("FAILED"))
    assert f"above the budget (max {budget:,}" in line
    assert f"accuracy {now['figures']['accuracy']:.4f}: regression (baseline " in line
    assert f"{good['accuracy']:.4f}" in line
    case = ET.parse(tmp_path / "report" / "junit.xml").getroot().find(".//testcase")
    assert "regression" in case.find("failure").get("message")


def _silent_board() -> tuple[socket.socket, str]:
    """A serial port whose board never answers (a hung firmware)."""
    listener = socket.create_server(("127.0.0.1", 0))
    return listener, f"socket://127.0.0.1:{listener.getsockname()[1]}"


def _dying_board() -> tuple[socket.socket, str]:
    """A board whose link dies at the first request (it crashed and its port went away)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        connection, _ = listener.accept()
        connection.recv(1)
        connection.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener, f"socket://127.0.0.1:{listener.getsockname()[1]}"


def _firmware_as_the_runner_builds_it(directory: Path) -> Path:
    """The smoke matrix's digits-int8 firmware for the M4, built as ``tvmq ci`` builds it
    (same calibration and tuned schedules, so the same build id): what a flashed real
    board would run."""
    from tvmq.backend.mcu import compile_firmware
    from tvmq.ci.runner import open_dataset, subset
    from tvmq.data import model_inputs
    from tvmq.frontend import load_model
    from tvmq.quantize.quantizer import quantize_model
    from tvmq.targets import load_target
    from tvmq.tune.apply import schedules_for

    calib = load_matrix(SMOKE).datasets["digits-calib"]
    data, model = open_dataset(calib), load_model(DIGITS_MODEL)
    quantized = quantize_model(
        model, list(model_inputs(data, model.inputs[0], subset(calib, data)))
    )
    target = load_target("qemu-cortex-m4")
    compile_firmware(quantized, target, directory, schedules_for(target))
    return directory / "build" / "firmware.elf"


def _lpm01a(milliamps: float) -> Simulator:
    """A simulated LPM01A (its ASCII protocol over a pty) that measures a constant current:
    a second of samples at 10 kHz from the trigger."""
    return lpm01a_simulator(f"{round(milliamps * 100):04d}-05\r\n".encode() * 10_000)


@needs_boards
def test_boards_at_a_url_measured_or_failing_alone(firmware, tmp_path, capsys):
    silent, silent_url = _silent_board()
    dying, dying_url = _dying_board()
    monitor = _lpm01a(12.0)
    with (
        # Stands for a flashed real board with a power monitor on its supply.
        Emulator(_firmware_as_the_runner_builds_it(tmp_path / "fw"), "qemu-cortex-m4") as real,
        # A board flashed with another firmware (the harness's test model).
        Emulator(firmware("mps2-an386"), "qemu-cortex-m4") as stale,
        silent,
        dying,
    ):
        matrix = SMOKE.read_text().replace("check_outputs = 4", "check_outputs = 0")
        matrix = matrix.replace("budget.instructions", "# real boards count cycles, not")
        matrix = matrix.replace("../tvmq/examples/", f"{DIGITS_MODEL.parent}/")
        boards = {"silent": silent_url, "dying": dying_url, "stale": stale.url, "real": real.url}
        for name, url in boards.items():
            # Short timeouts where no answer is the point; the emulators answer, but
            # slowly on a loaded machine.
            timeout = 0.3 if name in ("silent", "dying") else 5.0
            matrix += (
                f'\n[boards.{name}]\ntarget = "qemu-cortex-m4"\nurl = "{url}"\n'
                f"timeout = {timeout}\n"
            )
        matrix += f'power = "lpm01a:{monitor.path}"\n'
        matrix = matrix.replace(
            'boards = ["m4", "m55"]', 'boards = ["m4", "silent", "dying", "stale"]'
        )
        matrix += '\n[[entries]]\nmodel = "digits-int8"\ndata = "digits"\nboards = ["real"]\n'
        matrix += "budget.energy_uj = { max = 5.0 }\n"  # well below one inference
        (tmp_path / "boards.toml").write_text(matrix)
        try:
            status = main(
                ["ci", "run", str(tmp_path / "boards.toml"), "--report", str(tmp_path / "r")]
            )
        finally:
            monitor.close()
    assert status == 1
    output = capsys.readouterr().out
    results = json.loads((tmp_path / "r" / "results.json").read_text())["entries"]
    status = {entry.split("@")[1]: result["status"] for entry, result in results.items()}
    assert status == {"m4": "passed", "silent": "error", "dying": "error", "stale": "error",
                      "real": "failed"}  # fmt: skip
    # The real board: accuracy on the device, latency in ticks of its clock, energy
    # integrated over the RUN's window (12 mA at 3.3 V), over its budget.
    real = results["digits-int8/digits@real"]["figures"]
    assert real["accuracy"] == results["digits-int8/digits@m4"]["figures"]["accuracy"]
    assert real["energy_uj"] == pytest.approx(3.3 * 0.012 * real["latency_ms"] * 1e3, rel=1e-9)
    assert f"energy_uj {real['energy_uj']:,.4g} uJ: above the budget (max 5 uJ" in output
    reasons = {entry.split("@")[1]: result["reason"] for entry, result in results.items()}
    assert reasons["silent"] == f"no answer from {silent_url} after 3 tries (HELLO)", reasons
    assert reasons["dying"].startswith(f"{dying_url}: link lost"), reasons
    assert reasons["stale"].startswith(f"{stale.url} runs tvmq-test-model build"), reasons
    assert reasons["stale"].endswith("just compiled: flash it (flash = true)"), reasons
    for board in ("silent", "dying", "stale"):  # printed as they happen, and at the end
        assert f"[{board}] digits-int8/digits: ERROR: {reasons[board]}" in output
        assert f"ERROR    digits-int8/digits@{board}: {reasons[board]}" in output
    junit = ET.parse(tmp_path / "r" / "junit.xml").getroot()
    errors = {s.get("name"): (s.get("errors"), s.get("failures")) for s in junit}
    assert errors == {"m4": ("0", "0"), "silent": ("1", "0"), "dying": ("1", "0"),
                      "stale": ("1", "0"), "real": ("0", "1")}  # fmt: skip


def test_wrong_results_are_named_with_the_figures():
    same = [np.arange(10, dtype=np.int8)]
    compare_outputs(same, [same[0].copy()], 0)
    off = [same[0].copy()]
    off[0][3] += 2
    with pytest.raises(
        TvmqError, match=r"output 0 of input 5 .* in 1 of 10 values \(largest difference 2\)"
    ):
        compare_outputs(off, same, 5)
    floats = [np.linspace(0, 1, 8, dtype=np.float32)]
    compare_outputs([floats[0] + 1e-7], floats, 0)
    with pytest.raises(TvmqError, match="wrong results"):
        compare_outputs([floats[0] + 1e-2], floats, 0)


def test_example_matrix_is_valid():
    matrix = load_matrix(REPO / "ci" / "matrix.toml")
    assert {b.target.name for b in matrix.boards.values()} == {
        "qemu-cortex-m4", "qemu-cortex-m7", "qemu-cortex-m55",
    }  # fmt: skip
    assert len(matrix.entries) == 15 and matrix.baseline == REPO / "ci" / "baseline.json"
    assert json.loads(matrix.baseline.read_text())["format"] == "tvmq-ci-baseline/1"


MISTAKES = [
    ("[boards.m4]\ntarget = 'nope'\n", "boards.m4.target: unknown target 'nope'"),
    ("[boards.m4]\ntarget = 'nucleo-l4r5zi'\n", "boards.m4: 'nucleo-l4r5zi' is a real board"),
    ("[boards.m4]\ntarget = 'qemu-cortex-m4'\nflash = true\n", "boards.m4.flash: only a real"),
    ("[boards.m4]\ntarget = 'host'\n", "boards.m4.target: 'host' is host, not a cortex-m"),
    ("[boards.m4]\ntarget = 'qemu-cortex-m4'\nspeed = 1\n", "boards.m4.speed: unknown key"),
    ("[settings]\nruns = 0\n", "settings.runs: must be at least 1, got 0"),
    ("[settings]\ntolerance = 2\n", "settings.tolerance: a tolerance is a fraction"),
    ("[datasets.d]\npath = 'x.npz'\nbundled = 'digits-test'\n", "datasets.d: give exactly one"),
    ("[datasets.d]\npath = 'absent.npz'\n", "datasets.d.path: "),
    ("[datasets.d]\nbundled = 'digits-test'\nmetric = 'f1'\n", "datasets.d.metric: 'f1'"),
    ("[models.m]\npath = 'absent.onnx'\n", "models.m.path: "),
    ("[[entries]]\nmodel = 'x'\n", "entries[0].model: no model 'x' in [models]"),
    ("[[entries]]\nmodel = 'digits'\ndata = 'd'\nboards = ['m9']\n", "entries[0].boards: no board"),
    ("[[entries]]\nmodel = 'digits'\ndata = 'd'\nboards = ['m4']\nbudget.speed = {max = 1}\n",
     "entries[0].budget.speed: unknown key"),
    ("[[entries]]\nmodel = 'digits'\ndata = 'd'\nboards = ['m4']\nbudget.accuracy = {max = 1}\n",
     "entries[0].budget.accuracy.max: unknown key"),
    ("[[entries]]\nmodel = 'digits'\ndata = 'd'\nboards = ['m4']\nbudget.energy_uj = {max = 1}\n",
     "entries[0].budget.energy_uj: board 'm4' has no power monitor"),
    ("[[entries]]\nmodel = 'digits'\ndata = 'd'\nboards = ['m4']\nbudget.ram = {max = 'big'}\n",
     "entries[0].budget.ram.max: expected an integer or a number, got 'big'"),
]  # fmt: skip


def _matrix(extra: str) -> str:
    """A valid matrix with `extra` replacing the table it redefines."""
    tables = {
        "boards": "[boards.m4]\ntarget = 'qemu-cortex-m4'\n",
        "settings": "",
        "datasets": "[datasets.d]\nbundled = 'digits-test'\n",
        "models": f"[models.digits]\npath = '{DIGITS_MODEL}'\n",
        "entries": "[[entries]]\nmodel = 'digits'\ndata = 'd'\nboards = ['m4']\n",
    }
    for name in tables:
        if extra.startswith((f"[{name}", f"[[{name}")):
            tables[name] = extra
    return "\n".join(tables.values())


@pytest.mark.parametrize(("extra", "message"), MISTAKES)
def test_matrix_mistakes_are_one_line_naming_file_and_key(tmp_path, capsys, extra, message):
    path = tmp_path / "matrix.toml"
    path.write_text(_matrix(extra))
    assert main(["ci", "run", str(path), "--report", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"tvmq: error: {path}: {message}"), error
    assert error.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_valid_matrix_and_other_mistakes(tmp_path, capsys):
    path = tmp_path / "matrix.toml"
    path.write_text(_matrix(""))
    assert load_matrix(path).entries[0].id == "digits/d@m4"
    path.write_text("[boards\n")
    assert main(["ci", "run", str(path)]) == 2
    assert "not a readable TOML file" in capsys.readouterr().err
    assert main(["ci", "run", str(tmp_path / "none.toml")]) == 2
    assert (
        capsys.readouterr().err == f"tvmq: error: {tmp_path / 'none.toml'}: no such matrix file\n"
    )
    path.write_text(_matrix(""))
    assert main(["ci", "update-baseline", str(path)]) == 2
    assert "no 'baseline' key in the matrix" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    assert main(["ci", "run", str(path), "--baseline", str(tmp_path / "bad.json")]) == 2
    assert "not a tvmq-ci-baseline/1 file" in capsys.readouterr().err


def test_absent_optional_files_skip_their_entries(tmp_path, capsys):
    matrix = _matrix("[models.digits]\npath = 'absent.onnx'\noptional = true\n")
    (tmp_path / "matrix.toml").write_text(f"baseline = 'baseline.json'\n{matrix}")
    old = {"digits/d@m4": {"accuracy": 0.5, "flash": 1000}}
    (tmp_path / "baseline.json").write_text(
        json.dumps({"format": "tvmq-ci-baseline/1", "entries": old})
    )
    assert main(["ci", "run", str(tmp_path / "matrix.toml"), "--report", str(tmp_path / "r")]) == 0
    assert f"SKIPPED  digits/d@m4: {tmp_path / 'absent.onnx'} is absent" in capsys.readouterr().out
    suite = ET.parse(tmp_path / "r" / "junit.xml").getroot().find("testsuite")
    assert suite.get("skipped") == "1" and suite.find(".//skipped") is not None
    assert main(["ci", "update-baseline", str(tmp_path / "matrix.toml")]) == 0
    assert json.loads((tmp_path / "baseline.json").read_text())["entries"] == old


def _two_board_matrix(tmp_path: Path) -> Path:
    """A matrix of one entry on two emulated boards, with a flash budget and a baseline."""
    text = _matrix(
        "[[entries]]\nmodel = 'digits'\ndata = 'd'\nboards = ['m4', 'm55']\n"
        "budget.flash = { max = 1000 }\n"
    )
    text = text.replace(
        "[boards.m4]\n", "[boards.m55]\ntarget = 'qemu-cortex-m55'\n\n[boards.m4]\n"
    )
    (tmp_path / "matrix.toml").write_text(f"baseline = 'baseline.json'\n{text}")
    return tmp_path / "matrix.toml"


def _results(directory: Path, entries: dict[str, dict]) -> Path:
    """The results.json of a `ci run --report` with these entries' figures (or errors)."""
    directory.mkdir()
    recorded = {
        entry: {"status": "error" if "reason" in r else "passed", "figures": {},
                "details": {}, "checks": [], "reason": "", **r}
        for entry, r in entries.items()
    }  # fmt: skip
    (directory / "results.json").write_text(json.dumps({"entries": recorded}))
    return directory


def test_update_baseline_writes_what_was_measured_when_an_entry_failed(tmp_path, capsys):
    matrix = _two_board_matrix(tmp_path)
    old = {"digits/d@m4": {"flash": 800}, "digits/d@m55": {"flash": 900}, "gone/d@m4": {"ram": 1}}
    (tmp_path / "baseline.json").write_text(
        json.dumps({"format": "tvmq-ci-baseline/1", "entries": old})
    )
    report = _results(tmp_path / "r", {
        "digits/d@m4": {"figures": {"flash": 850, "ram": 700}},
        "digits/d@m55": {"reason": "no answer from the board"},
    })  # fmt: skip
    assert main(["ci", "update-baseline", str(matrix), "--from", str(report)]) == 1
    output = capsys.readouterr().out
    assert "ERROR    digits/d@m55: no answer from the board" in output
    assert "1 of 2 entries measured, the others keep their figures (1 failed" in output
    written = json.loads((tmp_path / "baseline.json").read_text())["entries"]
    assert written == {"digits/d@m4": {"flash": 850, "ram": 700}, "digits/d@m55": {"flash": 900}}
    # --only: the entries left out keep their figures, even without results.
    report = _results(tmp_path / "r2", {"digits/d@m55": {"figures": {"flash": 950}}})
    args = ["ci", "update-baseline", str(matrix), "--from", str(report), "--only", "*@m55"]
    assert main(args) == 0
    written = json.loads((tmp_path / "baseline.json").read_text())["entries"]
    assert written == {"digits/d@m4": {"flash": 850, "ram": 700}, "digits/d@m55": {"flash": 950}}


def test_only_selects_entries_by_pattern(tmp_path, capsys):
    from tvmq.ci.matrix import select

    matrix = load_matrix(_two_board_matrix(tmp_path))
    ids = lambda patterns: [e.id for e in select(matrix, patterns).entries]  # noqa: E731
    assert ids([]) == ["digits/d@m4", "digits/d@m55"]
    assert ids(["*@m55"]) == ["digits/d@m55"]
    assert ids(["digits"]) == ids(["digits/d@m4", "digits/d@m55"]) == ids([]) == ids(["*"])
    assert ids(["digits/d@m4"]) == ["digits/d@m4"]  # ... and not @m55, which it begins
    assert main(["ci", "run", str(tmp_path / "matrix.toml"), "--only", "kws*"]) == 2
    error = capsys.readouterr().err
    assert error == (
        f"tvmq: error: --only kws*: matches no entry of {tmp_path / 'matrix.toml'} "
        "(digits/d@m4, digits/d@m55)\n"
    )


def test_plots_show_budgets_and_mark_failures(tmp_path):
    from matplotlib.collections import LineCollection

    from tvmq.ci.checks import judge
    from tvmq.ci.report import plot
    from tvmq.ci.runner import Outcome

    matrix = load_matrix(_two_board_matrix(tmp_path))
    m4, m55 = matrix.entries
    outcomes = [Outcome(m4, "measured", {"flash": 1200, "ram": 600}),
                Outcome(m55, "error", reason="no answer")]  # fmt: skip
    verdicts = judge(matrix, outcomes, {})
    assert [v.status for v in verdicts] == ["failed", "error"]
    axes = plot(verdicts, {}, ["flash", "ram"], "bytes").axes[0]
    budgets = [c for c in axes.collections if isinstance(c, LineCollection)]
    segments = [np.reshape(s, (-1, 2)) for c in budgets for s in c.get_segments()]
    drawn = {float(y) for s in segments for y in s[:, 1] if np.isfinite(y)}
    assert drawn == {1000.0}  # the flash budget across both boards; RAM has none
    assert [t.get_color() for t in axes.get_xticklabels()] == ["red", "red"]
    assert [t.get_text() for t in axes.texts] == ["ERROR"]
    flash_bar = axes.patches[0]  # this run's flash bar of the first entry (the M4)
    assert flash_bar.get_edgecolor()[:3] == (1.0, 0.0, 0.0)
