"""`bisenet-export summary`: the table, the --json contract, size errors, and --checkpoint."""

import json
import subprocess
import sys

import pytest
import torch

from bisenet_deploy.cli.export_main import main
from test_model_coincheung import read_tsv

STAGES = ["detail.S1", "detail.S2", "detail.S3", "semantic.S1S2", "semantic.S3", "semantic.S4",
          "semantic.S5", "aggregation", "head"]


def run(capsys, *argv):
    code = main(["summary", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_is_one_object_with_the_contract_keys(capsys):
    code, out, _ = run(capsys, "--arch", "bisenetv2", "--json")
    assert code == 0
    result = json.loads(out)  # the whole of stdout is one JSON document
    assert {"params", "total_macs", "stages"} <= set(result)
    assert list(result["stages"]) == STAGES
    for info in result["stages"].values():
        assert {"macs", "output_shape", "params", "paper_macs"} <= set(info)
        assert isinstance(info["macs"], int) and info["macs"] > 0
    assert result["stages"]["head"]["output_shape"] == [1, 19, 512, 1024]
    assert result["stages"]["detail.S1"]["paper_macs"] == pytest.approx(5.1e9)
    assert result["total_macs"] == sum(s["macs"] for s in result["stages"].values())


def test_json_model_size_and_classes(capsys):
    code, out, _ = run(capsys, "--arch", "bisenetv2-coincheung", "--num-classes", "150",
                       "--network-size", "512x256", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["stages"]["head"]["output_shape"] == [1, 150, 256, 512]
    assert result["stages"]["semantic.S5"]["output_shape"] == [1, 128, 8, 16]
    assert result["model_size"] == [512, 256]


def test_table_shows_paper_figures(capsys):
    code, out, _ = run(capsys, "--arch", "bisenetv2")
    assert code == 0
    for stage in STAGES:
        assert stage in out
    assert "5.10G" in out and "145.2M" in out and "21.15G" in out
    assert "5,298,115" in out  # inference parameters


@pytest.mark.parametrize("size", ["1000x512", "1024x500"])
def test_model_size_not_multiple_of_32_is_a_clear_error(capsys, size):
    code, out, err = run(capsys, "--arch", "bisenetv2", "--network-size", size, "--json")
    assert code == 2
    assert out == ""
    assert "multiples of 32" in err and "1024x512" in err
    assert "Traceback" not in err


def test_malformed_size_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["summary", "--network-size", "big"])
    assert exc.value.code == 2


def test_unknown_arch(capsys):
    with pytest.raises(SystemExit) as exc:  # a usage error: --arch lists its choices
        run(capsys, "--arch", "resnet18")
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == ""
    assert "bisenetv2-coincheung" in err


def test_checkpoint_selects_the_coincheung_arch(tmp_path, capsys):
    pytest.importorskip("bisenet_deploy.checkpoint")
    state = {key: torch.tensor(0) if shape == () else torch.zeros(shape)
             for key, shape in read_tsv()}
    path = tmp_path / "model_final_v2_city.pth"
    torch.save(state, path)
    code, out, err = run(capsys, "--checkpoint", str(path), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["arch"] == "bisenetv2-coincheung"
    assert result["params"] == 3_358_627
    assert result["params_with_aux"] > result["params"]


def test_console_stdout_is_pure_json():
    out = subprocess.run(
        [sys.executable, "-m", "bisenet_deploy.cli.export_main", "summary", "--arch",
         "bisenetv2-coincheung", "--network-size", "256x128", "--json"],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["params"] == 3_358_627


def test_model_table_and_size_check_import_without_torch():
    code = ("import sys; from bisenet_deploy.model import ARCHITECTURES; "
            "from bisenet_deploy.model.summary import check_model_size; "
            "check_model_size(2048, 1024); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
