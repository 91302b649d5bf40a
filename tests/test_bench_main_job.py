"""scripts/main_job.sh: the commands it runs on a machine without GPU, with the CLIs replaced by
recorders (the real commands are tested on their own; this checks the script's choices)."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _fake_tensorrt(version):
    """The source of a stand-in `tensorrt` module with the API features of `version` that decide
    the export target (capabilities.py): precision flags, the tensor I/O API, UINT8/INT64."""
    major, minor = (int(p) for p in version.split(".")[:2])
    dtypes = ["FLOAT", "HALF", "INT8", "INT32", "BOOL"]
    dtypes += ["UINT8"] if (major, minor) >= (8, 5) else []
    dtypes += ["INT64"] if major >= 10 else []
    src = "__version__ = %r\nclass Builder(object):\n    pass\n" % version
    src += "class DataType(object):\n" + "".join("    %s = %d\n" % (n, i)
                                                  for i, n in enumerate(dtypes))
    if major < 11:
        src += "class BuilderFlag(object):\n    FP16 = 0\n    INT8 = 1\n"
    if (major, minor) >= (8, 5):
        src += "class TensorIOMode(object):\n    INPUT = 1\n    OUTPUT = 2\n"
    return src


def _run_main_job(tmp_path, env_extra=None, checkpoint=False, fail_on=None, tensorrt=None,
                  rtx=False):
    """Run the script with recording CLIs. `fail_on`: a word that makes the fake bisenet-bench
    exit 3 when its arguments hold it. `tensorrt`: a version string to fake an NVIDIA GPU with
    that TensorRT and pycuda (nvidia-smi and importable stand-in modules). `rtx`: keep this
    environment's TensorRT-RTX importable (else it is hidden)."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "scripts", "main_job.sh"), repo / "scripts" / "main_job.sh")
    if checkpoint:
        (repo / "models").mkdir()
        (repo / "models" / "model_final_v2_city.pth").write_bytes(b"x")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for name in ("bisenet-export", "bisenet-build-engine", "bisenet-bench"):
        script = bin_dir / name
        fail = ""
        if fail_on and name == "bisenet-bench":
            fail = 'case "$*" in *%s*) exit 3;; esac\n' % fail_on
        script.write_text('#!/usr/bin/env bash\necho "%s $*" >> "%s"\n%s' % (name, log, fail))
        script.chmod(0o755)
    pythonpath = os.environ.get("PYTHONPATH", "")
    fake = tmp_path / "fake_modules"
    fake.mkdir()
    if not rtx:
        for name in ("tensorrt_rtx", "tensorrt_rtx_bindings"):
            (fake / name).mkdir()
            (fake / name / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    if tensorrt:
        smi = bin_dir / "nvidia-smi"
        smi.write_text("#!/bin/sh\nexit 0\n")
        smi.chmod(0o755)
        (fake / "tensorrt").mkdir(parents=True)
        (fake / "tensorrt" / "__init__.py").write_text(_fake_tensorrt(tensorrt))
        (fake / "pycuda").mkdir()
        (fake / "pycuda" / "__init__.py").write_text("")
        (fake / "pycuda" / "driver.py").write_text("")
    pythonpath = str(fake) + (os.pathsep + pythonpath if pythonpath else "")
    # the script's own probes use `python`: the test's interpreter (CPU torch, no CUDA provider)
    probe = bin_dir / "python"
    probe.write_text('#!/bin/sh\nexec "%s" "$@"\n' % sys.executable)
    probe.chmod(0o755)
    env = dict(os.environ, SKIP_SETUP="1", PYTHONPATH=pythonpath,
               PATH="%s:%s" % (bin_dir, "/usr/bin:/bin"))
    env.update(env_extra or {})
    proc = subprocess.run(["bash", str(repo / "scripts" / "main_job.sh")], cwd=str(repo),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=120)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc, calls


def test_cpu_machine_exports_random_weights_and_benches_the_cpu_backends(tmp_path):
    proc, calls = _run_main_job(tmp_path)
    assert proc.returncode == 0, proc.stdout
    onnx = "export/main-job-random-init-2048x1024-to-1024x512-labels.onnx"
    assert calls == [
        "bisenet-export onnx --input-size 2048x1024 --network-size 1024x512 --outputs labels "
        "--target trt10 -o " + onnx,
        "bisenet-bench --onnx %s --backend onnxruntime torch --iters 20 --plot" % onnx,
    ]
    assert "RANDOM weights" in proc.stdout and "no tensorrt backend" in proc.stdout


ONNX = "export/main-job-random-init-2048x1024-to-1024x512-labels.onnx"
FP16 = ONNX[:-len(".onnx")] + "-fp16.onnx"


def _trt11_exports():
    """The two exports for a strongly typed TensorRT's FP16 engine: FP32 (CPU backends), FP16."""
    common = ("bisenet-export onnx --input-size 2048x1024 --network-size 1024x512 --outputs labels "
              "--target trt11")
    return [common + " -o " + ONNX, common + " --precision fp16 -o " + FP16]


def test_cpu_machine_with_tensorrt_rtx_builds_a_real_engine_it_cannot_run(tmp_path):
    pytest.importorskip("tensorrt_rtx_bindings", reason="TensorRT-RTX is not installed here "
                        "(pip install '.[rtx]')")
    proc, calls = _run_main_job(tmp_path, rtx=True)
    assert proc.returncode == 0, proc.stdout
    engine = "engines/main-job-random-init-rtx-fp16.engine"
    # TensorRT-RTX is strongly typed: trt11 rules, and an FP16 graph for the FP16 engine
    assert calls == _trt11_exports() + [
        "bisenet-build-engine %s -o %s --trt-flavour tensorrt-rtx --fp16" % (FP16, engine),
        # the engine cannot run without a GPU: only the CPU backends are timed
        "bisenet-bench --onnx %s --backend onnxruntime torch --iters 20 --plot" % ONNX,
    ]
    assert "%s is built but cannot run here: no NVIDIA GPU" % engine in proc.stdout


def test_checkpoint_iterations_and_threads_are_passed_on(tmp_path):
    proc, calls = _run_main_job(tmp_path, {"CPU_ITERS": "7", "THREADS": "1", "WARMUP": "2"},
                                checkpoint=True)
    assert proc.returncode == 0, proc.stdout
    onnx = "export/main-job-model_final_v2_city-2048x1024-to-1024x512-labels.onnx"
    assert calls[0].endswith("--checkpoint models/model_final_v2_city.pth -o %s" % onnx)
    assert calls[1] == ("bisenet-bench --onnx %s --checkpoint models/model_final_v2_city.pth "
                        "--backend onnxruntime torch --iters 7 --warmup 2 --threads 1 --plot"
                        % onnx)
    assert not any("build-engine" in c for c in calls)


def test_a_failing_export_stops_the_job(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    failing = bin_dir / "bisenet-export"
    failing.write_text("#!/usr/bin/env bash\nexit 3\n")
    failing.chmod(0o755)
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "scripts", "main_job.sh"), repo / "scripts" / "main_job.sh")
    env = dict(os.environ, SKIP_SETUP="1", PATH="%s:/usr/bin:/bin" % bin_dir)
    proc = subprocess.run(["bash", str(repo / "scripts" / "main_job.sh")], cwd=str(repo),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=60)
    assert proc.returncode == 3
    assert "bisenet-bench" not in proc.stdout


def test_gpu_machine_exports_for_its_tensorrt_builds_and_benches_gpu_then_cpu(tmp_path):
    proc, calls = _run_main_job(tmp_path, {"ITERS": "50"}, tensorrt="11.0.0")
    assert proc.returncode == 0, proc.stdout
    engine = "engines/main-job-random-init-fp16.engine"
    # TensorRT 11 builds FP16 from an FP16 graph; the CPU backends keep the FP32 one
    assert calls == _trt11_exports() + [
        "bisenet-build-engine %s -o %s --trt-flavour tensorrt --fp16" % (FP16, engine),
        "bisenet-bench --onnx %s --engine %s --backend tensorrt --iters 50 --plot"
        % (ONNX, engine),
        "bisenet-bench --onnx %s --engine %s --backend onnxruntime torch --iters 20 --plot"
        % (ONNX, engine),
    ]


def test_tensorrt_8_2_gets_the_trt8_2_target(tmp_path):
    proc, calls = _run_main_job(tmp_path, {"PRECISION": "fp32"}, tensorrt="8.2.1.8")
    assert proc.returncode == 0, proc.stdout
    assert "--target trt8.2 -o" in calls[0]
    assert calls[1].startswith("bisenet-build-engine") and "--fp16" not in calls[1]


def test_a_failing_gpu_bench_still_prints_the_cpu_table_and_fails_the_job(tmp_path):
    proc, calls = _run_main_job(tmp_path, tensorrt="10.3.0", fail_on="tensorrt")
    assert proc.returncode == 3, proc.stdout
    assert calls[-1].startswith("bisenet-bench") and "--backend onnxruntime torch" in calls[-1]
