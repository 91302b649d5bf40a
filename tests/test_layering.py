"""Dependencies point down: library code never imports the command line, the PyTorch runner does not
pull in the TensorRT runner, and the comparison core imports no backend."""

import ast
import os
import subprocess
import sys

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "bisenet_deploy")


def imported_modules(path):
    """Absolute dotted names of every module `path` imports (also inside functions)."""
    rel = os.path.relpath(path, os.path.dirname(PACKAGE))
    package = os.path.dirname(rel).replace(os.sep, ".").split(".")
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.append(module)
            names += [f"{module}.{a.name}" for a in node.names]
    return names


def library_files():
    for root, _, files in os.walk(PACKAGE):
        if os.path.join(PACKAGE, "cli") in (root, os.path.dirname(root)):
            continue
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(root, name)


def test_the_import_scan_sees_relative_and_function_level_imports(tmp_path):
    pkg = tmp_path / "bisenet_deploy" / "bench"
    pkg.mkdir(parents=True)
    f = pkg / "x.py"
    f.write_text("def f():\n    from ..cli.common import format_table\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, str(tmp_path / "bisenet_deploy")
    try:
        assert "bisenet_deploy.cli.common" in imported_modules(str(f))
    finally:
        PACKAGE = saved


@pytest.mark.parametrize("path", sorted(library_files()), ids=lambda p: os.path.relpath(p, PACKAGE))
def test_library_code_never_imports_the_cli(path):
    upward = [m for m in imported_modules(path) if m.startswith("bisenet_deploy.cli")]
    assert not upward, f"{path} imports {upward}: move what it needs below cli/"


@pytest.mark.parametrize("module, forbidden", [
    # the PyTorch runner takes its specs from the runner base, not from the TensorRT runner
    ("bisenet_deploy.runtime.torch_runner",
     ("bisenet_deploy.portable.trt_runner", "bisenet_deploy.portable.engine_io")),
    # one comparison core below export and evaluation: no backend, no runtime, no CLI
    ("bisenet_deploy.comparison.profiles, bisenet_deploy.comparison.measures",
     ("bisenet_deploy.runtime", "bisenet_deploy.evaluation", "bisenet_deploy.export",
      "bisenet_deploy.cli", "torch", "onnx", "onnxruntime")),
    ("bisenet_deploy.export.parity", ("bisenet_deploy.cli", "bisenet_deploy.evaluation")),
])
def test_modules_do_not_pull_in_what_they_do_not_need(module, forbidden):
    code = (f"import sys, {module}; "
            f"bad = [m for m in sys.modules if m.startswith({forbidden!r})]; "
            "assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
