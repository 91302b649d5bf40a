"""What this machine has: Python, the packages bisenet-deploy may use, the TensorRT flavours, GPUs.

Every probe answers; none raises. A package counts as present only when it imports (a stub-only
`tensorrt` or a broken wheel is reported with the reason), so the answer matches what the commands
will meet. Heavy packages are imported here, on purpose and one at a time, only when the doctor
runs: nothing is imported when this module is.
"""

from __future__ import annotations

import importlib
import logging
import platform
import sys
from importlib import metadata as importlib_metadata
from typing import Dict, List, Optional, Sequence

log = logging.getLogger(__name__)

#: key -> (modules to try in order, distributions that carry it, what it is for)
PACKAGES = {
    "torch": (("torch",), ("torch",), "the PyTorch model: export, compare, eval against PyTorch"),
    "onnx": (("onnx",), ("onnx",), "reading and writing ONNX graphs"),
    "onnxsim": (("onnxsim",), ("onnxsim", "onnx-simplifier"), "simplifying exported graphs"),
    "onnxruntime": (("onnxruntime",), ("onnxruntime", "onnxruntime-gpu"),
                    "the parity check of every export and the onnxruntime backend"),
    "pycuda": (("pycuda",), ("pycuda",), "the TensorRT runner's GPU memory (full TensorRT)"),
    "cuda-python": (("cuda.bindings.runtime", "cuda.cudart"), ("cuda-bindings", "cuda-python"),
                    "CUDA graphs in the TensorRT runner (--cuda-graph)"),
    "nvidia-pytriton": (("pytriton",), ("nvidia-pytriton",), "bisenet-serve (Triton server)"),
    "tritonclient": (("tritonclient.http", "tritonclient.grpc"), ("tritonclient",),
                     "bisenet-predict/bisenet-bench --server (Triton clients)"),
    "opencv": (("cv2",), ("opencv-python-headless", "opencv-python"),
               "bisenet-predict on videos"),
}


def _distribution_version(names: Sequence[str]) -> Optional[str]:
    for name in names:
        try:
            return importlib_metadata.version(name)
        except Exception:  # not installed, or broken metadata: a report must not fail on it
            continue
    return None


def _import(modules: Sequence[str]):
    """(module, None) for the first module that imports, else (None, the last reason)."""
    reason = "not installed"
    for name in modules:
        try:
            return importlib.import_module(name), None
        except Exception as exc:  # ImportError, or a wheel that breaks while importing
            reason = _one_line(exc) or reason
    return None, reason


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, ImportError) or not text:
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def probe_package(key: str) -> Dict[str, object]:
    """{installed, version, reason, purpose} of one of PACKAGES (plus what only an import shows:
    onnxruntime's providers, torch's CUDA build)."""
    modules, distributions, purpose = PACKAGES[key]
    module, reason = _import(modules)
    version = _distribution_version(distributions)
    if module is not None and version is None:
        version = getattr(module, "__version__", None)
    entry: Dict[str, object] = {"installed": module is not None, "version": version,
                                "purpose": purpose}
    if module is None:
        entry["reason"] = reason
        return entry
    if key == "onnxruntime":
        try:
            entry["providers"] = list(module.get_available_providers())
        except Exception as exc:
            entry["providers"] = []
            entry["reason"] = _one_line(exc)
    elif key == "torch":
        entry.update(_torch_cuda(module))
    return entry


def _torch_cuda(torch) -> Dict[str, object]:
    try:
        build = getattr(getattr(torch, "version", None), "cuda", None)
        return {"cuda_build": build, "cuda_available": bool(build) and bool(
            torch.cuda.is_available())}
    except Exception as exc:  # a broken CUDA install must not break the report
        return {"cuda_build": None, "cuda_available": False, "reason": _one_line(exc)}


def probe_python() -> Dict[str, object]:
    return {"version": platform.python_version(), "executable": sys.executable,
            "platform": platform.platform()}


def probe_tensorrt() -> List[Dict[str, object]]:
    """One entry per flavour (full TensorRT, TensorRT-RTX): installed or not and why, its version
    and its capabilities (the model every rule reads, portable/trt/capabilities.py)."""
    from ..portable.trt import flavours
    from ..portable.trt.capabilities import detect_capabilities, format_targets

    found = []
    for flavour in flavours.FLAVOURS:
        entry: Dict[str, object] = {"flavour": flavour, "label": flavours.flavour_label(flavour),
                                    "install": flavours.install_hint(flavour)}
        try:
            module, reason = flavours._try_import(flavour)
        except Exception as exc:  # a wheel whose native library fails to load
            module, reason = None, _one_line(exc)
        entry["installed"] = module is not None
        if module is None:
            entry["reason"] = reason
            found.append(entry)
            continue
        entry["module"] = getattr(module, "__name__", None)
        entry["version"] = str(getattr(module, "__version__", ""))
        try:
            caps = detect_capabilities(module)
        except Exception as exc:
            entry["installed"] = False
            entry["reason"] = "imports but its capabilities cannot be read (%s)" % _one_line(exc)
            found.append(entry)
            continue
        entry["capabilities"] = caps.as_dict()
        entry["capabilities"]["label"] = caps.label
        if caps.compute_targets:
            entry["capabilities"]["compute_targets"] = format_targets(caps.compute_targets)
            entry["capabilities"]["portable_targets"] = format_targets(caps.portable_targets or ())
        entry["_caps"] = caps  # for the advice; not part of the JSON
        found.append(entry)
    return found


def probe_gpus() -> List[Dict[str, object]]:
    """The GPUs: nvidia-smi (every GPU), else pycuda or a Jetson's own files (GPU 0), else
    torch.cuda when the doctor already imported torch. Empty when there is none."""
    from ..bench.environment import gpus_from_nvidia_smi, gpus_from_torch

    try:
        gpus = [dict(g, source="nvidia-smi") for g in gpus_from_nvidia_smi()]
    except Exception as exc:
        log.debug("nvidia-smi: %s", exc)
        gpus = []
    if gpus:
        return gpus
    from ..portable.shared.errors import MissingDependencyError
    from ..portable.trt.gpu_info import query_gpu

    try:
        return [query_gpu(0).as_dict()]
    except MissingDependencyError:
        pass
    except Exception as exc:  # a driver that answers with an error
        log.debug("GPU query failed: %s", exc)
    try:
        gpus, _ = gpus_from_torch()
    except Exception as exc:
        log.debug("torch.cuda: %s", exc)
        gpus = []
    return [dict(g, source="torch.cuda") for g in gpus]
