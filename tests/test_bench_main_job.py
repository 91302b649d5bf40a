"""scripts/main_job.sh: the commands it runs on a machine without GPU, with the CLIs replaced by
recorders (the real commands are tested on their own; this checks the script's choices)."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run_main_job(tmp_path, env_extra=None, checkpoint=False):
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
        script.write_text('#!/usr/bin/env bash\necho "%s $*" >> "%s"\n' % (name, log))
        script.chmod(0o755)
    # the script's own probes use `python`: the test's interpreter (CPU torch, no CUDA provider)
    probe = bin_dir / "python"
    probe.write_text('#!/bin/sh\nexec "%s" "$@"\n' % sys.executable)
    probe.chmod(0o755)
    env = dict(os.environ, SKIP_SETUP="1",
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
        "bisenet-export onnx --input-size 2048x1024 --model-size 1024x512 --output labels -o "
        + onnx,
        "bisenet-bench --onnx %s --backend onnxruntime torch --iters 20 --plot" % onnx,
    ]
    assert "RANDOM weights" in proc.stdout and "no tensorrt backend" in proc.stdout


def test_checkpoint_iterations_and_threads_are_passed_on(tmp_path):
    proc, calls = _run_main_job(tmp_path, {"CPU_ITERS": "7", "THREADS": "1", "WARMUP": "2"},
                                checkpoint=True)
    assert proc.returncode == 0, proc.stdout
    onnx = "export/main-job-model_final_v2_city-2048x1024-to-1024x512-labels.onnx"
    assert calls[0].endswith("-o %s --checkpoint models/model_final_v2_city.pth" % onnx)
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
