"""Dependencies point down: library code never imports the command line, the PyTorch runner does not
pull in the TensorRT runner, the comparison core imports no backend, and inside portable/ each
subpackage imports only its own floor and those below it (PORTABLE_FLOORS)."""

import ast
import os
import subprocess
import sys

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "bisenet_deploy")
PORTABLE = os.path.join(PACKAGE, "portable")
#: portable/'s subpackages, lowest floor first: each may import itself and the floors before it,
#: never one after it (nor a module directly in portable/, which sits above every floor).
#: shared: errors, interrupts, timers, install hints; files: atomic writes, ownership, images,
#: manifests; trt: TensorRT and the GPU as found, the sidecar; running: runners and engine
#: loading; building: the build plan, steps, builder, calibrator, trtexec lines.
PORTABLE_FLOORS = ("shared", "files", "trt", "running", "building")


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
     ("bisenet_deploy.portable.running.trt_runner", "bisenet_deploy.portable.running.engine_io")),
    # one comparison core below export and evaluation: no backend, no runtime, no CLI
    ("bisenet_deploy.comparison.profiles, bisenet_deploy.comparison.measures",
     ("bisenet_deploy.runtime", "bisenet_deploy.evaluation", "bisenet_deploy.export",
      "bisenet_deploy.cli", "torch", "onnx", "onnxruntime")),
    # export parity runs its graph on the onnxruntime runner below export/ and runtime/
    ("bisenet_deploy.export.parity",
     ("bisenet_deploy.cli", "bisenet_deploy.evaluation", "bisenet_deploy.runtime")),
    ("bisenet_deploy.ort_runner", ("bisenet_deploy.runtime", "bisenet_deploy.export", "torch")),
])
def test_modules_do_not_pull_in_what_they_do_not_need(module, forbidden):
    code = (f"import sys, {module}; "
            f"bad = [m for m in sys.modules if m.startswith({forbidden!r})]; "
            "assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def _module_name(path):
    rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


#: known circles, each with what would break it (new ones fail the test below); none today
KNOWN_CIRCLES: set = set()


def test_no_two_modules_import_each_other():
    """An import circle (even one hidden behind TYPE_CHECKING or inside a function) means two
    modules share something that belongs in a third; a package importing its own submodules is
    the one exception."""
    imports = {}
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py") and "templates" not in root:
                path = os.path.join(root, name)
                imports[_module_name(path)] = set(imported_modules(path))
    circles = sorted((a, b) for a in imports for b in imports[a]
                     if a < b and b in imports and a in imports[b]
                     and not b.startswith(a + ".") and not a.startswith(b + "."))
    assert not set(circles) - KNOWN_CIRCLES, circles


def test_the_bundle_scripts_import_no_circle():
    """The Jetson bundle's top-level scripts (templates/): jetson_run.py and demo.py share the
    bundled model through jetson_model.py instead of importing each other."""
    folder = os.path.join(PACKAGE, "jetson", "templates")
    names = {n[:-3] for n in os.listdir(folder) if n.endswith(".py")}
    imports = {n: set(imported_modules(os.path.join(folder, n + ".py"))) & names for n in names}
    assert "jetson_model" in imports["demo"] and "jetson_model" in imports["jetson_run"]
    circles = sorted((a, b) for a in imports for b in imports[a] if a < b and a in imports[b])
    assert not circles, circles


@pytest.mark.parametrize("folder, above", [
    # export parity and the Jetson bundle's sample run the graph on ort_runner.py, below runtime/
    # (export/int8_gate.py still takes runtime.images' label resizing: not checked here yet)
    ("export/parity.py", ("bisenet_deploy.runtime",)),
    ("jetson", ("bisenet_deploy.runtime",)),
])
def test_packages_do_not_reach_up(folder, above):
    top = os.path.join(PACKAGE, folder)
    paths = [top] if top.endswith(".py") else [
        os.path.join(root, n) for root, _, files in os.walk(top) if "templates" not in root
        for n in files if n.endswith(".py")]
    assert paths
    for path in paths:
        upward = [m for m in imported_modules(path) if m.startswith(above)]
        assert not upward, f"{path} imports {upward}"


def portable_files():
    return sorted(os.path.join(d, n) for d, _, names in os.walk(PORTABLE)
                  if "__pycache__" not in d for n in names if n.endswith(".py"))


def test_every_portable_subpackage_has_a_floor_and_portable_stays_small():
    subpackages = sorted(n for n in os.listdir(PORTABLE)
                         if os.path.isfile(os.path.join(PORTABLE, n, "__init__.py")))
    assert subpackages == sorted(PORTABLE_FLOORS), "give a new subpackage its floor here"
    top = [n for n in os.listdir(PORTABLE) if n.endswith(".py")]
    assert len(top) <= 10, f"{len(top)} modules directly in portable/: give them a subpackage"


def floor_violations(path):
    parts = os.path.relpath(path, PORTABLE).split(os.sep)
    if len(parts) < 2:
        return []  # directly in portable/: above every floor
    mine = PORTABLE_FLOORS.index(parts[0])
    bad = []
    for module in imported_modules(path):
        names = module.split(".")
        if names[:2] != ["bisenet_deploy", "portable"] or len(names) < 3:
            continue
        if names[2] not in PORTABLE_FLOORS or PORTABLE_FLOORS.index(names[2]) > mine:
            bad.append(module)
    return bad


@pytest.mark.parametrize("path", portable_files(), ids=lambda p: os.path.relpath(p, PORTABLE))
def test_portable_subpackages_import_only_their_floor_and_below(path):
    upward = floor_violations(path)
    assert not upward, (f"{path} imports {upward}: portable/ floors are {PORTABLE_FLOORS}, "
                        f"lowest first; move what it needs down")


def test_the_floor_check_sees_an_upward_import(tmp_path, monkeypatch):
    folder = tmp_path / "bisenet_deploy" / "portable" / "files"
    folder.mkdir(parents=True)
    path = folder / "x.py"
    path.write_text("from ..shared.errors import E\n\ndef f():\n    from ..trt import sidecar\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", str(tmp_path / "bisenet_deploy"))
    monkeypatch.setattr(sys.modules[__name__], "PORTABLE", str(tmp_path / "bisenet_deploy" / "portable"))
    assert floor_violations(str(path)) == ["bisenet_deploy.portable.trt",
                                           "bisenet_deploy.portable.trt.sidecar"]
