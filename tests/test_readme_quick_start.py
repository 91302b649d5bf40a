"""The README's Quick start, run exactly as it is written.

The commands are parsed out of README.md and run in a fresh folder laid out as a clone is
(`models/`), with one substitution: the downloaded checkpoint is a synthetic state dict of the
public checkpoint's exact layout (CoinCheung BiSeNetV2, 19 classes), placed where the README copies
it from (~/Downloads). The export and the engine build run for real (TensorRT-RTX builds without a
GPU). The commands that run the engine need an NVIDIA GPU and pycuda: where those are missing they
must end with one line saying so and exit code 4 (not available here), which is checked instead.
`pip install` lines are not run (they change the environment).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXIT_UNAVAILABLE = 4


def quick_start_commands():
    """The Quick start's bash block as a list of command lines (continuations joined)."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## Quick start"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines, current = [], ""
    for raw in block.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line and not current:
            continue
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        lines.append((current + line.strip()).strip())
        current = ""
    return [line for line in lines if line]


def _parser_for(words):
    import importlib

    module = {"bisenet-export": "export_main", "bisenet-build-engine": "build_engine_main",
              "bisenet-bench": "bench_main", "bisenet-compare": "compare_main",
              "bisenet-predict": "predict_main", "bisenet-eval": "eval_main",
              "bisenet-serve": "serve_main"}[words[0]]
    return importlib.import_module(f"bisenet_deploy.cli.{module}").build_parser()


def test_quick_start_commands_use_the_current_options(capsys):
    """Fast: every bisenet-* line of the Quick start parses with today's parsers, without a
    deprecation notice (the README shows the current spellings)."""
    commands = quick_start_commands()
    tools = [shlex.split(c)[0] for c in commands]
    assert tools[:3] == ["cp", "bisenet-export", "bisenet-build-engine"]
    assert {"bisenet-bench", "bisenet-compare", "bisenet-predict"} <= set(tools)
    for command in commands:
        words = shlex.split(command)
        if words[0].startswith("bisenet-"):
            _parser_for(words).parse_args(words[1:])
    assert "deprecated" not in capsys.readouterr().err


def _has_gpu_and_pycuda():
    try:
        import pycuda.driver as cuda  # noqa: F401
        cuda.init()
        return cuda.Device.count() > 0
    except Exception:  # no pycuda, no driver, no GPU: the engine cannot run here
        return False


def _has_tensorrt_that_builds_here():
    from bisenet_deploy.portable.trt.capabilities import installed_summary

    summary = installed_summary().split()
    if not summary:
        return False
    return summary[0] == "tensorrt-rtx" or _has_gpu_and_pycuda()  # full TensorRT needs a GPU


def _synthetic_download(home):
    """A state dict of the public model_final_v2_city.pth's keys and shapes, random values."""
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_checkpoint_coincheung import synthetic_state_dict

    os.makedirs(os.path.join(home, "Downloads"))
    torch.save(synthetic_state_dict(19, aux=True),
               os.path.join(home, "Downloads", "model_final_v2_city.pth"))


def _street_png(path):
    from bisenet_deploy.synthetic import synthetic_image
    from PIL import Image

    Image.fromarray(synthetic_image(256, 128, seed=1)).save(path)


@pytest.mark.slow
def test_quick_start_runs_as_written(tmp_path):
    if shutil.which("bisenet-export") is None:
        pytest.skip("the console scripts are not installed (pip install -e .)")
    if not _has_tensorrt_that_builds_here():
        pytest.skip("no TensorRT that builds here: the Quick start's setup installs TensorRT-RTX "
                    "(scripts/setup_env.sh); full TensorRT builds only on a GPU")
    home = tmp_path / "home"
    work = tmp_path / "clone"
    (work / "models").mkdir(parents=True)  # a clone has models/ (its README is tracked)
    _synthetic_download(str(home))
    _street_png(str(work / "street.png"))
    env = dict(os.environ, HOME=str(home),
               PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    runs_engines = _has_gpu_and_pycuda()
    for command in quick_start_commands():
        words = shlex.split(command)
        if words[:2] == ["pip", "install"]:
            continue  # changes the environment; the lines below say what is missing without it
        done = subprocess.run(command, shell=True, cwd=str(work), env=env, capture_output=True,
                              text=True, timeout=1800)
        runs_engine = words[0] in ("bisenet-bench", "bisenet-compare", "bisenet-predict")
        if runs_engine and not runs_engines:
            errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
            assert done.returncode == EXIT_UNAVAILABLE, (command, done.stdout, done.stderr)
            assert len(errors) <= 1 and re.search(r"pycuda|GPU", done.stderr), done.stderr
            assert "Traceback" not in done.stderr
            continue
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
        assert "deprecated" not in done.stderr, (command, done.stderr)
    engine = work / "engines" / "city-fp16.engine"
    assert (work / "export" / "city.onnx").is_file() and engine.is_file()
    assert (work / "engines" / "city-fp16.json").is_file()  # the sidecar beside the engine
    import json

    with open(str(work / "engines" / "city-fp16.json")) as f:
        assert json.load(f)["precision"] == "fp16"
    if runs_engines:
        assert list((work / "out").glob("street_*.png"))


@pytest.mark.parametrize("installed, target", [
    ("tensorrt-rtx 1.7.1 trt11", "trt11"),   # the setup's TensorRT-RTX: strongly typed rules
    ("tensorrt 10.13.0 trt10", "trt10"),
    ("tensorrt 8.2.1 trt8.2", "trt8.2"),     # a Jetson's JetPack
    ("", "trt10"),                           # no TensorRT: the common desktop target
])
def test_export_target_defaults_to_the_installed_tensorrt(installed, target, monkeypatch):
    """The Quick start's export gives the graph the `bisenet-build-engine` after it can build."""
    from bisenet_deploy.cli import export_onnx
    from bisenet_deploy.portable.trt import capabilities

    monkeypatch.setattr(capabilities, "installed_summary", lambda: installed)
    assert export_onnx.default_target() == target
    args = _parser_for(["bisenet-export"]).parse_args(["onnx"])
    assert args.target is None  # resolved when the export runs, not when --help is printed
