"""What `bisenet-bench` says about its figures: copies and compute apart, which figure compares
with the paper under which reading, Ctrl-C keeping the calls done, a CPU run saying how to be
shorter, and a plot that names things once. Fake runners and a fake clock: no wall clock."""

import json
import logging
import os

import numpy as np
import pytest

from bisenet_deploy.bench import paper as paper_mod
from bisenet_deploy.bench import report as rep
from bisenet_deploy.bench.harness import time_runner
from bisenet_deploy.cli import bench_main
from bisenet_deploy.portable.shared.phase_timing import (COMPUTE_DONE, D2H_DONE, H2D_DONE, START,
                                                  PhaseEvents, pycuda_phase_events,
                                                  torch_phase_events)
from support.bench_fakes import FakeClock, FakeRunner, SimulatedCtrlC, SimulatedSigterm
from support.records import bench_record as make_record

PHASES = [{"h2d": 0.5, "compute": 4.0, "d2h": 0.25}, {"h2d": 0.7, "compute": 4.2, "d2h": 0.35}]


def _inputs(record, n=2):
    w, h = record["export"]["input_size"]
    return [np.full((1, 3, h, w), i, np.float32) for i in range(n)]


# -- CUDA events: each library's own API -----------------------------------------------------------
class _Timeline(object):
    """A stream whose clock the test moves; events read it when recorded."""

    def __init__(self):
        self.now = 0.0


class TorchLikeEvent(object):
    """What torch.cuda.Event offers: record(stream=None), synchronize(), elapsed_time(end)."""

    def __init__(self, timeline, enable_timing=False):
        assert enable_timing, "torch events need enable_timing=True to be timed"
        self.timeline, self.at, self.synced = timeline, None, False

    def record(self, stream=None):
        self.at = self.timeline.now

    def synchronize(self):
        self.synced = True

    def elapsed_time(self, end_event):
        assert self.at is not None and end_event.at is not None
        return end_event.at - self.at


class PycudaLikeEvent(object):
    """What pycuda.driver.Event offers: record(stream=None), synchronize(), time_since(event)."""

    def __init__(self, timeline, flags=0):
        self.timeline, self.at = timeline, None

    def record(self, stream=None):
        self.at = self.timeline.now

    def synchronize(self):
        pass

    def time_since(self, event):
        return self.at - event.at


def _run_marks(events, timeline, *stream):
    for mark, advance in ((START, 1.5), (H2D_DONE, 6.0), (COMPUTE_DONE, 0.75), (D2H_DONE, 0)):
        events.record(mark, *stream)
        timeline.now += advance


@pytest.mark.parametrize("library", ["torch", "pycuda"])
def test_phase_events_split_a_call_with_each_librarys_event_api(library):
    timeline = _Timeline()
    if library == "torch":
        import types
        cuda = types.SimpleNamespace(Event=lambda enable_timing=False: TorchLikeEvent(
            timeline, enable_timing))
        events = torch_phase_events(types.SimpleNamespace(cuda=cuda))
        _run_marks(events, timeline)
        events.synchronize()
    else:
        import types
        events = pycuda_phase_events(types.SimpleNamespace(
            Event=lambda flags=0: PycudaLikeEvent(timeline)))
        _run_marks(events, timeline, "stream")
    assert events.times_ms() == {"h2d": 1.5, "compute": 6.0, "d2h": 0.75}


def test_phase_events_wait_for_the_last_mark():
    timeline = _Timeline()
    events = PhaseEvents(lambda: TorchLikeEvent(timeline, True), lambda a, b: a.elapsed_time(b))
    events.synchronize()
    assert events._events[D2H_DONE].synced and not events._events[START].synced


# -- harness and report --------------------------------------------------------------------------
def test_copies_and_compute_are_summarized_apart_from_end_to_end():
    record = make_record()
    clock = FakeClock()
    runner = FakeRunner(record, [5.0], clock, device_ms=[4.0, 4.2], phases_ms=PHASES)
    with runner:
        result = time_runner(runner, _inputs(record), iters=4, warmup=0, record=record,
                             clock=clock, progress=False)
    phases = result["phases_ms"]
    assert phases["h2d"]["mean_ms"] == pytest.approx(0.6)
    assert phases["compute"]["median_ms"] == pytest.approx(4.1)
    assert phases["d2h"]["max_ms"] == pytest.approx(0.35)
    assert result["phase_samples_ms"]["h2d"] == [0.7, 0.5, 0.7, 0.5]  # the calls after the check
    assert result["phase_clock"] == "cuda-events"
    assert result["latency_ms"]["mean_ms"] == pytest.approx(5.0)


def _report(backends_results, record=None, iters=5000, size=(2048, 1024), model=(1024, 512)):
    record = record or make_record(input_size=(size[0], size[1]), model_size=model)
    entries = []
    for name, result in backends_results:
        entry = {"backend": name, "status": "ok", "error": None, "runner": name,
                 "input": "image", "outputs": []}
        entry.update(result)
        entries.append(entry)
    return rep.build_report(
        command="bisenet-bench", config={"iters": iters, "warmup": 0, "batch": 1, "buffers": 1,
                                         "precision": None, "threads": None},
        timed=rep.describe_timed(record, {"kind": "synthetic", "buffers": 1, "batch": 1}, 1),
        model={"onnx": None, "engine": None, "checkpoint": None, "engine_sidecar": None,
               "weights": record["model"]["weights"]},
        environment={}, backends=entries)


def _timed(runner, iters, record):
    with runner:
        return time_runner(runner, _inputs(record), iters=iters, warmup=0, record=record,
                           clock=runner.clock, progress=False)


def test_paper_readings_name_the_figure_for_each_reading():
    record = make_record(input_size=(2048 // 64, 1024 // 64))  # tiny sizes, faked as the paper's
    record["export"]["input_size"], record["export"]["model_size"] = [2048, 1024], [1024, 512]
    gpu = _timed(FakeRunner(record, [5.0], FakeClock(), phases_ms=PHASES, name="tensorrt"),
                 4, record)
    cpu = _timed(FakeRunner(record, [250.0], FakeClock(), name="onnxruntime"), 4, record)
    section = paper_mod.readings(rep.describe_timed(record, {"kind": "synthetic"}, 1),
                                 [dict(gpu, backend="tensorrt", status="ok"),
                                  dict(cpu, backend="onnxruntime", status="ok")])
    trt, ort = section["rows"]
    assert section["paper"]["fps"] == 156.0 and "copies" in section["paper"]["does_not_state"]
    # only 4 calls here: not the paper's protocol, so no FPS is offered as comparable
    assert not trt["comparable"] and "4 timed calls vs 5000" in trt["differences"]
    assert trt["fps"]["copies included"] == pytest.approx(200.0)  # end-to-end 5 ms
    assert trt["fps"]["copies excluded"] == pytest.approx(1000 / 4.1, rel=1e-3)  # compute
    assert trt["figures"]["copies excluded"] == "compute phase (cuda-events)"
    assert ort["fps"]["copies excluded"] == ort["fps"]["copies included"] == pytest.approx(4.0)
    # at the paper's count the same run is offered under both readings
    section = paper_mod.readings(rep.describe_timed(record, {"kind": "synthetic"}, 1),
                                 [dict(gpu, backend="tensorrt", status="ok", iterations=5000)])
    row = section["rows"][0]
    assert row["comparable"] and row["differences"] == []
    text = paper_mod.format_readings(section)
    assert "tensorrt: 200.0 FPS if the paper timed the copies (end-to-end), 243.9 FPS if it " \
           "did not (compute phase (cuda-events))" in text
    assert "it does not state whether the copies were timed" in text


def test_report_table_shows_copies_and_compute_and_the_end_to_end_text_names_both_resizes():
    record = make_record()
    gpu = _timed(FakeRunner(record, [5.0], FakeClock(), phases_ms=PHASES, name="tensorrt"),
                 4, record)
    ort = _timed(FakeRunner(record, [6.0], FakeClock(), phases_ms=PHASES, name="ort",
                            phase_clock="host-clock"), 4, record)
    report = _report([("tensorrt", gpu), ("onnxruntime-cuda", ort)], record=record)
    rep.validate_report(json.loads(json.dumps(report)))
    header, rows = rep.table_rows(report)
    assert header[10:13] == ["h2d ms", "compute ms", "d2h ms"]
    assert rows[0][10:13] == ["0.600", "4.100", "0.300"]
    assert rows[1][10:13] == ["~0.600", "~4.100", "~0.300"]  # host clock, marked
    assert "'~' = host clock" in rep.format_table(report)
    timed = report["timed"]
    assert "resize of the logits back to the input size" in timed["end_to_end"]
    assert "h2d" in timed["phases"] and "cuda-events" in timed["phases"]


def test_old_reports_without_the_new_sections_still_load(tmp_path):
    record = make_record()
    report = _report([("onnxruntime", _timed(FakeRunner(record, [3.0], FakeClock()), 2,
                                                 record))], record=record)
    for key in ("paper", "interrupted"):
        report.pop(key)
    for key in ("phases_ms", "phase_clock", "phase_samples_ms", "interrupted",
                "requested_iterations"):
        report["backends"][0].pop(key)
    report["timed"].pop("phases")
    rep.write_report(tmp_path / "old.json", report)
    assert rep.load_report(tmp_path / "old.json")["backends"][0]["iterations"] == 2


# -- Ctrl-C --------------------------------------------------------------------------------------
def test_ctrl_c_during_the_timed_calls_keeps_the_calls_done():
    record = make_record()
    clock = FakeClock()
    runner = FakeRunner(record, [2.0, 3.0], clock, interrupt_at=1 + 1 + 5)  # warm-up, check, 5
    with runner:
        result = time_runner(runner, _inputs(record), iters=5000, warmup=1, record=record,
                             clock=clock, progress=False)
    assert result["interrupted"] and result["iterations"] == 5
    assert result["requested_iterations"] == 5000 and result["latency_ms"]["count"] == 5
    assert any("interrupted (Ctrl-C) after 5 of 5000" in w for w in result["warnings"])


def test_ctrl_c_before_the_first_timed_call_propagates():
    record = make_record()
    runner = FakeRunner(record, [2.0], FakeClock(), interrupt_at=0)
    with runner, pytest.raises(KeyboardInterrupt):
        time_runner(runner, _inputs(record), iters=10, warmup=2, record=record,
                    clock=runner.clock, progress=False)


@pytest.fixture
def fake_factory(monkeypatch):
    runners = {}

    def open_runner(backend, **kwargs):
        return runners[backend]

    monkeypatch.setattr(bench_main, "_open_runner", open_runner)
    monkeypatch.setattr(bench_main, "_backend_problem", lambda backend: None)
    return runners


@pytest.fixture
def onnx_file(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"not read by the fake runners")
    return str(path)


def test_ctrl_c_writes_the_report_table_and_plot_of_the_calls_done(tmp_path, onnx_file,
                                                                   fake_factory, capsys):
    record = make_record()
    fake_factory["onnxruntime"] = FakeRunner(record, [2.0], name="onnxruntime",
                                             interrupt_at=1 + 1 + 3)
    fake_factory["torch"] = FakeRunner(record, [2.0], name="torch")
    path = tmp_path / "r.json"
    code = bench_main.main(["--onnx", onnx_file, "--backend", "onnxruntime", "torch",
                            "--iters", "5000", "--warmup", "1", "--json", str(path), "--plot",
                            "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 130  # documented: interrupted, report written
    report = rep.load_report(path)
    assert report["interrupted"] is True
    ort, torch = report["backends"]
    assert ort["status"] == "ok" and ort["interrupted"] and ort["iterations"] == 3
    assert torch["status"] == "skipped" and torch["interrupted"]
    assert "interrupted (Ctrl-C)" in torch["error"]
    assert fake_factory["torch"].calls == 0  # the next backend was not started
    assert "onnxruntime: interrupted (Ctrl-C) after 3 of 5000 timed calls" in out
    assert "report: %s" % path in out and os.path.getsize(tmp_path / "r.png") > 1000
    assert "Traceback" not in err


def test_ctrl_c_before_anything_was_timed_writes_nothing(tmp_path, onnx_file, fake_factory,
                                                         capsys):
    fake_factory["onnxruntime"] = FakeRunner(make_record(), [2.0], name="onnxruntime",
                                             interrupt_at=0)
    path = tmp_path / "r.json"
    code = bench_main.main(["--onnx", onnx_file, "--backend", "onnxruntime", "--iters", "10",
                            "--json", str(path), "--no-progress"])
    _, err = capsys.readouterr()
    assert code == 130 and not path.exists()
    assert "interrupted (Ctrl-C) before any timed call: no report written" in err
    assert not fake_factory["onnxruntime"].is_active  # closed on the way out


# -- a long CPU run says how to shorten it -------------------------------------------------------
def test_long_cpu_run_says_how_to_shorten_it():
    from bisenet_deploy.bench.harness import estimate_line

    line = estimate_line("onnxruntime", 700e-3 * 5000, 5000, on_cpu=True)  # 700 ms a call
    assert line.startswith("onnxruntime: about 58 min for 5000 timed calls (700 ms each)")
    assert "shorten it with --iters 80 (about a minute" in line and "Ctrl-C" in line
    gpu = estimate_line("tensorrt", 70.0, 5000, on_cpu=False)
    assert "--iters sets the count (5000 is the paper's protocol)" in gpu


def test_a_run_already_at_the_suggested_count_is_not_told_to_use_it():
    from bisenet_deploy.bench.harness import estimate_line

    # scripts/main_job.sh's CPU table: torch at 6 s a call, 20 calls
    line = estimate_line("torch", 6.0 * 20, 20, on_cpu=True)
    assert "--iters" not in line and "Ctrl-C" in line
    assert "shorten it with --iters 20 " in estimate_line("torch", 6.0 * 40, 40, on_cpu=True)


def test_the_estimate_line_is_logged_for_a_cpu_backend(caplog):
    record = make_record()
    clock = FakeClock()
    runner = FakeRunner(record, [700.0], clock, name="onnxruntime", interrupt_at=1 + 2)
    with runner, caplog.at_level(logging.INFO, logger="bisenet_deploy"):
        time_runner(runner, _inputs(record), iters=5000, warmup=0, record=record, clock=clock,
                    progress=False, label="onnxruntime", on_cpu=True)
    lines = [r.getMessage() for r in caplog.records if "timed calls (" in r.getMessage()]
    assert len(lines) == 1 and "--iters 80" in lines[0]


# -- the plot ------------------------------------------------------------------------------------
def test_plot_names_each_backend_once_ticks_whole_iterations_and_flags_random_weights(tmp_path):
    pytest.importorskip("matplotlib")
    from bisenet_deploy.bench.plot import build_figure, plot_report

    record = make_record(weights="random-init")
    runner = FakeRunner(record, [2.0, 3.0], FakeClock(), phases_ms=PHASES, name="onnxruntime")
    runner.describe = lambda: "onnxruntime (cpu)"
    entry = _timed(runner, 3, record)
    entry["runner"] = "onnxruntime (cpu)"
    report = _report([("onnxruntime", entry)], record=record)
    report["backends"][0]["runner"] = "onnxruntime (cpu)"
    fig = build_figure(report)
    texts = [ax.get_title() for ax in fig.axes] + [fig._suptitle.get_text()]
    assert not any("onnxruntime (onnxruntime" in t for t in texts), texts
    assert any(t.startswith("onnxruntime (cpu)") for t in texts), texts
    assert "random-init weights" in fig._suptitle.get_text()
    trace = fig.axes[1]
    ticks = [t for t in trace.get_xticks() if trace.get_xlim()[0] <= t <= trace.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert plot_report(report, str(tmp_path / "p.png")) and (tmp_path / "p.png").stat().st_size


def test_sigterm_during_the_timed_calls_exits_143_and_says_sigterm(tmp_path, onnx_file,
                                                                   fake_factory, capsys):
    """SIGTERM (a CI timeout, `kill`) is not Ctrl-C: exit 143, as the README's table says."""
    record = make_record()
    fake_factory["onnxruntime"] = FakeRunner(record, [2.0], name="onnxruntime",
                                             interrupt_at=1 + 1 + 3, interrupt=SimulatedSigterm)
    fake_factory["torch"] = FakeRunner(record, [2.0], name="torch")
    path = tmp_path / "r.json"
    code = bench_main.main(["--onnx", onnx_file, "--backend", "onnxruntime", "torch",
                            "--iters", "5000", "--warmup", "1", "--json", str(path),
                            "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 143, err
    report = rep.load_report(path)
    ort, torch = report["backends"]
    assert ort["interrupted_by"] == "SIGTERM" and ort["iterations"] == 3
    assert torch["status"] == "skipped" and "terminated (SIGTERM)" in torch["error"]
    assert "onnxruntime: interrupted (SIGTERM) after 3 of 5000 timed calls" in out
    assert "Ctrl-C" not in out + err


def test_sigterm_before_any_timed_call_exits_143(onnx_file, fake_factory, capsys):
    fake_factory["onnxruntime"] = FakeRunner(make_record(), [2.0], name="onnxruntime",
                                             interrupt_at=0, interrupt=SimulatedSigterm)
    code = bench_main.main(["--onnx", onnx_file, "--backend", "onnxruntime", "--iters", "10",
                            "--no-json", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 143 and "terminated (SIGTERM) before any timed call" in err, err


def test_a_simulated_ctrl_c_escaping_the_code_fails_the_test_instead_of_stopping_pytest():
    """The guard the Ctrl-C tests rely on (conftest.pytest_runtest_call): a harness that let the
    interrupt through must fail its test, and the suite goes on."""
    import conftest

    for exc in (SimulatedCtrlC(), SimulatedSigterm()):
        call = conftest.pytest_runtest_call(None)
        next(call)
        with pytest.raises(AssertionError, match="escaped the code under test"):
            call.throw(exc)
    call = conftest.pytest_runtest_call(None)
    next(call)
    with pytest.raises(KeyboardInterrupt):  # the user's own Ctrl-C still stops pytest
        call.throw(KeyboardInterrupt())
