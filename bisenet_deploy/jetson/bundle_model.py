"""The model inside a Jetson bundle: the trt8.2 ONNX (exported here, or an existing one checked),
and the sample image with ONNX Runtime's labels for it, against which the device checks its engine.

bundle.py assembles the rest of the bundle around what this module writes into `model/`.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any, Dict, Tuple

from ..errors import ExportError, UnusableFileError
from ..portable.files.fileio import atomic_output, sha256_file
from .bundle_options import BundleOptions

log = logging.getLogger(__name__)

#: the export target of every bundled ONNX: the TX2's TensorRT 8.2
TARGET = "trt8.2"


def bundled_model(options: BundleOptions, model_dir: str) -> Tuple[str, Dict[str, Any], Dict[str, Any]]:
    """The trt8.2 ONNX inside `model_dir`, its record, and the export report (parity, timings)."""
    if options.onnx is not None:
        return take_onnx(options.onnx, model_dir)
    from ..export.pipeline import ExportOptions, export_onnx

    tmp_path = os.path.join(model_dir, "export.onnx")
    result = export_onnx(ExportOptions(
        checkpoint=options.checkpoint, arch=options.arch, dataset=options.dataset,
        num_classes=options.num_classes, seed=options.seed, output_path=tmp_path,
        input_size=options.input_size, model_size=options.model_size, normalize="in-graph", channel_order=options.channel_order, input_dtype="float32",
        output=options.output, target=TARGET, precision="fp32", simplify=options.simplify,
        parity=True, exporter=options.exporter, progress=options.progress))
    record = result.record
    path = os.path.join(model_dir, model_stem(record) + ".onnx")
    os.rename(result.path, path)
    report = {
        "parity": result.parity.to_dict() if result.parity is not None else None,
        "export_steps": [[name, round(seconds, 3)] for name, seconds in result.timings],
        "onnx_sha256": sha256_file(path),
        "simplified": result.simplified,
    }
    return path, record, report


def take_onnx(src: str, model_dir: str) -> Tuple[str, Dict[str, Any], Dict[str, Any]]:
    """An existing ONNX: it must carry our metadata and pass the trt8.2 target check."""
    from ..export.check import check_onnx
    from ..export.onnx_metadata import read_record

    record = read_record(src)
    export = record.get("export") or {}
    if export.get("target") != TARGET:
        raise UnusableFileError(f"{src} was exported for target {export.get('target')!r}; a Jetson "
                          f"TX2 (TensorRT 8.2) needs `bisenet-export onnx --target {TARGET}`, or "
                          f"let `bisenet-export jetson --checkpoint ...` export it")
    if "labels" not in export.get("output_names", []):
        raise UnusableFileError(f"{src} has no 'labels' output; export it with --output labels or "
                                f"both")
    problems = check_onnx(src, TARGET)
    if problems:
        raise ExportError(f"{src} breaks {len(problems)} rule(s) of target {TARGET}: "
                          + "; ".join(problems))
    path = os.path.join(model_dir, model_stem(record) + ".onnx")
    shutil.copyfile(src, path)
    report = {"parity": None, "export_steps": [], "onnx_sha256": sha256_file(path),
              "source_onnx": os.path.basename(src)}
    log.info("using the existing %s (its parity was checked when it was exported)", src)
    return path, record, report


def model_stem(record: Dict[str, Any]) -> str:
    """The bundled ONNX's file stem: the same name `bisenet-export onnx` gives it by default."""
    from ..export.pipeline import export_stem

    return export_stem(record)


def write_sample(path: str, onnx_path: str, record: Dict[str, Any], seed: int = 0) -> None:
    """A synthetic street image at the graph's input size and ONNX Runtime's labels for it.

    The device runs the same image through its engine and compares labels (jetson_run.py build /
    predict): the only end-to-end check that the engine built there gives the desktop's answers.
    """
    import numpy as np

    from ..portable.running.preprocess import prepare_input
    from ..synthetic import synthetic_image

    width, height = record["export"]["input_size"]
    image = synthetic_image(int(width), int(height), seed=seed)
    labels = reference_labels(onnx_path, prepare_input(image, record))[0]
    dtype = np.uint8 if int(record["model"]["num_classes"]) <= 256 else np.int32
    with atomic_output(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, image=image, labels=labels.astype(dtype))


def reference_labels(onnx_path: str, batch: Any) -> Any:
    """The labels output of the ONNX graph, run by the toolkit's onnxruntime runner on the CPU."""
    from ..ort_runner import OnnxRuntimeRunner

    with OnnxRuntimeRunner(onnx_path, providers="cpu") as runner:
        return runner.infer(batch)["labels"]
