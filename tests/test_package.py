"""The package and every command's --help work without the heavy optional dependencies."""

import subprocess
import sys

import pytest

COMMANDS = ["export_main", "build_engine_main", "bench_main", "compare_main", "eval_main",
            "predict_main", "serve_main", "doctor_main"]


@pytest.mark.parametrize("modules, heavy", [
    # the package and what every command imports first: nothing heavy at all
    ("bisenet_deploy, bisenet_deploy.errors, bisenet_deploy.metadata",
     ("tensorrt", "pycuda", "onnxruntime", "torch", "onnx")),
    # dataset presets and checkpoint reading load their libraries only when used
    ("bisenet_deploy.datasets", ("torch", "onnx", "onnxruntime")),
    ("bisenet_deploy.checkpoint", ("torch", "onnx", "safetensors")),
    # serving: PyTriton and tritonclient only when a server or client is started
    ("bisenet_deploy.serve.server, bisenet_deploy.serve.client, bisenet_deploy.serve.repository, "
     "bisenet_deploy.bench.served, bisenet_deploy.cli.serve_main",
     ("pytriton", "tritonclient", "torch", "onnxruntime", "onnx")),
    # the doctor imports what it probes only when it runs
    ("bisenet_deploy.doctor, bisenet_deploy.doctor.probe, bisenet_deploy.doctor.advice, "
     "bisenet_deploy.cli.doctor_main",
     ("tensorrt", "tensorrt_rtx_bindings", "pycuda", "torch", "onnxruntime", "onnx", "pytriton")),
])
def test_import_is_light(modules, heavy):
    code = (f"import sys, {modules}; "
            f"heavy = [m for m in {heavy!r} if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def help_without_tensorrt(command, argv):
    """Run `command`'s main(argv) in a fresh interpreter where tensorrt, pycuda and the serving
    packages (pytriton, tritonclient) cannot be imported (a meta-path hook blocks them even where
    they are installed)."""
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorrt', 'pycuda', 'pytriton', 'tritonclient'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"from bisenet_deploy.cli.{command} import main\n"
        f"sys.exit(main({list(argv)!r}))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


@pytest.mark.parametrize("command, argv", [(c, ["--help"]) for c in COMMANDS] + [
    ("export_main", [sub, "--help"]) for sub in ("onnx", "check", "summary", "checkpoint",
                                                 "jetson", "triton")])
def test_help_works_without_tensorrt(command, argv):
    out = help_without_tensorrt(command, argv)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


def test_an_output_that_cannot_be_created_is_a_user_error(tmp_path):
    from bisenet_deploy.errors import InputError
    from bisenet_deploy.portable.files.fileio import write_text_atomic

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot write .*a-file/sub/out.json"):
        write_text_atomic(str(blocker / "sub" / "out.json"), "{}")
    assert blocker.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_tells_its_version(command, capsys):
    import importlib

    import bisenet_deploy

    main = importlib.import_module(f"bisenet_deploy.cli.{command}").main
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert f"bisenet-deploy {bisenet_deploy.__version__}" in capsys.readouterr().out
