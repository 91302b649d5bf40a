"""One entry point that opens any backend by name, so the benchmark, parity and eval loops never
branch on backends themselves.

Backends: "tensorrt" (engine, pycuda), "onnxruntime" (CPU), "onnxruntime-cuda",
"onnxruntime-trt" (onnxruntime-gpu execution providers), "torch" (CPU), "torch-cuda".
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any, Dict, List, Optional

from ..errors import InputError, MissingDependencyError
from ..portable.shared.install_hints import gpu_absent, no_gpu_hint, pip_extra
from ..portable.running.runner_base import Runner

log = logging.getLogger(__name__)

BACKENDS: Dict[str, str] = {
    "tensorrt": "a TensorRT or TensorRT-RTX engine through pycuda (needs --engine)",
    "onnxruntime": "onnxruntime on the CPU (needs --onnx)",
    "onnxruntime-cuda": "onnxruntime's CUDA execution provider (onnxruntime-gpu; needs --onnx)",
    "onnxruntime-trt": "onnxruntime's TensorRT execution provider (onnxruntime-gpu; needs --onnx)",
    "torch": "PyTorch on the CPU, same graph as the export (checkpoint, or the ONNX's record)",
    "torch-cuda": "PyTorch on CUDA, same graph as the export (checkpoint, or the ONNX's record)",
}

_ORT_PROVIDER = {"onnxruntime": "cpu", "onnxruntime-cuda": "cuda", "onnxruntime-trt": "tensorrt"}


def _has_module(name: str) -> bool:
    """True when `name` is an installed module; a bare folder (a namespace package, e.g. type
    stubs such as tensorrt-stubs' `tensorrt/__init__.pyi`) does not count."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin not in (None, "namespace")


def backend_problem(backend: str) -> Optional[str]:
    """None when `backend` can run here, else one line saying what is missing and what to do."""
    if backend not in BACKENDS:
        return f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})"
    if backend == "tensorrt":
        # either flavour: the engine's sidecar says which one runs it (TensorRT-RTX engines too)
        has_trt = any(_has_module(m) for m in ("tensorrt", "tensorrt_rtx", "tensorrt_rtx_bindings"))
        missing = ([] if has_trt else ["tensorrt"]) + ([] if _has_module("pycuda") else ["pycuda"])
        if missing and gpu_absent():  # installing them would not help
            return no_gpu_hint("the tensorrt backend")
        if missing:
            return (f"{' and '.join(missing)} not installed: the tensorrt backend needs an NVIDIA "
                    f"GPU with TensorRT (or TensorRT-RTX) and pycuda (`{pip_extra('trt')}`; on "
                    f"a Jetson: JetPack)")
        return None
    if backend.startswith("onnxruntime"):
        from ..ort_runner import PROVIDERS, available_providers

        if not _has_module("onnxruntime"):
            return "onnxruntime is not installed: `pip install onnxruntime`"
        short = _ORT_PROVIDER[backend]
        if short not in available_providers() and gpu_absent():
            return no_gpu_hint(f"the {backend} backend")
        if short not in available_providers():
            return (f"this onnxruntime has no {PROVIDERS[short]}: install onnxruntime-gpu in "
                    f"place of onnxruntime (`pip uninstall onnxruntime`, then "
                    f"`{pip_extra('gpu')}`)")
        return None
    if not _has_module("torch"):
        return "PyTorch is not installed: `pip install torch`"
    if backend == "torch-cuda":
        import torch

        if not torch.cuda.is_available():
            return "PyTorch sees no CUDA GPU here (no NVIDIA GPU, or a CPU-only torch build)"
    return None


def available_backends() -> List[str]:
    """The backends that can run on this machine, in the order of BACKENDS."""
    return [name for name in BACKENDS if backend_problem(name) is None]


def _record_of_onnx(onnx: str) -> Dict[str, Any]:
    from ..export.onnx_metadata import read_record

    return read_record(onnx)


def open_runner(backend: str, *, onnx: Optional[str] = None, engine: Optional[str] = None,
                checkpoint: Optional[str] = None, record: Optional[Dict[str, Any]] = None,
                device: Optional[Any] = None, precision: Optional[str] = None,
                require_metadata: bool = False, **options: Any) -> Runner:
    """A (not yet activated) runner for `backend`.

    - tensorrt: `engine` (options: sidecar_path, use_cuda_graph, zero_copy, context_mode);
      `device` is the GPU index. The precision is the engine's: a different `precision` is refused.
    - onnxruntime*: `onnx` (options: threads). `precision="fp16"` only for onnxruntime-trt
      (TensorRT provider's fp16 mode); otherwise the ONNX's own precision.
    - torch / torch-cuda: `checkpoint` (None: seeded random weights) and, to run exactly the graph
      of an export, `record` or `onnx` (its record is used). Options: channels_last, cuda_graph,
      threads. `device` for torch-cuda may be "cuda:1" or 1.

    `require_metadata=True` refuses, before any work, an ONNX or engine without the bisenet_deploy
    record (NoMetadataError): the commands need it to prepare images and read the outputs.
    """
    backend = str(backend).lower()
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)}")
    if precision not in (None, "fp32", "fp16"):
        raise InputError(f"precision must be fp32 or fp16, got {precision!r}")

    if backend == "tensorrt":
        if not engine:
            raise InputError("the tensorrt backend needs an engine (--engine PATH); build one "
                             "with `bisenet-build-engine`")
        from ..portable.running.trt_runner import TensorRTRunner

        runner = TensorRTRunner(engine, device=int(device or 0), **options)
        if require_metadata and runner.metadata is None:
            from ..errors import NoMetadataError

            raise NoMetadataError(engine, kind="engine")
        built = (runner.sidecar or {}).get("precision")
        if precision and built and precision != built:
            raise InputError(f"the engine {engine} was built for {built}; its precision is "
                             f"fixed at build time (build another with bisenet-build-engine)")
        return runner

    if backend in _ORT_PROVIDER:
        if not onnx:
            raise InputError(f"the {backend} backend needs an ONNX file (--onnx PATH); create "
                             f"one with `bisenet-export onnx`")
        from ..ort_runner import OnnxRuntimeRunner

        problem = backend_problem(backend)
        if problem:
            raise MissingDependencyError(f"{backend}: {problem}")
        if require_metadata:
            _record_of_onnx(onnx)  # a foreign, corrupt or missing ONNX: one clear line
        if backend != "onnxruntime-trt":
            _check_artifact_precision(onnx, precision)
            precision = None
        return OnnxRuntimeRunner(onnx, providers=(_ORT_PROVIDER[backend],), precision=precision,
                                 device=int(device or 0), **options)

    # torch
    from .torch_runner import TorchRunner

    if backend == "torch-cuda":
        problem = backend_problem(backend)
        if problem:
            raise MissingDependencyError(f"torch-cuda: {problem}")
        dev = device if isinstance(device, str) and device.startswith("cuda") else \
            f"cuda:{int(device or 0)}"
    else:
        if device not in (None, "cpu"):
            raise InputError("the torch backend runs on the CPU; use torch-cuda for a GPU")
        dev = "cpu"
    if record is None and onnx:
        record = _record_of_onnx(onnx)
    return TorchRunner(checkpoint, record=record, device=dev, precision=precision or "fp32",
                       **options)


def _check_artifact_precision(onnx: str, precision: Optional[str]) -> None:
    """onnxruntime CPU/CUDA run the ONNX as exported: a different requested precision is an error."""
    if precision is None:
        return
    export = _record_of_onnx(onnx)["export"]
    exported = export.get("precision")
    if exported:
        try:  # the graph's own precision: an "fp16" export for TensorRT <= 10 is an FP32 graph
            from ..export.targets import get_target

            exported = get_target(export.get("target")).graph_precision(exported)
        except InputError:  # an unknown/future target: take the record's word
            pass
    if exported and exported != precision:
        raise InputError(f"{onnx} was exported for {exported}; onnxruntime runs it as exported "
                         f"(export an {precision} ONNX, or use onnxruntime-trt / tensorrt for "
                         f"reduced precision)")
