"""What the commands write: every line once, results on stdout and logs on stderr (--json: one
JSON object on stdout), progress bars only on a terminal and never glued to a line."""

import argparse
import io
import json
import logging

import numpy as np
import pytest
from PIL import Image

from bisenet_deploy.synthetic import synthetic_image


def lines_of(captured):
    return [line for line in (captured.out + captured.err).splitlines() if line.strip()]


def assert_each_line_once(captured):
    lines = lines_of(captured)
    twice = sorted({line for line in lines if lines.count(line) > 1})
    assert not twice, f"printed more than once: {twice}"


@pytest.fixture(autouse=True)
def no_foreign_log_handlers(monkeypatch):
    """Only this toolkit's own lines: a root-logger handler an earlier test left behind (on a
    stream since closed) would add third-party lines that are none of ours."""
    monkeypatch.setattr(logging.root, "handlers", [])


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self):
        return True


def test_export_onnx_prints_the_parser_verdict_and_parity_once(tmp_path, capsys):
    from bisenet_deploy.cli.export_main import main

    assert main(["onnx", "--target", "trt10", "--input-size", "128x64", "--model-size", "64x32",
                 "-o", str(tmp_path / "m.onnx")]) == 0
    captured = capsys.readouterr()
    assert_each_line_once(captured)
    both = captured.out + captured.err
    assert both.count("labels identical") == 1  # the parity result, on stdout
    assert "  parity  labels identical" in captured.out
    assert both.count("ONNX parser:") <= 1
    assert "\r" not in captured.err  # no progress bar into a captured log


def test_export_onnx_json_is_one_object_on_stdout_and_the_log_on_stderr(tmp_path, capsys):
    from bisenet_deploy.cli.export_main import main

    out = tmp_path / "j.onnx"
    assert main(["onnx", "--input-size", "96x48", "--model-size", "64x32", "--skip-parity",
                 "--exporter", "torchscript", "--no-simplify", "-o", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)  # exactly one JSON document, nothing else
    assert record["path"] == str(out)
    assert record["record"]["export"]["input_size"] == [96, 48]
    assert record["parity"] is None  # --skip-parity
    assert record["nodes"] > 0 and record["file_bytes"] == out.stat().st_size
    assert [t["step"] for t in record["timings"]][-1] == "write"
    assert "write" in captured.err  # the step log stays on stderr


def test_export_check_json_passes_and_fails_with_the_same_exit_codes(tiny_export, tmp_path,
                                                                     capsys):
    import onnx
    from onnx import TensorProto, helper

    from bisenet_deploy.cli.export_main import main
    from bisenet_deploy.export.targets import DEFAULT_TARGET

    assert main(["check", tiny_export("labels")[2], "--json"]) == 0
    ok = json.loads(capsys.readouterr().out)
    assert ok["passed"] and ok["violations"] == [] and ok["target"] == DEFAULT_TARGET
    assert ok["metadata"]
    # opset 18 breaks trt8.2's rules (opset 13 at most); a foreign graph has no metadata
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["image"], ["logits"])], "g", [inp], [out])
    bad = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(bad))
    assert main(["check", str(bad), "--target", "trt8.2", "--json"]) == 3
    captured = capsys.readouterr()
    failed = json.loads(captured.out)
    assert not failed["passed"] and failed["violations"] and not failed["metadata"]
    assert "no bisenet_deploy metadata" in captured.err  # the note is a log line, not stdout


def test_triton_prints_the_written_repository_once(tiny_dynamic_export, tmp_path, capsys):
    from bisenet_deploy.cli.export_main import main

    repo = tmp_path / "repo"
    assert main(["triton", "--onnx", tiny_dynamic_export, "-o", str(repo), "--kind", "cpu"]) == 0
    captured = capsys.readouterr()
    assert_each_line_once(captured)
    assert sum(str(repo) in line for line in lines_of(captured)) == 2  # repository:, next:


def test_jetson_prints_the_written_bundle_once(tmp_path, capsys):
    from bisenet_deploy.cli.export_main import main

    bundle = tmp_path / "tx2"
    assert main(["jetson", "--input-size", "128x64", "--model-size", "64x32", "--exporter",
                 "torchscript", "--no-simplify", "-o", str(bundle)]) == 0
    captured = capsys.readouterr()
    assert_each_line_once(captured)
    assert sum(line.startswith("bundle") for line in lines_of(captured)) == 1
    assert (captured.out + captured.err).count("labels identical") == 1  # parity, once


# -- progress bars -------------------------------------------------------------------------------

def test_a_bar_is_drawn_on_a_terminal_only(monkeypatch):
    from bisenet_deploy.progress import progress_bar

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with progress_bar(range(3), desc="working", unit="img") as bar:
        assert list(bar) == [0, 1, 2]
    assert "working:" in terminal.getvalue() and "/3 [" in terminal.getvalue()  # count, ETA
    with progress_bar(range(3), desc="off", enabled=False) as bar:  # --no-progress
        assert list(bar) == [0, 1, 2]
    captured = io.StringIO()
    monkeypatch.setattr("sys.stderr", captured)
    with progress_bar(range(3), desc="logged") as bar:
        assert list(bar) == [0, 1, 2]
    assert "off" not in terminal.getvalue() and captured.getvalue() == ""


def test_a_log_line_during_a_bar_gets_its_own_line(monkeypatch):
    from bisenet_deploy.cli.common import setup_logging
    from bisenet_deploy.progress import progress_bar

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    setup_logging()
    log = logging.getLogger("bisenet_deploy.test")
    with progress_bar(range(3), desc="working") as bar:
        for i in bar:
            log.info("line %d", i)
    pieces = [p.strip() for p in terminal.getvalue().replace("\r", "\n").split("\n")]
    for i in range(3):
        assert f"line {i}" in pieces  # a whole line of its own, not glued to the bar


@pytest.fixture(scope="module")
def folder_dataset(tiny_export):
    d, ckpt, onnx_path = tiny_export("labels")
    root = d / "lines-dataset"
    for sub in ("images", "labels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(2):
        Image.fromarray(synthetic_image(128, 64, seed=i)).save(root / "images" / f"{i}.png")
        labels = np.random.default_rng(i).integers(0, 19, size=(64, 128), dtype=np.uint8)
        Image.fromarray(labels).save(root / "labels" / f"{i}.png")
    return onnx_path, root


def test_eval_draws_no_bar_into_a_captured_log(folder_dataset, capsys):
    from bisenet_deploy.cli.eval_main import main

    onnx_path, root = folder_dataset
    assert main(["--backend", "onnxruntime", "--onnx", onnx_path, "--data", str(root),
                 "--layout", "folders", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "evaluating:" not in captured.err
    assert_each_line_once(captured)


@pytest.mark.parametrize("flags, drawn", [([], True), (["--no-progress"], False)])
def test_predict_draws_its_bar_on_a_terminal_unless_told_not_to(folder_dataset, tmp_path,
                                                                monkeypatch, capsys, flags,
                                                                drawn):
    from bisenet_deploy.cli.predict_main import main

    onnx_path, root = folder_dataset
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["--onnx", onnx_path, str(root / "images"), "-o", str(tmp_path / "out"),
                 "--threads", "1"] + flags) == 0
    assert ("predicting" in terminal.getvalue()) == drawn
    out = capsys.readouterr().out
    latency = [line for line in out.splitlines() if ".png: infer " in line]
    assert len(latency) == 2 and len(set(latency)) == 2  # one line per image, each once


def test_int8_calibration_advances_a_bar_per_batch(tmp_path, monkeypatch):
    from bisenet_deploy.cli.build_engine_main import _calibration_bar
    from bisenet_deploy.portable.building.calibrator import CalibrationBatches
    from support.records import make_record

    for i in range(4):
        np.save(tmp_path / f"{i}.npy", synthetic_image(64, 32, seed=i))
    paths = sorted(str(p) for p in tmp_path.glob("*.npy"))
    record = make_record()
    assert len(list(CalibrationBatches(paths, record, batch_size=2))) == 2  # no bar: no callable
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    batches = list(CalibrationBatches(paths, record, batch_size=2, progress=_calibration_bar))
    assert len(batches) == 2
    assert "INT8 calibration:" in terminal.getvalue() and "/2 [" in terminal.getvalue()


def test_every_command_with_a_long_loop_takes_no_progress():
    from bisenet_deploy.cli import (bench_main, build_engine_main, compare_main, eval_main,
                                    export_main, predict_main)

    export = {name: p for a in export_main.build_parser()._actions
              if isinstance(a, argparse._SubParsersAction) for name, p in a.choices.items()}
    parsers = [export["onnx"], export["jetson"], predict_main.build_parser(),
               compare_main.build_parser(), eval_main.build_parser(), bench_main.build_parser(),
               build_engine_main.build_parser()]
    for parser in parsers:
        assert "--no-progress" in parser._option_string_actions, parser.prog
