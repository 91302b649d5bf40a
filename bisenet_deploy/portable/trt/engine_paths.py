"""Where engines go by default: one folder per GPU model, compute capability and TensorRT version.

An engine only runs on the GPU model and TensorRT version it was built with, so the default path
says both: `engines/<gpu-name>-sm<XY>-trt<version>/<onnx-stem>-<precision>.engine`, with the JSON
sidecar beside it (`<onnx-stem>-<precision>.json`) and the folder's shared timing cache
(`timing.cache`, valid for exactly that GPU and TensorRT).

TensorRT-RTX engines are built for a list of compute capabilities, with or without a GPU, so their
folder names the flavour, version and targets, after the GPU when there is one:
`engines/[<gpu-name>-sm<XY>-]rtx<version>-<portable|sm75|sm75-sm86...>/`. The kernels a GPU
compiles when it loads such an engine are cached beside it, one file per GPU architecture
(`<engine-stem>.sm<XY>.runtime.cache`).

Python 3.6 compatible; pure.
"""

import os

from .gpu_info import slug
from .precision import parse_compute_capability
from .trt_api import version_string

ENGINE_SUFFIX = ".engine"
SIDECAR_SUFFIX = ".json"
TIMING_CACHE_NAME = "timing.cache"
CALIB_CACHE_SUFFIX = ".calib.cache"
RUNTIME_CACHE_SUFFIX = ".runtime.cache"


def targets_slug(targets):
    """'portable' for TensorRT-RTX's default targets (None), else 'sm75' / 'sm75-sm86'."""
    if not targets:
        return "portable"
    return "-".join("sm%d%d" % parse_compute_capability(t) for t in targets)


def engine_folder_name(gpu_name, compute_capability, trt_version, flavour="tensorrt",
                       targets=None):
    """'nvidia-geforce-gtx-1080-ti-sm61-trt8.6.1'; TensorRT-RTX: 'rtx1.7.1-portable', or with a GPU
    'nvidia-geforce-rtx-4090-sm89-rtx1.7.1-sm89' (targets: the explicit --compute-capability list,
    None for the portable default)."""
    version = version_string(trt_version)
    if flavour == "tensorrt-rtx":
        name = "rtx%s-%s" % (version, targets_slug(targets))
        if gpu_name:
            major, minor = parse_compute_capability(compute_capability)
            name = "%s-sm%d%d-%s" % (slug(gpu_name), major, minor, name)
        return name
    major, minor = parse_compute_capability(compute_capability)
    return "%s-sm%d%d-trt%s" % (slug(gpu_name), major, minor, version)


def onnx_stem(onnx_path):
    base = os.path.basename(str(onnx_path))
    stem, ext = os.path.splitext(base)
    return stem if ext.lower() == ".onnx" else base


def engine_file_name(onnx_path, precision):
    """'<onnx-stem>-<precision>.engine'; a stem that already ends in the precision (a trt11 FP16
    export, '...-trt11-fp16.onnx') does not get it twice."""
    stem = onnx_stem(onnx_path)
    if not stem.endswith("-" + str(precision)):
        stem = "%s-%s" % (stem, precision)
    return stem + ENGINE_SUFFIX


def default_engine_path(onnx_path, gpu_name, compute_capability, trt_version, precision,
                        root="engines", flavour="tensorrt", targets=None):
    """engines/<folder (engine_folder_name)>/<onnx-stem>-<precision>.engine"""
    folder = engine_folder_name(gpu_name, compute_capability, trt_version, flavour, targets)
    return os.path.join(str(root), folder, engine_file_name(onnx_path, precision))


def sidecar_path(engine_path):
    """The JSON sidecar beside an engine: 'x/model-fp16.engine' -> 'x/model-fp16.json'."""
    engine_path = str(engine_path)
    stem, ext = os.path.splitext(engine_path)
    if ext.lower() in (".engine", ".plan", ".trt"):
        return stem + SIDECAR_SUFFIX
    return engine_path + SIDECAR_SUFFIX


def default_timing_cache_path(engine_path):
    """The timing cache shared by every engine in the engine's folder."""
    return os.path.join(os.path.dirname(str(engine_path)), TIMING_CACHE_NAME)


def default_calibration_cache_path(engine_path):
    stem, _ = os.path.splitext(str(engine_path))
    return stem + CALIB_CACHE_SUFFIX


def runtime_cache_path(engine_path, compute_capability):
    """The TensorRT-RTX runtime cache of this engine on a GPU of that compute capability:
    'x/m-fp16.engine' on SM 8.6 -> 'x/m-fp16.sm86.runtime.cache'."""
    stem, _ = os.path.splitext(str(engine_path))
    return "%s.sm%d%d%s" % ((stem,) + parse_compute_capability(compute_capability)
                            + (RUNTIME_CACHE_SUFFIX,))
