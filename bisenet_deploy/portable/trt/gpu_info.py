"""Name, compute capability and driver of the GPU an engine is built for or run on.

Engines are tied to the GPU model and TensorRT version, so the builder records the GPU in the
sidecar and the runtime compares. Sources, tried in order and all imported lazily: pycuda (works on
desktop and Jetson), `nvidia-smi` (desktop only: Jetsons have none), and on a Jetson the L4T
release file plus the device-tree model name.

Python 3.6 compatible.
"""

import logging
import os
import re
import subprocess

from ..shared.errors import MissingDependencyError
from ..shared.install_hints import IN_BUNDLE, gpu_absent, no_gpu_hint, pip_extra, pycuda_hint
from .trt_api import JETSON_RELEASE_FILE, is_jetson

log = logging.getLogger(__name__)

DEVICE_TREE_MODEL = "/proc/device-tree/model"

#: Jetson module name fragments -> (GPU name pycuda reports, compute capability)
_JETSON_GPUS = (
    ("orin", ("Orin", (8, 7))),
    ("xavier", ("Xavier", (7, 2))),
    ("tx2", ("NVIDIA Tegra X2", (6, 2))),
    ("nano", ("NVIDIA Tegra X1", (5, 3))),
    ("tx1", ("NVIDIA Tegra X1", (5, 3))),
)


class GpuInfo(object):
    """One GPU: `name` as the driver reports it, `compute_capability` (major, minor), `driver`
    (free text: the driver version, or the L4T release on a Jetson), total memory in MiB if known,
    and where the facts came from."""

    def __init__(self, name, compute_capability, driver=None, memory_mib=None, source="",
                 jetson=False, index=0):
        self.name = str(name)
        self.compute_capability = (int(compute_capability[0]), int(compute_capability[1]))
        self.driver = driver
        self.memory_mib = memory_mib
        self.source = source
        self.jetson = bool(jetson)
        self.index = int(index)

    @property
    def sm(self):
        """'61' for SM 6.1."""
        return "%d%d" % self.compute_capability

    def cc_string(self):
        return "%d.%d" % self.compute_capability

    def as_dict(self):
        return {"name": self.name, "compute_capability": self.cc_string(), "driver": self.driver,
                "memory_mib": self.memory_mib, "jetson": self.jetson, "source": self.source}

    def describe(self):
        return "%s (SM %s, driver %s)" % (self.name, self.cc_string(), self.driver or "unknown")

    def __repr__(self):
        return "GpuInfo(%r)" % (self.as_dict(),)


# -- pure parsers --------------------------------------------------------------------------------

def parse_nvidia_smi_csv(text, index=0):
    """Parse `nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total
    --format=csv,noheader,nounits` output; returns GpuInfo for line `index` or None."""
    lines = [line for line in str(text).splitlines() if line.strip()]
    if index >= len(lines):
        return None
    fields = [f.strip() for f in lines[index].split(",")]
    if len(fields) < 3:
        return None
    name, cc_text, driver = fields[0], fields[1], fields[2]
    match = re.match(r"^(\d+)\.(\d+)$", cc_text)
    if not match:
        return None
    memory = None
    if len(fields) > 3:
        try:
            memory = int(float(fields[3]))
        except ValueError:
            memory = None
    return GpuInfo(name, (int(match.group(1)), int(match.group(2))), driver=driver,
                   memory_mib=memory, source="nvidia-smi", index=index)


def parse_tegra_release(text):
    """'# R32 (release), REVISION: 7.1, GCID: ...' -> 'L4T R32.7.1' (None if unrecognised)."""
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", str(text))
    if not match:
        return None
    return "L4T R%s.%s" % (match.group(1), match.group(2))


def jetson_gpu_from_model(model_text):
    """Device-tree model ('NVIDIA Jetson TX2 Developer Kit') -> (gpu name, cc) or None."""
    lowered = str(model_text).lower()
    for fragment, answer in _JETSON_GPUS:
        if fragment in lowered:
            return answer
    return None


def slug(name):
    """'NVIDIA GeForce GTX 1080 Ti' -> 'nvidia-geforce-gtx-1080-ti' (safe in a folder name)."""
    text = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")
    return text or "unknown-gpu"


# -- queries (lazy, may touch the hardware) ------------------------------------------------------

def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except (IOError, OSError):
        return None


def _query_pycuda(index):
    try:
        import pycuda.driver as cuda  # noqa: WPS433 - lazy on purpose
    except ImportError:
        return None
    try:
        cuda.init()
        device = cuda.Device(index)
        major, minor = device.compute_capability()
        driver = cuda.get_driver_version()
        memory = int(device.total_memory() // (1024 * 1024))
        driver_text = "CUDA driver API %d.%d" % (driver // 1000, (driver % 1000) // 10)
        return GpuInfo(device.name(), (major, minor), driver=driver_text, memory_mib=memory,
                       source="pycuda", index=index)
    except Exception as exc:  # pycuda raises its own LogicError/RuntimeError types
        log.debug("pycuda could not query GPU %d: %s", index, exc)
        return None


def _query_nvidia_smi(index):
    try:
        out = subprocess.check_output(
            ["nvidia-smi", "--query-gpu=name,compute_cap,driver_version,memory.total",
             "--format=csv,noheader,nounits"], stderr=subprocess.STDOUT, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("nvidia-smi not usable: %s", exc)
        return None
    return parse_nvidia_smi_csv(out.decode("utf-8", "replace"), index)


def query_gpu(index=0):
    """The GPU `index` as a GpuInfo; raises MissingDependencyError when nothing can tell."""
    jetson = is_jetson()
    l4t = parse_tegra_release(_read(JETSON_RELEASE_FILE) or "") if jetson else None
    info = _query_pycuda(index)
    if not jetson:
        smi = _query_nvidia_smi(index)
        if info is None:
            info = smi
        elif smi is not None and smi.name == info.name:
            info.driver = "%s (%s)" % (smi.driver, info.driver)  # the driver users know by number
    if info is None and jetson:
        known = jetson_gpu_from_model(_read(DEVICE_TREE_MODEL) or "")
        if known is not None:
            info = GpuInfo(known[0], known[1], source="device-tree", index=index)
    if info is None:
        if jetson:
            raise MissingDependencyError(
                "cannot identify this Jetson's GPU: pycuda is not importable; %s" % (
                    pycuda_hint() if IN_BUNDLE else "in a Jetson bundle run ./setup_jetson.sh "
                    "(it builds pycuda 2022.1 into .venv) and use .venv/bin/python"))
        if gpu_absent():
            raise MissingDependencyError("no NVIDIA GPU found (neither pycuda nor nvidia-smi "
                                         "answered): " + no_gpu_hint("this"))
        raise MissingDependencyError(
            "cannot identify the GPU: neither pycuda nor nvidia-smi answered; install the NVIDIA "
            "driver and %s" % (pycuda_hint() if IN_BUNDLE else "`%s` (pulls pycuda)"
                               % pip_extra("trt")))
    if jetson:
        info.jetson = True
        if l4t:
            info.driver = l4t
    return info


def describe_environment():
    """Short dict for logs and reports: Jetson or not, L4T release."""
    jetson = is_jetson()
    return {"jetson": jetson,
            "l4t": parse_tegra_release(_read(JETSON_RELEASE_FILE) or "") if jetson else None,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
