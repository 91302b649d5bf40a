"""`bisenet-bench` end to end on real backends (onnxruntime CPU, torch CPU) with a tiny export.

The model is the paper's network at a tiny size (128x64 input -> 64x32 in-graph), few iterations,
one thread. No timing is asserted: what is asserted is what a user relies on: both backends ran
the same graph input, their outputs passed the check, the report is valid and says what was timed,
and the unavailable backends (no TensorRT/GPU here) are one line each while the others run.
"""

import json

import pytest

from bisenet_deploy.bench import report as rep
from bisenet_deploy.cli import bench_main


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    import torch
    torch.set_num_threads(1)
    from bisenet_deploy.export.pipeline import ExportOptions, export_onnx
    path = tmp_path_factory.mktemp("bench") / "tiny.onnx"
    export_onnx(ExportOptions(output_path=str(path), input_size=(128, 64), model_size=(64, 32),
                              num_classes=5, dataset="custom", output="both", parity=False,
                              simplify=False))
    return str(path)


def test_onnxruntime_and_torch_side_by_side(tiny_onnx, tmp_path, capsys):
    path = tmp_path / "r.json"
    code = bench_main.main(["--onnx", tiny_onnx, "--backend", "onnxruntime", "torch",
                            "--iters", "4", "--warmup", "1", "--threads", "1",
                            "--json", str(path), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = rep.load_report(path)
    ok = report["backends"]
    assert [b["backend"] for b in ok] == ["onnxruntime", "torch"]
    assert all(b["status"] == "ok" for b in ok), [b["error"] for b in ok]
    for b in ok:
        assert b["input"] == "image 1x3x64x128 float32"
        assert b["output_check"]["labels"]["shape"] == [1, 64, 128]
        assert 0 <= b["output_check"]["labels"]["min"] <= b["output_check"]["labels"]["max"] < 5
        assert b["output_check"]["logits"]["shape"] == [1, 5, 64, 128]
        assert b["device_ms"] is None  # CPU: no device time, never a made-up one
        assert b["phases_ms"] is None  # and no copies to split off
    timed = report["timed"]
    assert timed["graph_input"]["size"] == [128, 64] and timed["model_size"] == [64, 32]
    assert timed["in_graph_resize"] == {"from": [128, 64], "to": [64, 32]}
    assert timed["output_names"] == ["labels", "logits"]
    assert report["model"]["weights"] == "random-init"
    assert report["environment"]["packages"]["onnxruntime"]
    assert "x1.00" in out and "random-init" in out
    # what a call covers, both resizes named; and no claim of the paper's FPS at this size
    assert "resize of the logits back to the input size" in timed["end_to_end"]
    assert "-> logits resized back to 128x64 ->" in out
    assert [r["comparable"] for r in report["paper"]["rows"]] == [False, False]
    assert "onnxruntime: not the paper's setup (input 128x64 vs 2048x1024; network" in out
    assert "machine: CPU" in out and "onnxruntime " + report["environment"]["packages"][
        "onnxruntime"] in out


def test_tensorrt_without_tensorrt_is_skipped_in_one_line(tiny_onnx, tmp_path, capsys):
    engine = tmp_path / "tiny.engine"
    engine.write_bytes(b"not an engine")
    path = tmp_path / "r.json"
    code = bench_main.main(["--onnx", tiny_onnx, "--engine", str(engine), "--backend",
                            "tensorrt", "onnxruntime", "--iters", "2", "--threads", "1",
                            "--json", str(path)])
    out, err = capsys.readouterr()
    assert code == 0
    trt_lines = [line for line in err.splitlines() if line.startswith("tensorrt")]
    assert len(trt_lines) == 1 and "cannot run here" in trt_lines[0]
    assert "Traceback" not in err
    statuses = {b["backend"]: b["status"] for b in json.loads(path.read_text())["backends"]}
    assert statuses == {"tensorrt": "skipped", "onnxruntime": "ok"}


def test_onnxruntime_without_onnx_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = bench_main.main(["--backend", "onnxruntime", "--iters", "2"])
    _, err = capsys.readouterr()
    assert code == 4
    assert err.strip().splitlines() == [
        "onnxruntime backend skipped: the onnxruntime backend needs --onnx PATH or "
        "onnxruntime:PATH (make one with `bisenet-export onnx`)"]


def test_onnx_fixed_batch_refuses_another_batch(tiny_onnx, tmp_path, capsys):
    code = bench_main.main(["--onnx", tiny_onnx, "--backend", "onnxruntime", "--batch", "2",
                            "--iters", "2", "--no-json"])
    _, err = capsys.readouterr()
    assert code == 2  # a wrong option for this model: the usage code, as in every command
    assert "takes batch 1 exactly" in err


def test_backend_with_its_own_path_as_in_compare_and_eval(tiny_onnx, tmp_path, capsys,
                                                          monkeypatch):
    """`--backend onnxruntime:PATH` needs no --onnx; two files of one backend run side by side."""
    import shutil
    other = tmp_path / "other.onnx"
    shutil.copyfile(tiny_onnx, other)
    monkeypatch.chdir(tmp_path)
    code = bench_main.main(["--backend", "onnxruntime:" + tiny_onnx, "onnxruntime:%s" % other,
                            "--iters", "2", "--warmup", "0", "--threads", "1", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    reports = list((tmp_path / "benchmarks").iterdir())
    assert len(reports) == 1 and reports[0].name.endswith("-onnxruntime.json")  # no paths in it
    report = rep.load_report(reports[0])
    assert [b["backend"] for b in report["backends"]] == ["onnxruntime:" + tiny_onnx,
                                                          "onnxruntime:%s" % other]
    assert [b["model_file"] for b in report["backends"]] == [tiny_onnx, str(other)]
    assert report["model"]["onnx"] == tiny_onnx
    assert len(report["comparison"]["rows"]) == 2
    code = bench_main.main(["--backend", "onnxruntime:" + str(tmp_path / "nope.onnx")])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "nope.onnx: no such file" in err
    code = bench_main.main(["--backend", "onnxruntime:%s@int8" % other])
    _, err = capsys.readouterr()
    assert code == 2 and "int8 exists only for TensorRT engines" in err
