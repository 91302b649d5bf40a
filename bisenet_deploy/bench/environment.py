"""What machine and software stack a benchmark ran on, recorded with every report.

A latency without the GPU, driver, TensorRT version and thread count next to it cannot be compared
with anything. Collection never fails: what cannot be found is recorded as None. Nothing heavy is
imported here: package versions come from the installed distributions' metadata, the GPU from
torch.cuda only when torch is already loaded, otherwise from `nvidia-smi` when it is on PATH.
"""

import logging
import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata as importlib_metadata

log = logging.getLogger(__name__)

#: distributions whose versions every report lists (first installed name wins)
PACKAGES = (
    ("tensorrt", ("tensorrt", "tensorrt-cu12", "tensorrt-cu11", "tensorrt-lean",
                  "nvidia-tensorrt")),
    ("tensorrt_rtx", ("tensorrt-rtx-cu12-bindings", "tensorrt-rtx-cu13-bindings", "tensorrt-rtx")),
    ("pycuda", ("pycuda",)),
    ("onnxruntime", ("onnxruntime", "onnxruntime-gpu")),
    ("onnx", ("onnx",)),
    ("torch", ("torch",)),
    ("numpy", ("numpy",)),
)


def package_version(names):
    for name in names:
        try:
            return importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
        except Exception:  # pragma: no cover - broken metadata must not break a benchmark
            continue
    return None


def cpu_model():
    """The CPU's marketing name (Linux /proc/cpuinfo, else platform.processor())."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def _run(cmd, timeout=10.0):
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=timeout, check=True)
        return out.stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        return None


def gpus_from_nvidia_smi():
    """[{name, compute_capability, driver, memory_mib, clocks}] from nvidia-smi, or []."""
    if shutil.which("nvidia-smi") is None:
        return []
    fields = "name,compute_cap,driver_version,memory.total,clocks.sm,clocks.max.sm"
    text = _run(["nvidia-smi", "--query-gpu=" + fields, "--format=csv,noheader,nounits"])
    if text is None:  # old drivers have no compute_cap field
        fields = "name,driver_version,memory.total,clocks.sm,clocks.max.sm"
        text = _run(["nvidia-smi", "--query-gpu=" + fields, "--format=csv,noheader,nounits"])
        if text is None:
            return []
    keys = fields.split(",")
    gpus = []
    for line in text.strip().splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) != len(keys):
            continue
        row = dict(zip(keys, values))
        gpus.append({
            "name": row.get("name"),
            "compute_capability": row.get("compute_cap"),
            "driver": row.get("driver_version"),
            "memory_mib": _int(row.get("memory.total")),
            "sm_clock_mhz": _int(row.get("clocks.sm")),
            "sm_clock_max_mhz": _int(row.get("clocks.max.sm")),
        })
    return gpus


def cuda_version_from_nvidia_smi():
    text = _run(["nvidia-smi"])
    if not text:
        return None
    match = re.search(r"CUDA Version:\s*([0-9.]+)", text)
    return match.group(1) if match else None


def _int(text):
    try:
        return int(float(text))
    except (TypeError, ValueError):
        return None


def gpus_from_torch():
    """GPU list from torch.cuda, only when torch is already imported (never imports it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return [], None
    try:
        if not torch.cuda.is_available():
            return [], None
        gpus = []
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            gpus.append({"name": props.name,
                         "compute_capability": "%d.%d" % (props.major, props.minor),
                         "driver": None,
                         "memory_mib": int(props.total_memory // (1 << 20))})
        return gpus, torch.version.cuda
    except Exception:  # pragma: no cover - a broken CUDA install must not break the report
        return [], None


def jetson_info():
    """JetPack/L4T release and power mode on a Jetson, else None."""
    try:
        with open("/etc/nv_tegra_release") as f:
            release = f.readline().strip()
    except OSError:
        return None
    info = {"l4t": release, "nvpmodel": None}
    if shutil.which("nvpmodel"):
        info["nvpmodel"] = (_run(["nvpmodel", "-q"]) or "").strip() or None
    return info


def load_average():
    """1/5/15-minute load averages (a busy machine explains noisy timings), or None."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def collect_environment(threads=None, extra=None):
    """The environment section of a report. `threads`: the thread setting the run used."""
    env = {
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": {"model": cpu_model(), "logical_cores": os.cpu_count(),
                "affinity": (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                             else None)},
        "threads": threads,
        "packages": {key: package_version(names) for key, names in PACKAGES},
    }
    gpus = gpus_from_nvidia_smi()
    cuda = cuda_version_from_nvidia_smi() if gpus else None
    if not gpus:
        gpus, cuda = gpus_from_torch()
    env["gpus"] = gpus
    env["cuda"] = cuda
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch_cuda_build"] = getattr(getattr(torch, "version", None), "cuda", None)
        try:
            env["torch_threads"] = int(torch.get_num_threads())
        except Exception:  # pragma: no cover
            env["torch_threads"] = None
    env["load_average"] = load_average()
    env["jetson"] = jetson_info()
    if extra:
        env.update(extra)
    return env


def describe(env):
    """One line for terminals: CPU, GPU, the versions that matter."""
    cpu = env.get("cpu") or {}
    gpus = env.get("gpus") or []
    gpu = ", ".join("%s (sm %s)" % (g.get("name"), g.get("compute_capability") or "?")
                    for g in gpus) or "none"
    pk = env.get("packages") or {}
    shown = ("tensorrt",) + (("tensorrt_rtx",) if pk.get("tensorrt_rtx") else ()) + (
        "onnxruntime", "torch")
    versions = ", ".join("%s %s" % (k, pk.get(k) or "-") for k in shown)
    extra = ", driver %s, CUDA %s" % (gpus[0].get("driver"), env.get("cuda")) if gpus else ""
    return "machine: CPU %s (%s cores), GPU %s%s; %s; python %s" % (
        cpu.get("model") or "?", cpu.get("affinity") or cpu.get("logical_cores") or "?", gpu,
        extra, versions, env.get("python"))


def device_slug(env):
    """Short file-name-safe name of the device: the first GPU, else the CPU model."""
    name = None
    if env.get("gpus"):
        name = env["gpus"][0].get("name")
    if not name:
        name = "cpu-" + (env.get("cpu", {}).get("model") or platform.machine() or "unknown")
    return slugify(name)


def slugify(text, limit=40):
    text = re.sub(r"\((r|tm)\)|\bcpu\s*@.*$|\bwith\b.*$", "", str(text), flags=re.I)
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    slug = re.sub(r"-+", "-", slug)
    return (slug[:limit].rstrip("-")) or "unknown"
