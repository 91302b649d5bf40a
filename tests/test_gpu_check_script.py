"""scripts/gpu_check.sh, prepared for a user's GPU machine (ours have none): the commands it runs,
with nvidia-smi and the CLIs replaced by recorders. The commands themselves are tested on their
own; what runs on a real GPU is tests marked `tensorrt`/`cuda`, which this script runs there."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "gpu_check.sh")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(tmp_path, gpu=True):
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, str(repo / "scripts" / "gpu_check.sh"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    names = ["bisenet-export", "bisenet-build-engine", "bisenet-bench"]
    if gpu:
        names.append("nvidia-smi")
    for name in names:
        script = bin_dir / name
        script.write_text('#!/usr/bin/env bash\necho "%s $*" >> "%s"\n' % (name, log))
        script.chmod(0o755)
    serve = bin_dir / "bisenet-serve"  # says ready, then serves until stopped
    serve.write_text('#!/usr/bin/env bash\necho "bisenet-serve $*" >> "%s"\necho "ready: fake"\n'
                     "trap 'exit 143' TERM\nsleep 60 &\nwait\n" % log)
    serve.chmod(0o755)
    python = bin_dir / "python"
    python.write_text('#!/bin/sh\nexec "%s" "$@"\n' % sys.executable)
    python.chmod(0o755)
    env = dict(os.environ, SKIP_SETUP="1", SKIP_TESTS="1", ITERS="50", CALIB_IMAGES="calib",
               PATH="%s:/usr/bin:/bin" % bin_dir)
    proc = subprocess.run(["bash", str(repo / "scripts" / "gpu_check.sh")], cwd=str(repo),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=120)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc, [c for c in calls if not c.startswith("nvidia-smi")]


def test_without_a_gpu_it_says_so_and_does_nothing(tmp_path):
    proc, calls = _run(tmp_path, gpu=False)
    assert proc.returncode == 4 and "no NVIDIA GPU here" in proc.stdout and calls == []


def test_each_flavour_gets_fp32_fp16_and_cuda_graph_runs_with_reports(tmp_path):
    pytest.importorskip("tensorrt_rtx_bindings", reason="TensorRT-RTX is not installed here")
    proc, calls = _run(tmp_path)
    base = "export/gpu-check-trt11-2048x1024-to-1024x512-labels"
    common = "--input-size 2048x1024 --network-size 1024x512 --outputs labels --target trt11"
    e32, e16 = "engines/gpu-check-rtx-fp32.engine", "engines/gpu-check-rtx-fp16.engine"
    bench = "--iters 50 --json benchmarks/gpu-check-%s.json --plot benchmarks/gpu-check-%s.png"
    served = "export/gpu-check-serve-trt11-2048x1024-to-1024x512-labels-batch1-4-8.onnx"
    es = "engines/gpu-check-serve-fp16.engine"
    assert calls == [
        "bisenet-export onnx %s -o %s.onnx" % (common, base),
        "bisenet-export onnx %s --precision fp16 -o %s-fp16.onnx" % (common, base),
        "bisenet-build-engine %s.onnx --trt-flavour tensorrt-rtx --fp32 -o %s" % (base, e32),
        "bisenet-build-engine %s-fp16.onnx --trt-flavour tensorrt-rtx --fp16 -o %s" % (base, e16),
        "bisenet-bench --onnx %s.onnx --engine %s --backend tensorrt torch-cuda " % (base, e32)
        + bench % ("rtx-fp32", "rtx-fp32"),
        "bisenet-bench --onnx %s-fp16.onnx --engine %s --backend tensorrt torch-cuda " % (base, e16)
        + "--precision fp16 " + bench % ("rtx-fp16", "rtx-fp16"),
        "bisenet-bench --onnx %s.onnx --engine %s --backend tensorrt torch-cuda --cuda-graph "
        % (base, e32) + bench % ("rtx-fp32-cuda-graph", "rtx-fp32-cuda-graph"),
        # INT8 (random weights here: the gate is off) next to the FP16 and FP32 engines
        "bisenet-export onnx %s --precision int8 --calib-images calib --min-agreement 0 "
        "-o %s-int8.onnx" % (common, base),
        "bisenet-build-engine %s-int8.onnx --trt-flavour tensorrt-rtx -o "
        "engines/gpu-check-rtx-int8.engine" % base,
        "bisenet-bench --backend tensorrt:engines/gpu-check-rtx-int8.engine tensorrt:%s "
        "tensorrt:%s " % (e16, e32) + bench % ("rtx-int8", "rtx-int8"),
        # serving a dynamic-batch FP16 engine: the GPU's batching delay (500 us) against none
        "bisenet-export onnx --input-size 2048x1024 --network-size 1024x512 --outputs labels "
        "--target trt11 --batch-range 1:4:8 --precision fp16 -o %s" % served,
        "bisenet-build-engine %s --trt-flavour tensorrt-rtx --fp16 -o %s" % (served, es),
    ] + [call for delay in (500, 0) for call in (
        "bisenet-serve --engine %s --max-queue-delay-us %d --host 127.0.0.1 --http-port 18000 "
        "--grpc-port 18001 --metrics-port 18002" % (es, delay),
        "bisenet-bench --server 127.0.0.1:18001 --concurrency 1 8 --iters 200 "
        "--json benchmarks/gpu-check-serve-delay%d.json" % delay)]
    # this machine's torch has no CUDA: said, and the exit status says it too
    assert "this torch has no CUDA" in proc.stdout and proc.returncode == 1
