"""The repository stands on its own: no file cites a document users do not have, the README's
example outputs are git-ignored, and the README's setup command installs quietly."""

import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: documents that exist only in the team's notes, never in a clone
OUTSIDE = re.compile(r"tensorrt\.md|peers\.md|coincheung_checkpoints\.md|\.\./shared")


def _repo_files():
    """Tracked and untracked-but-not-ignored files (git), else every file under ROOT."""
    if shutil.which("git") and os.path.isdir(os.path.join(ROOT, ".git")) or \
            os.path.isfile(os.path.join(ROOT, ".git")):
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
        return [p for p in out.splitlines() if os.path.isfile(os.path.join(ROOT, p))]
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        found.extend(os.path.relpath(os.path.join(folder, f), ROOT) for f in files)
    return found


def test_no_file_cites_a_document_outside_the_repository():
    hits = []
    for rel in _repo_files():
        if rel.endswith(".tsv"):  # data listings, not prose
            continue
        try:
            with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue
        hits.extend("%s:%d" % (rel, text.count("\n", 0, m.start()) + 1)
                    for m in OUTSIDE.finditer(text))
    assert not hits, "cites a file users do not have: " + ", ".join(hits)


def test_docs_the_code_points_to_exist():
    """Every docs/*.md named in the package, the docs or the READMEs is in the repository."""
    named = set()
    for rel in _repo_files():
        if rel.endswith((".py", ".md", ".sh")):
            with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
                named.update(re.findall(r"docs/[A-Za-z0-9_.-]+\.md", f.read()))
    assert "docs/tensorrt-versions.md" in named and "docs/checkpoints.md" in named
    missing = sorted(n for n in named if not os.path.isfile(os.path.join(ROOT, n)))
    assert not missing, missing


def _readme_outputs():
    """Files and folders the README's example commands write into the working directory."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    outputs = {"street.png"}  # the example image the quick start reads from the root
    for cmd in re.findall(r"^\s*(bisenet-.*)$", text.replace("\\\n", " "), re.M):
        words = cmd.split(" #", 1)[0].split()  # a trailing comment names no output
        for i, word in enumerate(words[:-1]):
            if word in ("-o", "--json", "--plot", ">") and words[i + 1] != ">":
                outputs.add(words[i + 1])
        if words[:2] == ["bisenet-export", "jetson"] and "--tar" in words and "-o" in words:
            outputs.add(words[words.index("-o") + 1].rstrip("/") + ".tar.gz")
    return sorted(o for o in outputs if not o.startswith(("-", "/", "$", "<", "~")))


@pytest.mark.skipif(not shutil.which("git") or not os.path.exists(os.path.join(ROOT, ".git")),
                    reason="not a git checkout")
def test_readme_example_outputs_are_git_ignored():
    outputs = _readme_outputs()
    assert {"out/", "tx2_bundle", "tx2_bundle.tar.gz", "street.png"} <= set(outputs), outputs
    probe = [o.rstrip("/") + ("/x" if o.endswith("/") or "." not in o else "") for o in outputs]
    res = subprocess.run(["git", "check-ignore", "--no-index", "--verbose", "--non-matching"]
                         + probe, cwd=ROOT, capture_output=True, text=True)
    not_ignored = [line.split("\t")[-1] for line in res.stdout.splitlines()
                   if line.startswith("::")]
    assert not not_ignored, "README example outputs git would track: %s" % not_ignored


# -- install hints ---------------------------------------------------------------------------
def test_install_hints_spell_extras_as_the_readme_does():
    """An extra is installed the README's way, `pip install -e '.[trt]'`, in every message."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        assert "pip install -e '.[trt]'" in f.read()
    other = re.compile(r"pip install (?!-e '\.\[)[^\n`'\")]*\[")
    hits = []
    for rel in _repo_files():
        if rel.startswith(("bisenet_deploy/", "scripts/")) and rel.endswith((".py", ".sh")) \
                or rel in ("setup.cfg", "tests/conftest.py"):
            with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
                hits.extend("%s: %s" % (rel, m.group(0)) for m in other.finditer(f.read()))
    assert not hits, hits
    from bisenet_deploy.portable.shared import install_hints
    assert not install_hints.IN_BUNDLE
    assert "pip install -e '.[trt]'" in install_hints.tensorrt_hint()
    real = install_hints.gpu_absent
    try:
        install_hints.gpu_absent = lambda: False  # a GPU machine without pycuda
        assert "pip install -e '.[trt]'" in install_hints.pycuda_hint()
    finally:
        install_hints.gpu_absent = real


def test_inside_a_jetson_bundle_the_hints_are_the_bundle_readmes(tmp_path):
    """The runtime copied into a bundle (as bisenet_trt) points to apt/JetPack and
    ./setup_jetson.sh, as the bundle's README does, never to pip extras of a checkout."""
    import sys
    from bisenet_deploy.jetson import bundle

    shutil.copytree(bundle.portable_dir(), str(tmp_path / bundle.RUNTIME_PACKAGE),
                    ignore=shutil.ignore_patterns("__pycache__"))
    from test_runtime_trt import _BLOCK

    code = _BLOCK + (
        "from %(pkg)s.trt.flavours import import_tensorrt\n"
        "from %(pkg)s.trt.cuda_context import import_pycuda_driver\n"
        "from %(pkg)s.shared import install_hints\n"
        "install_hints.gpu_absent = lambda: False  # a bundle runs on a Jetson: it has its GPU\n"
        "for call in (import_tensorrt, import_pycuda_driver):\n"
        "    try:\n"
        "        call()\n"
        "    except Exception as exc:\n"
        "        print(exc)\n" % {"pkg": bundle.RUNTIME_PACKAGE})
    out = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True,
                         text=True, check=True).stdout.splitlines()
    trt_line, pycuda_line = out
    with open(os.path.join(os.path.dirname(bundle.__file__), "templates", "README.md"),
              encoding="utf-8") as f:
        readme = f.read()
    for command in ("sudo apt-get install python3-libnvinfer",
                    "sudo apt-get install nvidia-jetpack", "./setup_jetson.sh"):
        assert command in readme
    assert "sudo apt-get install python3-libnvinfer" in trt_line and "nvidia-jetpack" in trt_line
    assert "./setup_jetson.sh" in trt_line and "./setup_jetson.sh" in pycuda_line
    assert "pip install -e" not in trt_line + pycuda_line


# -- the README's setup command ----------------------------------------------------------------
@pytest.mark.slow
def test_setup_env_editable_install_prints_nothing_with_quiet(tmp_path):
    """scripts/setup_env.sh's pip upgrade and `pip install --quiet -e` lines, run as written in a
    scratch venv (dependencies skipped: only the editable build and its notices are under test),
    are silent: no setuptools "Editable installation" box despite --quiet."""
    import sys
    with open(os.path.join(ROOT, "scripts", "setup_env.sh"), encoding="utf-8") as f:
        script = f.read().replace("\\\n", " ")
    commands = [line.strip() for line in script.splitlines() if "pip install" in line and
                not line.lstrip().startswith("#")]
    # the script's pip upgrade (a new pip is what shows build-backend notices), then its -e line
    lines = [c for c in commands if "--upgrade pip" in c] + [c for c in commands if " -e " in c]
    assert len(lines) == 2, commands
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = dict(os.environ, PATH=str(venv / "bin") + os.pathsep + os.environ.get("PATH", ""),
               VIRTUAL_ENV=str(venv), PIP_NO_DEPS="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONWARNINGS", None)
    res = subprocess.run(["bash", "-c", "set -e; " + "; ".join(lines)], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    # pip's own complaints about this machine's index configuration are not the script's output
    said = [line for line in (res.stdout + res.stderr).splitlines()
            if line.strip() and not line.startswith("WARNING: Location 'file:")]
    assert said == [], "\n".join(said)


# -- test modules ----------------------------------------------------------------------------------
def test_every_test_module_holds_tests():
    """Helpers live in tests/support/; a module named test_*.py defines at least one test."""
    import ast

    folder = os.path.join(ROOT, "tests")
    empty = []
    for name in sorted(os.listdir(folder)):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        tests = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name.startswith("test_")]
        if not tests:
            empty.append(name)
    assert empty == []
    support = os.path.join(folder, "support")
    assert not [n for n in os.listdir(support) if n.startswith("test_")]


def test_no_module_of_the_package_is_over_400_lines():
    """Small modules with one owner each: a module past 400 lines is split by concern."""
    package = os.path.join(ROOT, "bisenet_deploy")
    long = []
    for folder, _, files in os.walk(package):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    count = sum(1 for _ in f)
                if count > 400:
                    long.append(f"{os.path.relpath(path, ROOT)} ({count})")
    assert long == []
