"""What to install, worded for where this code runs, so every hint matches the README at hand.

In a bisenet-deploy checkout the README installs the extras with ``pip install -e '.[trt]'``
(``[gpu]``, ``[video]``): the hints say exactly that. Inside a Jetson bundle (this package copied
as the bundle's runtime, see jetson/bundle.py) the bundle's README applies instead: TensorRT comes
from JetPack through apt, and ``./setup_jetson.sh`` builds pycuda into the bundle's ``.venv``.

Where the machine has no NVIDIA GPU at all, installing pycuda, TensorRT or onnxruntime-gpu would
not help: the hints say the real blocker (`no_gpu_hint`) instead of an install line.

Python 3.6 compatible; imports nothing but os.
"""

import os

#: True when this package runs as a Jetson bundle's copy rather than as bisenet_deploy.portable
IN_BUNDLE = __name__.split(".")[0] != "bisenet_deploy"

JETPACK_TENSORRT = ("sudo apt-get install python3-libnvinfer (or: sudo apt-get install "
                    "nvidia-jetpack)")


def doctor_hint():
    """The pointer every "not available here" message ends with: `bisenet-doctor` lists what this
    machine has and the exact line that installs the rest (a Jetson bundle has no such command)."""
    if IN_BUNDLE:
        return ""
    return "`bisenet-doctor` shows what this machine has and what to install"


#: what an NVIDIA GPU leaves on Linux: the driver's /proc entry, its device nodes, a Jetson's
#: GPU node and L4T release file
_GPU_TRACES = ("/proc/driver/nvidia", "/dev/nvidia0", "/dev/nvidiactl", "/dev/nvhost-ctrl-gpu",
               "/etc/nv_tegra_release")


def gpu_absent():
    """True when this machine shows no NVIDIA GPU at all: no driver, no device node, no Jetson."""
    return not any(os.path.exists(p) for p in _GPU_TRACES)


def no_gpu_hint(what):
    """The line for `what` (e.g. "the tensorrt backend") on a machine without an NVIDIA GPU."""
    return ("%s needs an NVIDIA GPU, and this machine has none (no NVIDIA driver is loaded: "
            "/proc/driver/nvidia is missing): run it on a machine with an NVIDIA GPU; installing "
            "packages here would not help" % what)


def pip_extra(extra):
    """The README's command for an optional extra, e.g. pip install -e '.[trt]'."""
    return "pip install -e '.[%s]'" % extra


def tensorrt_hint(jetson=False):
    """How to get TensorRT's Python package here."""
    if IN_BUNDLE:
        return ("TensorRT comes with JetPack: %s, then ./setup_jetson.sh, whose .venv sees the "
                "system TensorRT" % JETPACK_TENSORRT)
    if jetson:
        return ("TensorRT comes with JetPack: %s; use the system python3 or a venv created with "
                "--system-site-packages" % JETPACK_TENSORRT)
    return ("install it from the bisenet-deploy checkout: %s (needs an NVIDIA GPU and driver)"
            % pip_extra("trt"))


def pycuda_hint():
    """How to get pycuda here (nothing to install where there is no GPU for it)."""
    if gpu_absent():
        return no_gpu_hint("pycuda (CUDA from Python)")
    if IN_BUNDLE:
        return ("run ./setup_jetson.sh (it builds pycuda 2022.1 against /usr/local/cuda into "
                ".venv) and use .venv/bin/python")
    return ("install it from the bisenet-deploy checkout: %s (with TensorRT; on a Jetson, "
            "`bisenet-export jetson` makes a bundle that builds pycuda there)" % pip_extra("trt"))
