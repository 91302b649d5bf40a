"""`bisenet-export onnx` end to end through the command line."""

import os

import onnx

from bisenet_deploy.cli.export_main import main
from bisenet_deploy.export.check import check_onnx
from bisenet_deploy.export.onnx_metadata import read_record


def test_export_onnx_cli_writes_a_proven_graph_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    rc = main(["onnx", "--arch", "bisenetv2-coincheung", "--input-size", "128x64",
               "--network-size", "64x32", "--target", "trt8.2", "--outputs", "both",
               "--batch-range", "1:1:2", "-o", str(out)])
    assert rc == 0
    printed = capsys.readouterr()
    assert f"wrote {out}" in printed.out
    assert "parity  labels identical" in printed.out
    assert "trt8.2 opset 13" in printed.out
    assert "exporter dynamo" in printed.out  # the default: torch.export-based where available
    assert "RANDOM" in printed.err  # the loud warning about random weights
    record = read_record(str(out))
    assert record["export"]["batch"] == {"dynamic": True, "min": 1, "opt": 1, "max": 2}
    assert check_onnx(onnx.load(str(out)), "trt8.2") == []


def test_export_onnx_cli_bad_sizes_exit_cleanly_without_a_file(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    rc = main(["onnx", "--input-size", "2048x1024", "--network-size", "1000x500", "-o", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "multiples of 32" in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_export_onnx_cli_refuses_uint8_for_trt82(tmp_path, capsys):
    rc = main(["onnx", "--target", "trt8.2", "--input-dtype", "uint8", "-o",
               str(tmp_path / "m.onnx")])
    assert rc == 2
    assert "no UINT8" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_export_onnx_cli_refuses_opset_14_for_trt82_before_loading_or_exporting(tmp_path, capsys,
                                                                               monkeypatch):
    """TensorRT 8.2's parser reads opsets up to 13: 14 is refused before the model is built or
    traced, in one line that names the range, and nothing is written."""
    import bisenet_deploy.checkpoint as checkpoint
    from bisenet_deploy.export import pipeline

    def too_late(*args, **kwargs):
        raise AssertionError("the export ran before --opset was checked against the target")

    monkeypatch.setattr(checkpoint, "load_model", too_late)
    monkeypatch.setattr(pipeline, "torch_export", too_late)
    out = tmp_path / "m.onnx"
    rc = main(["onnx", "--target", "trt8.2", "--opset", "14", "-o", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--opset 14" in err and "trt8.2" in err and "11..13" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert os.listdir(tmp_path) == []
