"""`bisenet-bench` with fake runners: report schema, table, skip/fail policy and exit codes."""

import json
import os

import pytest

from bisenet_deploy.bench import report as rep
from bisenet_deploy.cli import bench_main
from bisenet_deploy.errors import InputError, MissingDependencyError
from support.bench_fakes import FakeRunner
from support.records import bench_record as make_record


@pytest.fixture
def model_files(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not read by the fake runners")
    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(b"x")
    return str(onnx), str(ckpt)


@pytest.fixture
def fake_factory(monkeypatch):
    """Replace the runtime factory: each backend gets a FakeRunner; `modes` picks misbehaviour."""
    opened = []
    modes = {}

    def open_runner(backend, **kwargs):
        opened.append((backend, kwargs))
        mode = modes.get(backend, "ok")
        if mode == "raise":
            raise MissingDependencyError("%s: a dependency is missing" % backend)
        return FakeRunner(make_record(), [1.0], mode=mode, name=backend)

    def backend_problem(backend):
        if modes.get(backend) == "missing":
            return "tensorrt and pycuda not installed"
        return None

    monkeypatch.setattr(bench_main, "_open_runner", open_runner)
    monkeypatch.setattr(bench_main, "_backend_problem", backend_problem)
    return opened, modes


def _run(argv, capsys):
    code = bench_main.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_two_backends_side_by_side_write_a_valid_report(tmp_path, model_files, fake_factory,
                                                        capsys):
    onnx, ckpt = model_files
    path = tmp_path / "r.json"
    code, out, err = _run(["--onnx", onnx, "--checkpoint", ckpt, "--backend", "onnxruntime",
                           "torch", "--iters", "6", "--warmup", "1", "--threads", "1",
                           "--channels-last", "--json", str(path), "--plot"], capsys)
    assert code == 0, err
    report = rep.load_report(path)  # validates the schema
    assert [b["backend"] for b in report["backends"]] == ["onnxruntime", "torch"]
    assert all(b["status"] == "ok" and b["iterations"] == 6 for b in report["backends"])
    assert report["config"]["threads"] == 1 and report["config"]["warmup"] == 1
    assert report["timed"]["in_graph_resize"] == {"from": [32, 16], "to": [16, 8]}
    assert report["comparison"]["first"] == "onnxruntime"
    assert {r["backend"] for r in report["comparison"]["rows"]} == {"onnxruntime", "torch"}
    assert "host" in report["timed"]["end_to_end"]
    assert report["command"].startswith("bisenet-bench --onnx ") and "--iters 6" in report["command"]
    assert "vs fastest" in out and "onnxruntime" in out and "torch" in out
    assert "in-graph resize to 16x8" in out
    assert os.path.getsize(tmp_path / "r.png") > 1000
    opened, _ = fake_factory
    assert opened[0][1]["onnx"] == onnx and opened[0][1]["threads"] == 1
    assert opened[1][1]["checkpoint"] == ckpt
    # torch-only options reach torch only, and the report says they were used
    assert opened[1][1]["channels_last"] is True and "channels_last" not in opened[0][1]
    assert report["config"]["channels_last"] is True and report["config"]["cuda_graph"] is False


def test_repeated_backend_option_and_default_report_path(tmp_path, model_files, fake_factory,
                                                         capsys, monkeypatch):
    onnx, _ = model_files
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run(["--onnx", onnx, "--backend", "onnxruntime", "--backend", "torch",
                         "--iters", "3", "--warmup", "0"], capsys)
    assert code == 0
    reports = os.listdir(tmp_path / "benchmarks")
    assert len(reports) == 1 and reports[0].endswith("-onnxruntime+torch.json")
    assert reports[0][:15].replace("-", "").isdigit()  # YYYYmmdd-HHMMSS


def test_tensorrt_without_tensorrt_is_one_line_and_others_still_run(tmp_path, model_files,
                                                                    fake_factory, capsys):
    onnx, _ = model_files
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    _, modes = fake_factory
    modes["tensorrt"] = "missing"
    path = tmp_path / "r.json"
    code, out, err = _run(["--engine", str(engine), "--onnx", onnx, "--backend", "tensorrt",
                           "onnxruntime", "--iters", "3", "--json", str(path)], capsys)
    assert code == 0
    lines = [line for line in err.splitlines() if "tensorrt" in line]
    assert len(lines) == 1 and "cannot run here: tensorrt and pycuda not installed" in lines[0]
    assert "Traceback" not in err
    report = json.loads(path.read_text())
    assert [b["status"] for b in report["backends"]] == ["skipped", "ok"]
    assert "tensorrt: skipped: the tensorrt backend cannot run here" in out


def test_default_report_is_named_by_the_backends_that_ran(tmp_path, model_files, fake_factory,
                                                          capsys, monkeypatch):
    onnx, _ = model_files
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    _, modes = fake_factory
    modes["tensorrt"] = "missing"
    monkeypatch.chdir(tmp_path)
    code, _, _ = _run(["--engine", str(engine), "--onnx", onnx, "--backend", "tensorrt",
                       "onnxruntime", "--iters", "3"], capsys)
    assert code == 0
    reports = os.listdir(tmp_path / "benchmarks")
    assert len(reports) == 1 and reports[0].endswith("-onnxruntime.json")  # tensorrt skipped


def test_only_unavailable_backends_exit_non_zero_without_report(tmp_path, model_files,
                                                               fake_factory, capsys,
                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, ckpt = model_files
    code, out, err = _run(["--checkpoint", ckpt, "--backend", "onnxruntime", "--iters", "2"],
                          capsys)
    assert code == 4
    assert "needs --onnx" in err and "Traceback" not in err
    assert not (tmp_path / "benchmarks").exists()


def test_garbage_outputs_fail_with_exit_3_but_the_report_keeps_the_others(
        tmp_path, model_files, fake_factory, capsys):
    onnx, ckpt = model_files
    _, modes = fake_factory
    modes["torch"] = "range"
    path = tmp_path / "r.json"
    code, out, err = _run(["--onnx", onnx, "--checkpoint", ckpt, "--backend", "onnxruntime",
                           "torch", "--iters", "2", "--json", str(path)], capsys)
    assert code == 3
    report = rep.load_report(path)
    assert [b["status"] for b in report["backends"]] == ["ok", "failed"]
    assert "garbage" in report["backends"][1]["error"]


def test_missing_model_file_is_a_clear_error(tmp_path, capsys):
    code, _, err = _run(["--onnx", str(tmp_path / "nope.onnx"), "--iters", "2"], capsys)
    assert code == 2 and "no such file" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(["--onnx", str(tmp_path), "--iters", "2"], capsys)
    assert code == 2 and "is a folder: give the file in it" in err


def test_unwritable_report_path_is_refused_before_timing(tmp_path, model_files, fake_factory,
                                                         capsys):
    onnx, _ = model_files
    opened, _modes = fake_factory
    for option in ("--json", "--plot"):
        code, _out, err = _run(["--onnx", onnx, "--iters", "2", option,
                                os.path.join(onnx, "r.out")], capsys)
        assert code == 2 and option in err and "is a file" in err
    code, _out, err = _run(["--onnx", onnx, "--iters", "2", "--json", str(tmp_path)], capsys)
    assert code == 2 and "is a folder" in err
    assert opened == []  # no backend was opened, nothing was timed


def test_nothing_to_benchmark_is_a_clear_error(capsys):
    code, _, err = _run(["--iters", "2"], capsys)
    assert code == 2 and "give --onnx" in err


def test_help_works_without_heavy_imports(capsys):
    with pytest.raises(SystemExit) as exc:
        bench_main.main(["--help"])
    assert exc.value.code == 0
    assert "--backend" in capsys.readouterr().out


# -- report schema -----------------------------------------------------------------------------
def _valid_report():
    from bisenet_deploy.bench.harness import time_runner
    from support.bench_fakes import FakeClock
    import numpy as np
    record = make_record()
    clock = FakeClock()
    runner = FakeRunner(record, [2.0, 3.0], clock)
    with runner:
        result = time_runner(runner, [np.zeros((1, 3, 16, 32), np.float32)], iters=4, warmup=0,
                             record=record, clock=clock, progress=False)
    entry = {"backend": "fake", "status": "ok", "error": None, "runner": "fake",
             "input": "image 1x3x16x32 float32", "outputs": []}
    entry.update(result)
    return rep.build_report(
        command="bisenet-bench", config={"iters": 4, "warmup": 0, "batch": 1, "buffers": 1,
                                         "precision": None, "threads": None},
        timed=rep.describe_timed(record, {"kind": "synthetic", "buffers": 1, "batch": 1}, 1),
        model={"onnx": None, "engine": None, "checkpoint": None, "engine_sidecar": None},
        environment={}, backends=[entry])


def test_report_schema_accepts_a_real_report_and_round_trips(tmp_path):
    report = _valid_report()
    assert report["comparison"]["rows"][0]["vs_fastest"] == 1.0
    rep.write_report(tmp_path / "r.json", report)
    assert rep.load_report(tmp_path / "r.json") == json.loads(json.dumps(report))


@pytest.mark.parametrize("breakage,match", [
    (lambda r: r.update(schema="other/1"), "schema"),
    (lambda r: r["backends"][0].pop("latency_ms"), "latency_ms"),
    (lambda r: r["backends"][0]["latency_ms"].update(p90_ms=-1.0), "not ordered"),
    (lambda r: r["backends"][0]["latency_samples_ms"].pop(), "samples"),
    (lambda r: r["backends"][0].update(status="failed", error=None), "without an error"),
    (lambda r: r["timed"].pop("end_to_end"), "end_to_end"),
    (lambda r: r["config"].update(iters="5"), "config.iters"),
])
def test_report_schema_rejects_broken_reports(breakage, match):
    report = _valid_report()
    breakage(report)
    with pytest.raises(InputError, match=match):
        rep.validate_report(report)


def test_factory_refusing_a_backend_at_open_is_a_skip(tmp_path, model_files, fake_factory,
                                                      capsys):
    onnx, _ = model_files
    _, modes = fake_factory
    modes["onnxruntime-cuda"] = "raise"
    path = tmp_path / "r.json"
    code, out, err = _run(["--onnx", onnx, "--backend", "onnxruntime-cuda", "onnxruntime",
                           "--iters", "2", "--json", str(path)], capsys)
    assert code == 0
    assert [b["status"] for b in rep.load_report(path)["backends"]] == ["skipped", "ok"]
    assert "onnxruntime-cuda: a dependency is missing" in err


def test_image_option_times_that_image(tmp_path, model_files, fake_factory, capsys):
    from PIL import Image
    import numpy as np
    onnx, _ = model_files
    img = tmp_path / "street.png"
    Image.fromarray(np.full((20, 40, 3), 7, np.uint8)).save(img)
    path = tmp_path / "r.json"
    code, out, err = _run(["--onnx", onnx, "--backend", "onnxruntime", "--images", str(img),
                           "--iters", "3", "--buffers", "2", "--json", str(path)], capsys)
    assert code == 0, err
    source = rep.load_report(path)["timed"]["input"]
    assert source["kind"] == "image" and source["original_size"] == [40, 20]
    assert source["resized_on_host_to"] == [32, 16] and source["buffers"] == 2
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    code, _, err = _run(["--onnx", onnx, "--images", str(bad), "--iters", "2"], capsys)
    assert code == 5 and "cannot read image" in err  # an unusable file, as in every command


def test_environment_is_recorded_without_a_gpu(tmp_path, model_files, fake_factory, capsys):
    from bisenet_deploy.bench.environment import collect_environment, device_slug, slugify
    env = collect_environment(threads=3)
    assert env["threads"] == 3 and env["python"] and env["cpu"]["logical_cores"] >= 1
    assert env["packages"]["numpy"] and "torch" in env["packages"]
    assert device_slug({"gpus": [{"name": "NVIDIA GeForce GTX 1080 Ti"}]}) == \
        "nvidia-geforce-gtx-1080-ti"
    assert device_slug({"gpus": [], "cpu": {"model": "Intel(R) Xeon(R) CPU @ 2.20GHz"}}) == \
        "cpu-intel-xeon"
    assert slugify("a/b c") == "a-b-c"
