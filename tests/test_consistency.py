"""The same mistake gets the same answer in every command: one line naming the real problem, and
the exit code the README's table gives it."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bisenet_deploy.cli import (bench_main, build_engine_main, compare_main, eval_main,
                                export_main, predict_main)
from bisenet_deploy.errors import EXIT_CODES

README = Path(__file__).resolve().parents[1] / "README.md"


def _usage_error(main, argv, capsys):
    """Run a command expected to stop at the command line; return its one error line."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_the_readme_table_is_the_code_table():
    text = README.read_text()
    for code, meaning in EXIT_CODES:
        row = re.search(r"^\| %s( / \d+)? \| (.*) \|$" % code, text, re.M)
        assert row, f"exit code {code} missing from the README's table"
    assert "| 130 / 143 |" in text


@pytest.mark.parametrize("argv, words", [
    (["onnx", "--input-size", "-1x5"], "size '-1x5' is not WIDTHxHEIGHT with positive integers"),
    (["onnx", "--network-size", "-64x32"], "size '-64x32' is not WIDTHxHEIGHT"),
    (["onnx", "--batch-range", "-1:2:4"], "needs 1 <= MIN <= OPT <= MAX"),
    (["jetson", "--input-size", "-2048x1024", "-o", "b"], "with positive integers"),
])
def test_negative_numbers_are_named_not_taken_for_options(argv, words, capsys):
    line = _usage_error(export_main.main, argv, capsys)
    assert words in line and "expected one argument" not in line


@pytest.mark.parametrize("main, argv, words", [
    (build_engine_main.main, ["m.onnx", "--gpu", "-1"], "--gpu: must be >= 0"),
    (compare_main.main, ["--against", "onnxruntime:m.onnx", "--images", "x", "--limit", "0"],
     "--limit: must be >= 1"),
    (eval_main.main, ["--backend", "torch", "--data", "d", "--limit", "0"],
     "--limit: must be >= 1"),
    (predict_main.main, ["x.png", "-o", "o", "--threads", "0"], "--threads: must be >= 1"),
    (compare_main.main, ["--against", "torch", "--tol", "labels.min_identical=-0.5"],
     "a limit must be a number >= 0"),
    (compare_main.main, ["--against", "torch", "--tol", "fp16.logits.max_rel=-1"],
     "a limit must be a number >= 0"),
    (compare_main.main, ["--against", "torch", "--tol", "labels.min_identical=1.5"],
     "a share between 0 and 1"),
])
def test_out_of_range_values_are_refused(main, argv, words, capsys):
    assert words in _usage_error(main, argv, capsys)


def test_a_negative_limit_in_a_tolerance_file_is_refused(tmp_path, capsys):
    path = tmp_path / "tol.json"
    path.write_text(json.dumps({"fp32": {"labels": {"min_identical": -1}}}))
    line = _usage_error(compare_main.main, ["--against", "torch", "--tol-file", str(path)],
                        capsys)
    assert "fp32.labels.min_identical" in line and ">= 0" in line


def test_messages_name_the_thing_that_is_wrong(tmp_path, capsys):
    assert "is a folder, not an ONNX file" in _usage_error(
        build_engine_main.main, [str(tmp_path), "--trtexec", "--trt-version", "10.0"], capsys)
    data = tmp_path / "data.zip"
    data.write_bytes(b"PK")
    line = _usage_error(eval_main.main, ["--backend", "torch", "--data", str(data)], capsys)
    assert "is a file: give the dataset's root folder" in line
    spec = tmp_path / "crack.json"
    spec.write_text(json.dumps({"class_names": ["crack"], "palette": [[255, 0]]}))
    line = _usage_error(export_main.main, ["summary", "--dataset", str(spec)], capsys)
    assert "palette colour 0 is [255, 0]: each colour is [R, G, B]" in line
    spec.write_text(json.dumps({"class_names": ["a", "b"], "palette": [[255, 0, 0]]}))
    line = _usage_error(export_main.main, ["summary", "--dataset", str(spec)], capsys)
    assert "palette has 1 colour(s) for 2 class(es): it needs one [R, G, B] colour" in line


@pytest.mark.parametrize("sub, needed", [
    ("onnx", []), ("check", ["m.onnx"]), ("summary", []), ("checkpoint", ["--checkpoint", "c"]),
    ("jetson", ["-o", "b"])])
def test_a_mistyped_option_names_the_sub_commands_help(sub, needed, capsys):
    line = _usage_error(export_main.main, [sub] + needed + ["--no-such-option"], capsys)
    assert f"(see `bisenet-export {sub} --help`)" in line and "--no-such-option" in line


def test_arch_help_lists_the_architectures(capsys):
    with pytest.raises(SystemExit):
        export_main.main(["onnx", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "bisenetv2, bisenetv2-large, bisenetv2-coincheung" in out
    assert "invalid choice: 'bisenetv3'" in _usage_error(
        export_main.main, ["summary", "--arch", "bisenetv3"], capsys)


def test_an_internal_error_is_one_line_with_its_own_code(monkeypatch, capsys):
    from bisenet_deploy.cli import export_summary

    def broken(args):
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(export_summary, "_run", broken)
    assert export_main.main(["summary", "-q"]) == 70
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "internal error: RuntimeError: first line second line" in lines[0]


def test_bench_exits_with_the_code_of_the_failure(monkeypatch, tmp_path, capsys):
    from bisenet_deploy.errors import UnusableFileError

    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")

    def open_runner(backend, **kwargs):
        raise UnusableFileError("m.onnx is not a readable ONNX model")

    monkeypatch.setattr(bench_main, "_open_runner", open_runner)
    monkeypatch.setattr(bench_main, "_backend_problem", lambda name: None)
    assert bench_main.main(["--onnx", str(onnx), "--iters", "1", "--no-json", "-q"]) == 5


def test_eval_runs_a_folder_dataset_at_its_own_size_by_default(tmp_path, tiny_export, capsys):
    _, ckpt, _ = tiny_export("labels")
    for sub in ("images", "labels"):
        (tmp_path / sub).mkdir()
    Image.fromarray(np.full((64, 128, 3), 120, np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.zeros((64, 128), np.uint8)).save(tmp_path / "labels" / "a.png")
    report = tmp_path / "e.json"
    assert eval_main.main(["--backend", "torch", "--checkpoint", ckpt, "--data", str(tmp_path),
                           "--layout", "folders", "--json", str(report), "--no-progress",
                           "-q"]) == 0
    protocol = json.loads(report.read_text())["results"][0]["protocol"]
    assert protocol["protocol"] == "full" and protocol["network_size"] == [128, 64]


@pytest.mark.parametrize("main, argv", [
    (predict_main.main, ["--onnx", "nope.onnx", "x.png", "-o", "out"]),
    (predict_main.main, ["--checkpoint", "nope.pth", "x.png", "-o", "out"]),
    (predict_main.main, ["--engine", "nope.engine", "x.png", "-o", "out"]),
    (compare_main.main, ["--against", "onnxruntime:nope.onnx"]),
    (compare_main.main, ["--checkpoint", "nope.pth", "--against", "torch"]),
    (export_main.main, ["onnx", "--checkpoint", "nope.pth"]),
    (export_main.main, ["checkpoint", "--checkpoint", "nope.pth"]),
    (export_main.main, ["check", "nope.onnx"]),
    (build_engine_main.main, ["nope.onnx", "--trtexec", "--trt-version", "10.0"]),
    (bench_main.main, ["--checkpoint", "nope.pth", "--no-json"]),
], ids=["predict-onnx", "predict-ckpt", "predict-engine", "compare-onnx", "compare-ckpt",
        "export-onnx", "export-checkpoint", "check", "build-engine", "bench"])
def test_a_missing_model_file_is_a_usage_error_everywhere(main, argv, tmp_path, monkeypatch,
                                                          capsys):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "x.png")
    line = _usage_error(main, argv + ["-q"], capsys)
    assert "nope." in line and ("not found" in line or "does not exist" in line
                                or "no such file" in line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]
