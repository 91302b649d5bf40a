"""`bisenet-doctor`: reports what this machine really has, gives the support matrix's advice for it,
never crashes when something is missing, and every "not available here" error points to it."""

import argparse
import json
import os
import stat
import subprocess
import sys

import pytest

from bisenet_deploy.portable.trt.capabilities import assumed_capabilities

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: a meta-path hook that makes `names` unimportable even where they are installed
BLOCK = (
    "import sys, importlib.abc\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in {names!r}:\n"
    "            raise ImportError('blocked ' + name)\n"
    "sys.meta_path.insert(0, Block())\n")


def run_doctor(argv, block=(), path_prefix=None):
    """`python -m bisenet_deploy.cli.doctor_main ARGV` (the console script's module) in a fresh
    interpreter, with `block` made unimportable and `path_prefix` first on PATH."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if path_prefix:
        env["PATH"] = str(path_prefix) + os.pathsep + env.get("PATH", "")
    code = BLOCK.format(names=tuple(block)) + (
        "import runpy; sys.argv = ['bisenet-doctor'] + %r\n"
        "runpy.run_module('bisenet_deploy.cli.doctor_main', run_name='__main__')\n" % (list(argv),))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)


def _rtx_version():
    try:
        import tensorrt_rtx_bindings as rtx
    except ImportError:
        try:
            import tensorrt_rtx as rtx
        except ImportError:
            return None
    return str(rtx.__version__) if hasattr(rtx, "Builder") else None


def _machine_has_gpu():
    return any(os.access(os.path.join(d, "nvidia-smi"), os.X_OK)
               for d in os.environ.get("PATH", "").split(os.pathsep)) or \
        os.path.exists("/etc/nv_tegra_release")


@pytest.fixture(scope="module")
def here():
    """This machine's doctor record (one run for the tests that read it)."""
    out = run_doctor(["--json"])
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_it_reports_the_tensorrt_rtx_of_this_machine_and_no_gpu(here):
    version = _rtx_version()
    if version is None:
        pytest.skip("TensorRT-RTX is not installed here")
    if _machine_has_gpu():
        pytest.skip("this machine has a GPU")
    flavours = {t["flavour"]: t for t in here["tensorrt"]}
    rtx = flavours["tensorrt-rtx"]
    assert rtx["installed"] and rtx["version"] == version
    assert rtx["capabilities"]["builds_without_gpu"] is True
    assert "7.5" in rtx["capabilities"]["compute_targets"]
    assert here["gpus"] == []
    [advice] = [a for a in here["advice"] if a["flavour"] == "tensorrt-rtx"]
    assert advice["gpu"] is None and advice["usable"]
    assert (advice["target"], advice["precision"]) == ("trt11", "fp16")
    assert advice["export"].endswith("--target trt11 --precision fp16")
    assert "--trt-flavour tensorrt-rtx" in advice["build"]
    assert not [m for m in here["missing"] if m["what"] == "TensorRT-RTX"]


def test_the_packages_match_what_imports_here(here):
    import onnx
    import onnxruntime
    import torch

    packages = here["packages"]
    assert packages["torch"]["version"] == torch.__version__
    assert packages["onnx"]["version"] == onnx.__version__
    assert packages["onnxruntime"]["providers"] == onnxruntime.get_available_providers()
    assert packages["torch"]["cuda_build"] == torch.version.cuda
    assert here["python"]["version"] == "%d.%d.%d" % sys.version_info[:3]
    for key, entry in packages.items():
        if not entry["installed"]:
            assert any(m["what"] == key and m["install"] for m in here["missing"]), key


def test_the_text_report_says_the_same(here):
    out = run_doctor([])
    assert out.returncode == 0, out.stderr
    for entry in here["tensorrt"]:
        if entry["installed"]:
            assert f"{entry['label']} " in out.stdout and entry["version"] in out.stdout
    for missing in here["missing"]:
        assert missing["install"] in out.stdout
    if not here["gpus"]:
        assert "GPUs:\n  none found" in out.stdout


def test_nothing_installed_is_reported_with_the_install_lines_not_a_crash():
    blocked = ("tensorrt", "tensorrt_rtx", "tensorrt_rtx_bindings", "torch", "onnxruntime",
               "onnxsim", "pycuda", "cuda", "pytriton", "tritonclient", "cv2")
    out = run_doctor(["--json"], block=blocked)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert not any(t["installed"] for t in report["tensorrt"])
    assert report["advice"] == []
    for key in ("torch", "onnxruntime", "pycuda", "cuda-python", "nvidia-pytriton",
                "tritonclient", "opencv"):
        assert report["packages"][key]["installed"] is False
        assert "blocked" in report["packages"][key]["reason"]
    install = {m["what"]: m["install"] for m in report["missing"]}
    assert install["TensorRT-RTX"] == "pip install -e '.[rtx]'"
    assert install["TensorRT"] == "pip install -e '.[trt]'"
    assert install["nvidia-pytriton"] == install["tritonclient"] == "pip install -e '.[serve]'"
    assert install["opencv"] == "pip install -e '.[video]'"
    text = run_doctor([], block=blocked)
    assert text.returncode == 0, text.stderr
    assert "no TensorRT is installed" in text.stdout


def test_a_gpu_seen_by_nvidia_smi_gets_its_own_advice(tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n"
                   "case \"$*\" in *query-gpu*) "
                   "echo 'NVIDIA GeForce RTX 2080, 7.5, 550.54, 8192, 300, 1800';; "
                   "*) echo 'CUDA Version: 12.4';; esac\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    out = run_doctor(["--json"], path_prefix=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert [(g["name"], g["compute_capability"]) for g in report["gpus"]] == [
        ("NVIDIA GeForce RTX 2080", "7.5")]
    if _rtx_version() is None:
        pytest.skip("TensorRT-RTX is not installed here")
    [advice] = [a for a in report["advice"] if a["flavour"] == "tensorrt-rtx"]
    assert advice["gpu"] == "NVIDIA GeForce RTX 2080 (SM 7.5)"
    assert advice["build"].endswith("--compute-capability 7.5")  # Turing is not portable


# -- the support matrix applied to one flavour and one GPU (advice.py), without any TensorRT --

def gpu(cc, name="GPU"):
    return {"name": name, "compute_capability": cc}


def test_tensorrt_rtx_on_a_pascal_gpu_sends_the_user_to_full_tensorrt():
    from bisenet_deploy.doctor.advice import advise

    advice = advise(assumed_capabilities("1.7.1", "tensorrt-rtx"), gpu("6.1"))
    assert not advice["usable"] and advice["build"] is None
    assert "no target for SM 6.1" in advice["why"][0]
    assert "pip install -e '.[trt]'" in advice["why"][0]


def test_tensorrt_rtx_on_an_ampere_gpu_builds_the_portable_fp16_engine():
    from bisenet_deploy.doctor.advice import advise

    advice = advise(assumed_capabilities("1.7.1", "tensorrt-rtx"), gpu("8.6"))
    assert advice["usable"] and (advice["target"], advice["precision"]) == ("trt11", "fp16")
    assert "--compute-capability" not in advice["build"]


@pytest.mark.parametrize("version, cc, target, precision", [
    ("8.6.1", "6.1", "trt8.6", "fp32"),   # GTX 1080 Ti: FP16 is slower than FP32
    ("10.13.0", "8.6", "trt10", "fp16"),
    ("11.0.0", "8.9", "trt11", "fp16"),   # no precision flags: FP16 comes from the graph
])
def test_full_tensorrt_target_and_precision_follow_the_gpu(version, cc, target, precision):
    from bisenet_deploy.doctor.advice import advise

    advice = advise(assumed_capabilities(version), gpu(cc))
    assert advice["usable"]
    assert (advice["target"], advice["precision"]) == (target, precision)
    assert f"--target {target}" in advice["export"]
    assert ("--precision fp16" in advice["export"]) == (target == "trt11")
    assert ("--fp16" in advice["build"]) == (precision == "fp16")


def test_tensorrt_10_on_pascal_is_refused_with_the_version_to_use():
    from bisenet_deploy.doctor.advice import advise

    advice = advise(assumed_capabilities("10.13.0"), gpu("6.1"))
    assert not advice["usable"]
    assert any("TensorRT 8.6" in why for why in advice["why"])


def test_full_tensorrt_without_a_gpu_exports_here_and_builds_elsewhere():
    from bisenet_deploy.doctor.advice import advise

    advice = advise(assumed_capabilities("10.13.0"), None)
    assert not advice["usable"] and advice["build"] is None
    assert advice["export"].endswith("--target trt10")


# -- every "not available here" error points to the doctor ---------------------------------------

def _cli_raising(error):
    from bisenet_deploy.cli.common import run_cli

    parser = argparse.ArgumentParser(prog="bisenet-x")

    def fail(args):
        raise error

    parser.set_defaults(func=fail)
    return lambda: run_cli(parser, [])


def test_a_missing_dependency_error_names_the_doctor(capsys):
    from bisenet_deploy.errors import MissingDependencyError

    missing = MissingDependencyError("pycuda is not installed; pip install -e '.[trt]'")
    code = _cli_raising(missing)()
    err = capsys.readouterr().err
    assert code == 4
    assert err.count("\n") == 1 and "bisenet-doctor" in err


def test_other_errors_do_not(capsys):
    from bisenet_deploy.errors import InputError

    assert _cli_raising(InputError("no such file: x.onnx"))() == 2
    assert "bisenet-doctor" not in capsys.readouterr().err
