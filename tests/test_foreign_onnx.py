"""An ONNX without bisenet-deploy metadata (e.g. CoinCheung's own export) and a corrupt ONNX: every
command says so in one line with the same exit code, never "internal error: TypeError"."""

import numpy as np
import onnx
import pytest
from PIL import Image

from bisenet_deploy.errors import EXIT_CODES

UNUSABLE_FILE = 5


@pytest.fixture(scope="module")
def models(tiny_export, tmp_path_factory):
    folder = tmp_path_factory.mktemp("foreign")
    _, _, ours = tiny_export("labels")
    model = onnx.load(ours)
    del model.metadata_props[:]
    foreign = folder / "their.onnx"
    onnx.save(model, str(foreign))
    corrupt = folder / "corrupt.onnx"
    corrupt.write_bytes(open(ours, "rb").read()[:4000])
    Image.fromarray(np.full((64, 128, 3), 90, np.uint8)).save(folder / "x.png")
    data = folder / "data"
    for sub in ("images", "labels"):
        (data / sub).mkdir(parents=True)
    Image.fromarray(np.full((64, 128, 3), 90, np.uint8)).save(data / "images" / "a.png")
    Image.fromarray(np.zeros((64, 128), np.uint8)).save(data / "labels" / "a.png")
    return folder, str(foreign), str(corrupt)


def _commands(folder, model):
    from bisenet_deploy.cli import (bench_main, build_engine_main, compare_main, eval_main,
                                    export_main, predict_main)

    return {
        "predict": (predict_main, ["--onnx", model, str(folder / "x.png"), "-o",
                                   str(folder / "out")]),
        "predict-torch": (predict_main, ["--backend", "torch", "--onnx", model,
                                         str(folder / "x.png"), "-o", str(folder / "out")]),
        "compare": (compare_main, ["--against", f"onnxruntime:{model}", "--synthetic", "1"]),
        "eval": (eval_main, ["--backend", f"onnxruntime:{model}", "--data",
                             str(folder / "data"), "--layout", "folders"]),
        "bench": (bench_main, ["--onnx", model, "--iters", "1", "--no-json"]),
        "build-engine": (build_engine_main, [model, "--trtexec", "--trt-version", "10.0"]),
        "jetson": (export_main, ["jetson", "--onnx", model, "-o", str(folder / "bundle")]),
    }


COMMANDS = ["predict", "predict-torch", "compare", "eval", "bench", "build-engine", "jetson"]


@pytest.mark.parametrize("kind", ["foreign", "corrupt"])
@pytest.mark.parametrize("command", COMMANDS)
def test_an_onnx_without_metadata_or_corrupt_is_refused_in_one_line(models, command, kind,
                                                                     capsys):
    folder, foreign, corrupt = models
    path = foreign if kind == "foreign" else corrupt
    main, argv = _commands(folder, path)[command]
    assert main.main(argv + ["-q"]) == UNUSABLE_FILE  # the same code in every command
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err
    line = [x for x in err.splitlines() if path in x][-1]
    if kind == "corrupt":
        assert "not a readable ONNX" in line
    else:  # names what is missing, and what to do
        assert "no bisenet-deploy metadata" in line and "bisenet-export onnx" in line
        for missing in ("input size", "channel order", "mean/std", "classes"):
            assert missing in line
    assert not (folder / "out").exists() and not (folder / "bundle").exists()


def test_check_reads_the_graph_of_a_foreign_onnx(models, capsys):
    from bisenet_deploy.cli.export_main import main

    folder, foreign, corrupt = models
    assert main(["check", foreign]) == 0  # the target rules concern the graph only
    assert "no bisenet_deploy metadata" in capsys.readouterr().out
    assert main(["check", corrupt]) == UNUSABLE_FILE


def test_the_unusable_file_code_is_in_the_table():
    assert dict(EXIT_CODES)[UNUSABLE_FILE].startswith("an unusable file")
