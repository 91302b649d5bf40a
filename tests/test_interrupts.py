"""SIGTERM (a CI timeout, `kill`, a container stop) cleans up like Ctrl-C: no hidden staging
folder or half bundle is left behind, and the exit code says what happened."""

import os
import signal
import subprocess
import sys
import time

import pytest


def _with_default_ctrl_c():
    """Children get Ctrl-C's default handling even where this test run ignores it (a suite
    started in the background by a script inherits SIGINT ignored, and so would its children)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_the_jetson_export_removes_the_staging_folder(tmp_path, sig, code):
    out = tmp_path / "bundle"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bisenet_deploy.cli.export_main", "jetson", "--input-size",
         "128x64", "--network-size", "64x32", "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_with_default_ctrl_c)
    deadline = time.time() + 120
    staging = []
    while time.time() < deadline and proc.poll() is None and not staging:
        staging = [n for n in os.listdir(tmp_path) if n.startswith(".bundle.")]
        time.sleep(0.02)
    assert staging, "the export finished or failed before its staging folder appeared"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert os.listdir(tmp_path) == []  # no .bundle.*.tmp, no half bundle
    lines = [line for line in err.splitlines() if line.startswith("error:")
             or "terminated" in line or "interrupted" in line]
    assert lines and ("terminated" in lines[-1] or "interrupted" in lines[-1])
    assert "Traceback" not in err



def test_ctrl_c_inside_exec_still_exits_130(tmp_path):
    """Ctrl-C landing in code run by exec() of a string (dataclasses build their methods that way
    while a module imports) must end with the documented 130 under `python -m`, not a death by
    SIGINT (CPython remembers such an interrupt even after it was handled)."""
    (tmp_path / "interrupt_probe.py").write_text(
        "import argparse, sys\n"
        "from bisenet_deploy.cli.common import run_cli\n"
        "p = argparse.ArgumentParser()\n"
        "p.set_defaults(func=lambda a: exec('raise KeyboardInterrupt'))\n"
        "raise SystemExit(run_cli(p, []))\n")
    done = subprocess.run([sys.executable, "-m", "interrupt_probe"], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stderr
    assert "interrupted" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_an_interrupt_a_library_swallows_still_stops_the_job_at_the_next_step(sig, code):
    """Some libraries catch everything (a bare `except:` around an import, an exporter wrapping
    any error): the signal is remembered and the next step of the job raises it again."""
    code_ = ("import os, signal, sys, time\n"
             "import argparse\n"
             "from bisenet_deploy.cli.common import run_cli\n"
             "from bisenet_deploy.portable.shared.step_timer import StepTimer\n"
             "def job(args):\n"
             "    try:\n"
             f"        os.kill(os.getpid(), {int(sig)})\n"
             "        time.sleep(30)\n"
             "    except BaseException:\n"
             "        pass  # what a careless library does\n"
             "    with StepTimer().step('next step'):\n"
             "        print('the job went on', flush=True)\n"
             "p = argparse.ArgumentParser()\n"
             "p.set_defaults(func=job)\n"
             "raise SystemExit(run_cli(p, []))\n")
    done = subprocess.run([sys.executable, "-c", code_], capture_output=True, text=True,
                          timeout=120, preexec_fn=_with_default_ctrl_c)
    assert done.returncode == code, done.stderr
    assert "the job went on" not in done.stdout
    assert "Traceback" not in done.stderr


def test_a_signal_the_caller_ignores_stays_ignored():
    """A background job started by a script ignores Ctrl-C; the commands must not take it back."""
    code_ = ("import os, signal, argparse\n"
             "from bisenet_deploy.cli.common import run_cli\n"
             "def job(args):\n"
             "    os.kill(os.getpid(), signal.SIGINT)\n"
             "    return 0\n"
             "p = argparse.ArgumentParser()\n"
             "p.set_defaults(func=job)\n"
             "raise SystemExit(run_cli(p, []))\n")
    done = subprocess.run([sys.executable, "-c", code_], capture_output=True, text=True,
                          timeout=120, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                        signal.SIG_IGN))
    assert done.returncode == 0, done.stderr
