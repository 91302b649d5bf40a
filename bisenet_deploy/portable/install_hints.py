"""What to install, worded for where this code runs, so every hint matches the README at hand.

In a bisenet-deploy checkout the README installs the extras with ``pip install -e '.[trt]'``
(``[gpu]``, ``[video]``): the hints say exactly that. Inside a Jetson bundle (this package copied
as the bundle's runtime, see jetson/bundle.py) the bundle's README applies instead: TensorRT comes
from JetPack through apt, and ``./setup_jetson.sh`` builds pycuda into the bundle's ``.venv``.

Python 3.6 compatible; imports nothing.
"""

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
    """How to get pycuda here."""
    if IN_BUNDLE:
        return ("run ./setup_jetson.sh (it builds pycuda 2022.1 against /usr/local/cuda into "
                ".venv) and use .venv/bin/python")
    return ("install it from the bisenet-deploy checkout: %s (with TensorRT; on a Jetson, "
            "`bisenet-export jetson` makes a bundle that builds pycuda there)" % pip_extra("trt"))
