"""mypy over the TensorRT calls of the builder and the runner against the tensorrt-stubs (10.x).

build_steps.py (the parse/configure/build/save steps, where every TensorRT call of a build is),
and trt_runner.py (deserialize, execution context, tensor addresses, enqueue) name the stub types
in type comments (`tensorrt` itself is imported only lazily), so the check runs on a copy of
portable/ with `import tensorrt` prepended to them; builder.py, which strings the steps together,
cuda_context.py and calibrator.py are checked in the same run, method bodies included
(--check-untyped-defs). The calibrator's TensorRT base class is the module's own at run time,
which mypy cannot follow: its overrides are checked for their bodies only. tensorrt-stubs
10.13.0.35.1 does not parse as shipped, so a copy of the stubs is patched for its syntax errors
only (support/trt_stubs.py); errors
mypy reports inside the stubs themselves are ignored, errors in the checked modules fail the test.
Skipped where mypy or the stubs are not installed.
"""

import os
import shutil
import subprocess
import sys

import pytest

from support.trt_stubs import patched_pyi, stub_dirs

pytestmark = pytest.mark.slow

PORTABLE = os.path.join(os.path.dirname(__file__), os.pardir, "bisenet_deploy", "portable")
#: the modules whose type comments name stub types (`tensorrt.X`): `import tensorrt` is injected
TYPED_WITH_STUBS = ("building/build_steps.py", "running/trt_runner.py")
#: the modules mypy checks (their imports are followed silently)
CHECKED = ("building/build_steps.py", "building/builder.py", "running/trt_runner.py",
           "trt/cuda_context.py", "building/calibrator.py")


def test_builder_and_runner_type_check_against_tensorrt_stubs(tmp_path):
    pytest.importorskip("mypy")
    dirs = stub_dirs()
    if dirs is None:
        pytest.skip("tensorrt-stubs is not installed")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    shutil.copytree(dirs[0], str(stubs / "tensorrt"))
    shutil.copytree(dirs[1], str(stubs / "tensorrt_bindings"))
    pyi = stubs / "tensorrt_bindings" / "tensorrt.pyi"
    pyi.write_text(patched_pyi(pyi.read_text()))
    init = stubs / "tensorrt" / "__init__.pyi"
    init.write_text("\n".join(line + ("  # type: ignore" if "tensorrt_libs" in line else "")
                              for line in init.read_text().splitlines()) + "\n")

    pkg = tmp_path / "bisenet_trt"
    shutil.copytree(PORTABLE, str(pkg), ignore=shutil.ignore_patterns("__pycache__"))
    for name in TYPED_WITH_STUBS:
        module = pkg / name
        text = module.read_text()
        assert "\nimport logging\n" in text, name
        module.write_text(text.replace(
            "\nimport logging\n", "\nimport tensorrt  # injected for the type check\nimport logging\n",
            1))

    # pycuda and cuda-python ship no stubs; the runner's methods carry no signatures, so their
    # bodies are checked with --check-untyped-defs
    (tmp_path / "mypy.ini").write_text("[mypy]\n[mypy-pycuda.*]\nignore_missing_imports = True\n"
                                       "[mypy-cuda.*]\nignore_missing_imports = True\n")
    env = dict(os.environ, MYPYPATH=str(stubs))
    out = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "mypy.ini",
                          "--follow-imports=silent", "--check-untyped-defs",
                          "--no-incremental"] + ["bisenet_trt/" + name for name in CHECKED],
                         cwd=str(tmp_path), env=env, capture_output=True, text=True)
    report = out.stdout + out.stderr
    if "errors prevented further checking" in report:
        pytest.skip("this tensorrt-stubs version does not parse even after patching:\n"
                    + report[-2000:])
    ours = [line for line in report.splitlines() if line.startswith("bisenet_trt/")]
    assert ours == [], "\n".join(ours)
    # the check is real: the stubs resolved (errors inside them prove mypy read them)
    assert "tensorrt_bindings/tensorrt.pyi" in report
