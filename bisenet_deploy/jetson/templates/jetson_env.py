"""The device a bisenet-deploy Jetson bundle runs on: L4T/JetPack release, Python, numpy, TensorRT,
pycuda and the GPU (`jetson_run.py check`), and the power mode a benchmark records.

Imports only the standard library: `check` must say what is missing before setup_jetson.sh ran
(numpy, TensorRT and pycuda are imported inside the functions, and a missing one is reported).
Runs on the device's Python 3.6.
"""

import os
import re
import subprocess
import sys

from bisenet_trt.shared.errors import MissingDependencyError

TEGRA_RELEASE_FILE = "/etc/nv_tegra_release"
NUMPY_HINT = ("run ./setup_jetson.sh (it installs numpy 1.19.4 into .venv) and use .venv/bin/python")
#: L4T release -> JetPack, for the releases a TX2 can run (JetPack 4.6.x is the last for the TX2)
L4T_TO_JETPACK = {
    (32, 6): "4.6",
    (32, 7): "4.6.1 or later 4.6.x",
    (32, 5): "4.5",
    (32, 4): "4.4",
}


def numpy():
    """numpy, imported when a command needs it: `verify` and `check` run on a bare python3."""
    try:
        import numpy as np
    except ImportError:
        raise MissingDependencyError("numpy is not importable: " + NUMPY_HINT) from None
    return np


def parse_tegra_release(text):
    """'# R32 (release), REVISION: 6.1, ...' -> (32, 6, 1); None when the text is not one."""
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)(?:\.(\d+))?", text)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def jetpack_for(release):
    if release is None:
        return None
    return L4T_TO_JETPACK.get((release[0], release[1]))


def read_tegra_release(path=TEGRA_RELEASE_FILE):
    try:
        with open(path, "r") as f:
            return parse_tegra_release(f.read())
    except (IOError, OSError):
        return None


def environment_checks():
    """List of (item, found, ok, what to do) for the person at the device."""
    rows = []
    release = read_tegra_release()
    if release is None:
        rows.append(("L4T / JetPack", "not a Jetson (no %s)" % TEGRA_RELEASE_FILE, False,
                     "run this bundle on the Jetson TX2 itself; engines must be built there"))
    else:
        jp = jetpack_for(release)
        found = "L4T R%d.%d.%d (JetPack %s)" % (release + (jp or "unknown",))
        ok = release[0] == 32 and release[1] >= 6
        rows.append(("L4T / JetPack", found, ok,
                     "" if ok else "this bundle targets JetPack 4.6 (L4T R32.6/R32.7): flash "
                     "JetPack 4.6.x with NVIDIA SDK Manager"))
    py = sys.version_info
    rows.append(("Python", "%d.%d.%d" % (py[0], py[1], py[2]), py[:2] >= (3, 6),
                 "" if py[:2] >= (3, 6) else "use the system python3 (3.6) of JetPack 4.6"))
    try:
        np = numpy()
        nv = tuple(int(p) for p in re.findall(r"\d+", np.__version__)[:2])
        rows.append(("numpy", np.__version__, nv >= (1, 19), "" if nv >= (1, 19) else NUMPY_HINT))
    except MissingDependencyError:
        rows.append(("numpy", "not importable", False, NUMPY_HINT))
    try:
        from bisenet_trt.trt.flavours import import_tensorrt
        trt_version = import_tensorrt("tensorrt").__version__
        ok = trt_version.split(".")[:2] == ["8", "2"]
        rows.append(("TensorRT", trt_version, True,
                     "" if ok else "not the 8.2 of JetPack 4.6: engines still build on the "
                     "device, but this combination is untested"))
    except (ImportError, MissingDependencyError) as exc:
        rows.append(("TensorRT", "not importable (%s)" % exc, False,
                     "sudo apt-get install python3-libnvinfer (JetPack), and use the .venv that "
                     "setup_jetson.sh made with --system-site-packages"))
    try:
        import pycuda
        import pycuda.driver as cuda
        cuda.init()
        rows.append(("pycuda", getattr(pycuda, "VERSION_TEXT", "?"), True, ""))
        if cuda.Device.count() < 1:
            rows.append(("GPU", "none visible", False, "check that the user is in the 'video' "
                         "group and that /dev/nvhost-* exist"))
        else:
            dev = cuda.Device(0)
            cc = dev.compute_capability()
            rows.append(("GPU", "%s (SM %d.%d, %d MiB)" % (dev.name(), cc[0], cc[1],
                                                            dev.total_memory() // (1 << 20)),
                         True, ""))
    except ImportError as exc:
        rows.append(("pycuda", "not importable (%s)" % exc, False,
                     "run ./setup_jetson.sh (builds pycuda 2022.1 against /usr/local/cuda)"))
    except Exception as exc:  # pycuda.driver.Error and friends
        rows.append(("GPU", "CUDA initialisation failed (%s)" % exc, False,
                     "check the user is in the 'video' group; reboot if the GPU driver is stuck"))
    return rows


def power_state():
    """The nvpmodel mode recorded by bench.sh (or queried now), for the benchmark report."""
    state = {"nvpmodel": os.environ.get("BISENET_NVPMODEL") or None,
             "jetson_clocks": os.environ.get("BISENET_JETSON_CLOCKS") or None}
    if state["nvpmodel"] is None:
        try:
            out = subprocess.check_output(["nvpmodel", "-q"], stderr=subprocess.STDOUT,
                                          universal_newlines=True, timeout=10)
            state["nvpmodel"] = " ".join(out.split())
        except Exception:  # not a Jetson, or nvpmodel needs root here
            pass
    return state
