"""`bisenet-build-engine` without TensorRT: one clear line and a non-zero exit for every mode that
needs it; `--help` and `--trtexec --trt-version X` work."""

import subprocess
import sys

import pytest
from support.onnx_graphs import preprocessing_graph, save
from support.records import engine_record as make_record

from bisenet_deploy.cli import build_engine_main

# run the CLI in a fresh interpreter where no TensorRT (full or RTX) nor pycuda can be imported
BLOCKED = (
    "import sys, importlib.abc\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('tensorrt', 'pycuda', 'tensorrt_rtx',\n"
    "                                  'tensorrt_rtx_bindings', 'tensorrt_rtx_libs'):\n"
    "            raise ImportError('No module named ' + repr(name))\n"
    "sys.meta_path.insert(0, Block())\n"
    "from bisenet_deploy.cli.build_engine_main import main\n"
    "sys.exit(main(sys.argv[1:]))\n")

# ... and one where `import tensorrt` finds only type stubs (as here, with tensorrt-stubs) and there
# is no TensorRT-RTX
STUBS = (
    "import sys, types\n"
    "sys.modules['tensorrt'] = types.ModuleType('tensorrt')\n"
    "sys.modules['tensorrt_rtx'] = sys.modules['tensorrt_rtx_bindings'] = None\n"
    "from bisenet_deploy.cli.build_engine_main import main\n"
    "sys.exit(main(sys.argv[1:]))\n")


def _cli(code, *args, cwd=None):
    return subprocess.run([sys.executable, "-c", code] + [str(a) for a in args],
                          capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    rec = make_record(batch={"dynamic": True, "min": 1, "opt": 2, "max": 4}, target="trt8.2",
                      precision="fp16")
    return save(preprocessing_graph(rec), tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.mark.parametrize("runner", [BLOCKED, STUBS], ids=["absent", "stubs-only"])
@pytest.mark.parametrize("mode", ["build", "int8", "inspect", "trtexec-installed"])
def test_modes_needing_tensorrt_fail_with_one_line(onnx_file, tmp_path, runner, mode):
    args = {
        "build": [onnx_file, "--fp16", "-o", tmp_path / "x.engine"],
        "int8": [onnx_file, "--int8", "--calib-images", tmp_path],
        "inspect": ["--inspect", tmp_path / "x.engine"],
        "trtexec-installed": [onnx_file, "--trtexec"],
    }[mode]
    out = _cli(runner, *args, cwd=str(tmp_path))
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 4, out.stderr
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and "TensorRT" in lines[0]
    assert "pip install -e '.[trt]'" in lines[0]
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert not (tmp_path / "x.engine").exists() and not (tmp_path / "engines").exists()


def test_help_without_tensorrt():
    out = _cli(BLOCKED, "--help")
    assert out.returncode == 0 and "--trtexec" in out.stdout and "--inspect" in out.stdout


def test_trtexec_for_a_given_version_works_without_tensorrt(onnx_file, tmp_path):
    out = _cli(BLOCKED, onnx_file, "--trtexec", "--trt-version", "8.2.1",
               "--gpu-name", "NVIDIA Tegra X2", "--compute-capability", "6.2",
               cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    build = next(line for line in lines if "--saveEngine" in line)
    # precision defaults to what the ONNX was exported for (fp16); spelled for 8.2
    assert build.startswith("/usr/src/tensorrt/bin/trtexec ") or build.startswith("trtexec ") \
        or "trtexec" in build.split()[0]
    for flag in ("--explicitBatch", "--workspace=1024", "--fp16", "--buildOnly",
                 "--minShapes=image:1x3x32x64", "--optShapes=image:2x3x32x64",
                 "--maxShapes=image:4x3x32x64",
                 "--saveEngine=engines/nvidia-tegra-x2-sm62-trt8.2.1/tiny-fp16.engine",
                 "--timingCacheFile="):
        assert flag in build, flag
    bench = next(line for line in lines if "--loadEngine" in line)
    assert "--iterations=5000" in bench and "--duration=0" in bench
    assert "--shapes=image:2x3x32x64" in bench
    assert not (tmp_path / "engines").exists()  # printing writes nothing


def test_onnx_option_is_the_operand_as_other_commands_spell_it(onnx_file, tmp_path, capsys):
    """`--onnx PATH`, as bench/compare/eval/predict/serve take the ONNX, gives what the operand
    gives; two different files are one line and exit 2, before any work."""
    args = ["--trtexec", "--trt-version", "8.2.1", "--gpu-name", "NVIDIA Tegra X2",
            "--compute-capability", "6.2"]
    assert build_engine_main.main([onnx_file] + args) == 0
    by_operand = capsys.readouterr().out
    assert build_engine_main.main(["--onnx", onnx_file] + args) == 0
    assert capsys.readouterr().out == by_operand and "--saveEngine" in by_operand
    assert build_engine_main.main([onnx_file, "--onnx", onnx_file] + args) == 0
    capsys.readouterr()
    other = str(tmp_path / "other.onnx")
    for order in ([onnx_file, "--onnx", other], ["--onnx", other, onnx_file]):
        with pytest.raises(SystemExit) as stop:  # a usage error, as argparse reports them
            build_engine_main.main(order + args)
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "two ONNX files given" in err, err
    assert build_engine_main.build_parser().parse_args(["--onnx", onnx_file]).onnx == onnx_file


def test_trtexec_trt11_refuses_fp16_from_fp32_onnx(onnx_file):
    out = _cli(BLOCKED, onnx_file, "--trtexec", "--trt-version", "11.0", "--fp16")
    assert out.returncode == 2
    assert "bisenet-export onnx --target trt11 --precision fp16" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_trtexec_refuses_int8_on_tx2(onnx_file):
    out = _cli(BLOCKED, onnx_file, "--trtexec", "--trt-version", "8.2.1", "--int8",
               "--compute-capability", "6.2", "--gpu-name", "NVIDIA Tegra X2")
    assert out.returncode == 2 and "no fast INT8" in out.stderr


def test_usage_errors(onnx_file, capsys):
    assert build_engine_main.main(["--run", onnx_file]) == 2
    assert "--run goes with --trtexec" in capsys.readouterr().err
    assert build_engine_main.main([]) == 2
    assert build_engine_main.main([onnx_file, "--trt-version", "8.2"]) == 2
    with pytest.raises(SystemExit):
        build_engine_main.main([onnx_file, "--batch", "4:2:1"])


def test_trtexec_checks_the_onnx_against_the_version(tmp_path, capsys):
    # an opset-17 graph (trt11 export) cannot be parsed by 8.2: said before printing anything
    rec = make_record(target="trt11", opset=17)
    path = save(preprocessing_graph(rec), tmp_path / "m17.onnx")
    assert build_engine_main.main([path, "--trtexec", "--trt-version", "8.2.1"]) == 2
    captured = capsys.readouterr()
    assert "opset 17" in captured.err and "--target trt8.2" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("args, message", [
    (["--trtexec", "--trt-version", "7.1"], "older than 8.2"),
    (["--trtexec", "--trt-version", "8.6", "--workspace", "0"], "positive number of MiB"),
    (["--trtexec", "--trt-version", "8.6", "--opt-level", "7"], "0..5"),
    (["--fp32", "--calib-images", "calib"], "only apply to --int8"),
    (["--int8", "--calib-batch", "0", "--trtexec", "--trt-version", "8.6"], ">= 1"),
])
def test_bad_option_values_are_one_line(onnx_file, capsys, args, message):
    assert build_engine_main.main([onnx_file] + args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1



def test_inspect_refuses_an_engine_for_another_tensorrt_naming_both(tmp_path, monkeypatch, capsys):
    import json
    import types

    from bisenet_deploy.portable.trt import gpu_info
    from bisenet_deploy.portable.trt.gpu_info import GpuInfo

    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0",
                                                                       Builder=object))
    monkeypatch.setattr(gpu_info, "query_gpu", lambda index=0: GpuInfo("NVIDIA A10", (8, 6)))
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    (tmp_path / "m.json").write_text(json.dumps({
        "schema": 1, "kind": "bisenet_deploy.engine", "tensorrt_version": "8.6.1",
        "gpu": {"name": "NVIDIA A10", "compute_capability": "8.6"}, "precision": "fp16",
        "io": []}))
    assert build_engine_main.main(["--inspect", str(engine)]) != 0
    err = capsys.readouterr().err
    assert "TensorRT 8.6.1" in err and "TensorRT 10.3.0" in err and "Traceback" not in err
