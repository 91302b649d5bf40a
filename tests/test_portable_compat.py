"""CI guard: the code that runs on a Jetson TX2 (JetPack 4.6) stays Python 3.6 and imports nothing else.

`bisenet_deploy/portable/` is copied as-is into the Jetson bundle (as `bisenet_trt/`) next to the
bundle's own entry scripts (`bisenet_deploy/jetson/templates/*.py`). On the device there is Python
3.6, numpy 1.19, TensorRT 8.2 and pycuda, nothing more. Checked here, for every such file:
- vermin (`--target=3.6-`) finds no construct newer than 3.6 (syntax, stdlib modules, functions);
- it parses with `ast.parse(feature_version=(3, 6))`;
- it imports only the standard library, numpy, tensorrt, pycuda (cv2 only in the demo) and its
  siblings; tensorrt/pycuda/cv2 only inside functions (lazily), so importing never needs them;
- no `from __future__ import annotations` (3.7+).
tests/test_jetson_bundle.py runs the same checks on a generated bundle.
"""

import ast
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORTABLE = os.path.join(ROOT, "bisenet_deploy", "portable")
TEMPLATES = os.path.join(ROOT, "bisenet_deploy", "jetson", "templates")

#: third-party packages present on a JetPack 4.6 device (tensorrt/pycuda only lazily)
THIRD_PARTY = {"numpy", "tensorrt", "pycuda"}
LAZY_ONLY = {"tensorrt", "pycuda", "cv2", "PIL", "cuda"}
#: optional packages the portable package may try inside a function, falling back or refusing in
#: one line when missing (`try: import cv2 except ImportError: ...`); the bundle never needs them
#: (`cuda`: cuda-python, for CUDA graphs only)
OPTIONAL_GUARDED = {"cv2", "PIL", "cuda"}
#: the bundle's own top-level modules (the portable copy is `bisenet_trt`)
BUNDLE_MODULES = {"bisenet_trt", "jetson_run", "jetson_model", "jetson_env", "jetson_build",
                  "jetson_bench", "jetson_parity", "demo"}
#: standard-library modules that did not exist in Python 3.6 (vermin knows these too)
STDLIB_AFTER_36 = {"dataclasses", "contextvars", "graphlib", "zoneinfo", "tomllib",
                   "importlib_metadata", "_xxsubinterpreters"}


def python_files(folder):
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".py"))


def python_tree(folder):
    """Every .py file of the package `folder`, its subpackages included."""
    return sorted(os.path.join(d, n) for d, _, names in os.walk(folder)
                  if "__pycache__" not in d for n in names if n.endswith(".py"))


def package_names(folder):
    """Dotted names, relative to the package `folder`, of its modules and subpackages."""
    names = set()
    for path in python_tree(folder):
        parts = os.path.relpath(path, folder)[:-3].split(os.sep)
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if parts:
            names.add(".".join(parts))
    return names


def portable_files():
    return python_tree(PORTABLE)


def bundle_template_files():
    return python_files(TEMPLATES)


def vermin_executable():
    candidate = os.path.join(os.path.dirname(sys.executable), "vermin")
    return candidate if os.path.exists(candidate) else shutil.which("vermin")


def vermin_violations(paths):
    """(exit code, output) of `vermin --target=3.6- --violations` over `paths`."""
    exe = vermin_executable()
    if exe is None:
        pytest.skip("vermin is not installed (pip install -e '.[test]' installs it)")
    out = subprocess.run([exe, "--target=3.6-", "--no-tips", "--violations", "--eval-annotations",
                          "--no-parse-comments"] + list(paths),
                         capture_output=True, text=True)
    return out.returncode, out.stdout + out.stderr


def parse_36(path):
    with open(path, "r", encoding="utf-8") as f:
        source = f.read()
    return ast.parse(source, filename=path, feature_version=(3, 6))


def import_problems(path, siblings, allow_cv2=False, package_relative=True, package_root=None):
    """Imports in `path` outside the allowed set, as readable lines ([] = fine).

    siblings: module names importable next to the file (relative imports for the portable
    package: dotted from `package_root`, the package's folder, e.g. "trt.flavours"; bundle-internal
    absolute names for the bundle's entry scripts).
    """
    inside = []  # the file's subpackage path below package_root
    if package_root is not None:
        inside = [p for p in os.path.relpath(os.path.dirname(path), package_root).split(os.sep)
                  if p != "."]
    tree = parse_36(path)
    stdlib = set(sys.stdlib_module_names) - STDLIB_AFTER_36
    allowed = stdlib | THIRD_PARTY | ({"cv2"} if allow_cv2 else set())
    problems = []
    name = os.path.basename(path)

    # which import nodes sit inside a function (lazy) rather than at module level, and which
    # sit in a `try` whose handler catches ImportError (optional, with a fallback)
    lazy_nodes, guarded_nodes = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    lazy_nodes.add(id(inner))
        if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
            for stmt in node.body:
                for inner in ast.walk(stmt):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        guarded_nodes.add(id(inner))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops = [(alias.name.split(".")[0], alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > 0:
                if not package_relative:
                    problems.append("%s:%d relative import outside a package" % (name, node.lineno))
                    continue
                if node.level - 1 > len(inside):
                    problems.append("%s:%d relative import leaves the package" % (name, node.lineno))
                    continue
                base = inside[:len(inside) - node.level + 1]
                module = base + (node.module.split(".") if node.module else [])
                names = ([".".join(module)] if node.module else
                         [".".join(base + [a.name]) for a in node.names])
                for mod in names:
                    if mod not in siblings:
                        problems.append("%s:%d imports .%s, which is not a module of the "
                                        "package" % (name, node.lineno, mod))
                continue
            if node.module == "__future__":
                bad = [a.name for a in node.names if a.name == "annotations"]
                if bad:
                    problems.append("%s:%d from __future__ import annotations needs 3.7"
                                    % (name, node.lineno))
                continue
            tops = [(node.module.split(".")[0], node.module)]
        else:
            continue
        for top, full in tops:
            if top in LAZY_ONLY and id(node) not in lazy_nodes:
                problems.append("%s:%d imports %s at module level: import it inside the function "
                                "that needs it" % (name, node.lineno, full))
            if top in allowed or (not package_relative and top in siblings):
                continue
            if (package_relative and top in OPTIONAL_GUARDED and id(node) in lazy_nodes
                    and id(node) in guarded_nodes):
                continue
            problems.append("%s:%d imports %s, which a JetPack 4.6 device does not have (allowed: "
                            "stdlib, numpy, tensorrt, pycuda%s, and the bundle's own modules)"
                            % (name, node.lineno, full, ", cv2 in demo.py" if allow_cv2 else ""))
    return problems


def _catches_import_error(handler):
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(t, ast.Name) and t.id in ("ImportError", "ModuleNotFoundError",
                                                    "Exception") for t in types)


def check_bundle_python(folder):
    """All problems of a bundle's (or the sources') Python files; used by the bundle test too.

    folder: a bundle root holding `bisenet_trt/`, `jetson_run.py`, `demo.py`.
    """
    package = os.path.join(folder, "bisenet_trt")
    package_modules = package_names(package)
    problems = []
    for path in python_tree(package):
        problems += import_problems(path, package_modules, package_root=package)
    for path in python_files(folder):
        problems += import_problems(path, BUNDLE_MODULES, package_relative=False,
                                    allow_cv2=os.path.basename(path) == "demo.py")
    return problems


# -- the sources that become the bundle --------------------------------------------------------

def test_there_is_something_to_check():
    names = {os.path.basename(p) for p in portable_files()}
    assert {"errors.py", "fileio.py", "preprocess.py", "runner_base.py"} <= names
    assert {"jetson_run.py", "demo.py"} <= {os.path.basename(p) for p in bundle_template_files()}


@pytest.mark.parametrize("path", portable_files() + bundle_template_files(),
                         ids=lambda p: os.path.relpath(p, ROOT))
def test_parses_as_python_36(path):
    parse_36(path)


def test_vermin_finds_nothing_newer_than_36():
    rc, output = vermin_violations(portable_files() + bundle_template_files())
    assert rc == 0, output


@pytest.mark.parametrize("path", portable_files(), ids=lambda p: os.path.relpath(p, PORTABLE))
def test_portable_imports_only_what_a_jetson_has(path):
    assert import_problems(path, package_names(PORTABLE), package_root=PORTABLE) == []


def test_relative_imports_are_resolved_from_the_subpackage(tmp_path):
    package = tmp_path / "pkg"
    (package / "trt").mkdir(parents=True)
    for rel in ("__init__.py", "trt/__init__.py", "trt/a.py", "errors.py"):
        (package / rel).write_text("")
    path = package / "trt" / "b.py"
    path.write_text("from .a import x\nfrom ..errors import E\nfrom . import a\n"
                    "from .errors import E\nfrom ...outside import y\n")
    problems = import_problems(str(path), package_names(str(package)),
                               package_root=str(package))
    assert len(problems) == 2, problems
    assert "imports .trt.errors" in problems[0] and "leaves the package" in problems[1]


@pytest.mark.parametrize("path", bundle_template_files(), ids=os.path.basename)
def test_bundle_scripts_import_only_what_a_jetson_has(path):
    assert import_problems(path, BUNDLE_MODULES, package_relative=False,
                           allow_cv2=os.path.basename(path) == "demo.py") == []


# -- the checkers themselves catch what they must ----------------------------------------------

BAD_SNIPPETS = {
    "walrus": "if (n := 3):\n    pass\n",
    "positional_only": "def f(a, /, b):\n    return a\n",
    "fstring_equals": "x = 1\ny = f'{x=}'\n",
    "dataclasses": "import dataclasses\n",
    "future_annotations": "from __future__ import annotations\n",
    "builtin_generic": "def f(x: list[int]) -> dict[str, int]:\n    return {}\n",
}


@pytest.mark.parametrize("kind", sorted(BAD_SNIPPETS))
def test_checks_catch_newer_python(tmp_path, kind):
    path = tmp_path / ("bad_%s.py" % kind)
    path.write_text(BAD_SNIPPETS[kind])
    caught = False
    try:
        parse_36(str(path))
    except SyntaxError:
        caught = True
    if import_problems(str(path), set()) if not caught else []:
        caught = True
    rc, _ = vermin_violations([str(path)])
    assert caught or rc != 0, "%s slipped through every check" % kind


def test_import_scan_catches_foreign_and_eager_imports(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text("import os\nimport torch\nimport tensorrt\nfrom bisenet_deploy import x\n"
                    "from .missing import y\n\ndef f():\n    import pycuda.driver\n")
    problems = "\n".join(import_problems(str(path), {"errors"}))
    assert "imports torch" in problems
    assert "imports tensorrt at module level" in problems
    assert "imports bisenet_deploy" in problems
    assert ".missing" in problems
    assert "imports pycuda" not in problems  # inside a function: fine
    assert "import os" not in problems


def test_optional_reader_needs_a_fallback(tmp_path):
    path = tmp_path / "reader.py"
    path.write_text("def f():\n    try:\n        import cv2\n    except ImportError:\n"
                    "        return None\n\ndef g():\n    import PIL\n")
    problems = import_problems(str(path), set())
    assert len(problems) == 1 and "imports PIL" in problems[0]


def test_cv2_only_allowed_in_the_demo(tmp_path):
    path = tmp_path / "jetson_run.py"
    path.write_text("def f():\n    import cv2\n")
    assert any("cv2" in p for p in import_problems(str(path), BUNDLE_MODULES,
                                                   package_relative=False))
    assert import_problems(str(path), BUNDLE_MODULES, package_relative=False,
                           allow_cv2=True) == []
