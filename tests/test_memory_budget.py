"""Options that size memory are refused in one line (exit 2) before any work when the machine
cannot hold what they ask for, instead of a MemoryError (exit 70) after minutes of work."""

import pytest

from bisenet_deploy.cli import bench_main
from bisenet_deploy.portable.shared import memory
from support.bench_fakes import FakeRunner
from support.records import bench_record as make_record

GIB = 1 << 30


@pytest.fixture
def one_gib(monkeypatch):
    """A machine with 1 GiB available, whatever this one has."""
    monkeypatch.setattr(memory, "available_bytes", lambda: GIB)


def test_check_fits_refuses_beyond_the_usable_share_of_what_is_available():
    memory.check_fits(int(0.8 * GIB), "x", "y", available=GIB)
    with pytest.raises(memory.MemoryBudgetError, match=r"about 900\.0 MiB.*\(1\.0 GiB "
                                                        r"available\): lower it") as info:
        memory.check_fits(900 << 20, "--n 9 things", "lower it", available=GIB)
    assert info.value.exit_code == 2 and str(info.value).startswith("--n 9 things need")
    assert memory.available_bytes() > 0  # Linux says, through /proc/meminfo


@pytest.fixture
def runners(monkeypatch):
    opened = []

    def open_runner(backend, **kwargs):
        runner = FakeRunner(make_record(input_size=(2048, 1024)), [1.0], name=backend)
        opened.append(runner)
        return runner

    monkeypatch.setattr(bench_main, "_open_runner", open_runner)
    monkeypatch.setattr(bench_main, "_backend_problem", lambda backend: None)
    return opened


@pytest.fixture
def onnx_file(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"not read by the fake runners")
    return str(path)


def test_bench_buffers_beyond_memory_are_refused_before_any_timed_call(one_gib, runners,
                                                                      onnx_file, capsys):
    code = bench_main.main(["--onnx", onnx_file, "--backend", "onnxruntime", "torch",
                            "--buffers", "1000000", "--iters", "5", "--no-json",
                            "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.splitlines()[-1].startswith("error: --buffers 1000000 x --batch 1 input images of "
                                           "2048x1024 need about")
    assert [r.calls for r in runners] == [0]  # the first backend refused it, no other opened
    assert bench_main.main(["--onnx", onnx_file, "--backend", "onnxruntime", "--batch", "20000",
                            "--iters", "5", "--no-json", "--no-progress"]) == 2
    assert "--batch 20000" in capsys.readouterr().err


def test_bench_iterations_beyond_memory_are_refused_before_opening_anything(one_gib, runners,
                                                                           onnx_file, capsys):
    code = bench_main.main(["--onnx", onnx_file, "--backend", "onnxruntime", "--iters",
                            "100000000", "--no-json", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--iters 100000000 timed calls" in err and len(err.splitlines()) == 1
    assert runners == []


def test_bench_within_memory_runs(one_gib, runners, onnx_file, capsys):
    assert bench_main.main(["--onnx", onnx_file, "--backend", "onnxruntime", "--iters", "5",
                            "--warmup", "1", "--no-json", "--no-progress"]) == 0


def test_compare_synthetic_images_beyond_memory_are_refused(one_gib, tiny_export, capsys):
    from bisenet_deploy.cli.compare_main import main

    _, ckpt, onnx_path = tiny_export("labels")
    capsys.readouterr()
    code = main(["--checkpoint", ckpt, "--against", "onnxruntime:" + onnx_path, "--synthetic",
                 "100000", "--threads", "1", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: --synthetic 100000 images"), err


def _served_probe(monkeypatch, record):
    """`bisenet-bench --server` probes the served model's record first: a fake served model."""
    from bisenet_deploy.serve import client

    monkeypatch.setattr(client, "ServedRunner",
                        lambda url, name: FakeRunner(record, [1.0], name="served"))


def test_bench_server_concurrency_beyond_memory_is_refused_before_any_request(
        one_gib, monkeypatch, capsys):
    _served_probe(monkeypatch, make_record(input_size=(2048, 1024)))
    assert bench_main.main(["--server", "127.0.0.1:8000", "--concurrency", "1", "100000",
                            "--iters", "5", "--no-json"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: --concurrency 100000 clients x --batch 1 "), err
    assert "use fewer clients" in err and "Traceback" not in err


def test_serve_max_batch_beyond_memory_is_refused_before_the_server_starts(
        one_gib, monkeypatch, capsys, tmp_path):
    from bisenet_deploy.cli import serve_main
    from bisenet_deploy.serve import server

    started = []
    monkeypatch.setattr(server, "import_pytriton", lambda: None)
    monkeypatch.setattr(server, "ModelServer", lambda *a, **k: started.append(a))
    monkeypatch.setattr(serve_main, "open_runners", lambda args, backend: [
        FakeRunner(make_record(input_size=(2048, 1024)), [1.0], name="onnxruntime")])
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not read by the fake runner")
    assert serve_main.main(["--onnx", str(onnx), "--max-batch", "100000", "--host",
                            "127.0.0.1"]) == 2
    err = capsys.readouterr().err
    assert "error: --max-batch 100000 on 1 instance(s)" in err and "lower --max-batch" in err
    assert started == []
