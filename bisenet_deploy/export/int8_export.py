"""`--precision int8`: calibrate, quantize, measure and (optionally) scan, for export_onnx.

The FP32 graph has been checked and proven against PyTorch before this runs; this step turns it
into the Q/DQ graph (quantize.py), measures it against the FP32 graph on held-out images
(int8_gate.py) and returns what the metadata record says about it (`export.int8`):

    {"scheme": "qdq-int8-symmetric", "quantizer": "onnxruntime.quantization X.Y",
     "calibration": {"method": "percentile", "images": 32},
     "agreement": {"percent": 99.7, "worst_image_percent": 99.1, "images": 8,
                   "held_out": "synthetic street scenes"},
     "min_agreement": 99.0, "keep_float": ["head"], "keep_float_dtype": "fp16",
     "qdq_pairs": 120,
     ["eval": {"images": N, "data": DIR, "fp32": {"miou", "per_class_iou"}, "int8": {...}}]}
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..errors import InputError
from .int8_gate import (DEFAULT_MIN_AGREEMENT, HELD_OUT_MAX, Agreement, agreement,
                        miou_side_by_side, run_labels, session, synthetic_held_out)
from .quantize import (CALIBRATION_METHODS, DEFAULT_CALIB_COUNT, DEFAULT_METHOD,
                       QuantizeSettings, count_qdq, quantize_graph)

log = logging.getLogger(__name__)

SCHEME = "qdq-int8-symmetric"


@dataclass
class Int8Options:
    """The `--precision int8` options of `bisenet-export onnx`."""

    calib_images: Optional[str] = None
    calib_count: int = DEFAULT_CALIB_COUNT
    method: str = DEFAULT_METHOD
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    keep_float: Tuple[str, ...] = ()
    eval_data: Optional[str] = None
    sensitivity_scan: bool = False

    def validate(self) -> None:
        """Refuse bad INT8 options before the model is even built."""
        from ..portable.building.calibrator import list_calibration_images

        if not self.calib_images:
            raise InputError("--precision int8 needs calibration images: --calib-images DIR "
                             "(a few dozen frames like the deployment's, .png/.jpg/.npy)")
        paths = list_calibration_images(self.calib_images)  # InputError: no folder, no images
        if int(self.calib_count) < 1:
            raise InputError(f"--calib-count must be >= 1, got {self.calib_count}")
        from ..portable.building.calibrator import load_image

        for path in paths[:int(self.calib_count) + HELD_OUT_MAX]:
            load_image(path)  # an unreadable image fails now, not after the export
        if not 0.0 <= float(self.min_agreement) <= 100.0:
            raise InputError(f"--min-agreement is a percentage of pixels, 0..100, got "
                             f"{self.min_agreement}")
        if self.method not in CALIBRATION_METHODS:
            raise InputError(f"--calib-method must be one of {', '.join(CALIBRATION_METHODS)}")
        if self.eval_data is not None:
            from ..evaluation.datasets_io import find_samples

            find_samples(self.eval_data, layout="cityscapes", option="--eval-data")


@dataclass
class Int8Result:
    model: Any                       # the Q/DQ onnx.ModelProto
    info: Dict[str, Any]             # the record's export.int8
    agreement: Agreement
    scan_rows: Optional[List[Dict[str, Any]]] = None
    scan_paths: List[str] = field(default_factory=list)


def split_images(options: Int8Options, record: Dict[str, Any]):
    """(calibration images, held-out images, where the held-out ones come from)."""
    from ..portable.building.calibrator import list_calibration_images, load_image

    paths = list_calibration_images(options.calib_images)
    count = int(options.calib_count)
    calib = paths[:count]
    if len(paths) < count:
        log.info("INT8: %d calibration image(s) in %s (asked for %d): using all",
                 len(paths), options.calib_images, count)
    rest = paths[count:count + HELD_OUT_MAX]
    calib_images = [load_image(p) for p in calib]
    if rest:
        return calib_images, [load_image(p) for p in rest], "calibration folder, unused images"
    return calib_images, synthetic_held_out(record), "synthetic street scenes"


def quantizer_version() -> str:
    import onnxruntime

    return f"onnxruntime.quantization {onnxruntime.__version__}"


def make_int8(fp32_model: Any, record: Dict[str, Any], options: Int8Options,
              scan_path: Optional[str] = None) -> Int8Result:
    """Quantize `fp32_model` and measure it; the gate itself is `int8_gate.check_agreement`
    (the caller applies it after saving what should survive a failure: the scan table)."""
    from .targets import get_target

    calib, held_out, source = split_images(options, record)
    # a strongly typed target (TensorRT 11) runs a layer in FP16 only where the graph says so
    fp16 = get_target(record["export"]["target"]).fp16_graph
    settings = QuantizeSettings(method=options.method, keep_float=tuple(options.keep_float),
                                keep_float_fp16=fp16)
    qdq = quantize_graph(fp32_model, record, calib, settings)
    reference = run_labels(session(fp32_model), held_out, record)
    result = agreement(reference, run_labels(session(qdq), held_out, record), source)
    log.info("INT8 agreement: %s", result.summary())
    info: Dict[str, Any] = {
        "scheme": SCHEME, "quantizer": quantizer_version(),
        "calibration": {"method": options.method, "images": len(calib)},
        "agreement": result.to_dict(), "min_agreement": float(options.min_agreement),
        "keep_float": list(options.keep_float), "qdq_pairs": count_qdq(qdq)}
    if options.keep_float:
        info["keep_float_dtype"] = "fp16" if fp16 else "fp32"
    out = Int8Result(qdq, info, result)
    if options.sensitivity_scan:
        from .int8_scan import format_scan, scan

        out.scan_rows = scan(fp32_model, qdq, record, held_out, reference)
        if scan_path:
            out.scan_paths = save_scan(scan_path, out.scan_rows, format_scan(out.scan_rows))
    if options.eval_data:
        info["eval"] = miou_side_by_side(fp32_model, qdq, record, options.eval_data)
    return out


#: how a refusal to replace the scan's report names the way out (its path follows -o)
SCAN_OPTION = "-o/--output (the sensitivity scan is saved beside the ONNX as STEM.int8-scan.json)"


def scan_report_path(onnx_path: str) -> str:
    """Where the sensitivity scan is saved: beside the ONNX, `<stem>.int8-scan.json`."""
    return os.path.splitext(onnx_path)[0] + ".int8-scan.json"


def save_scan(path: str, rows: List[Dict[str, Any]], text: str) -> List[str]:
    """The scan (rows, suggestion and the printed table) as a JSON report, atomically; only a
    report of ours is replaced."""
    from .. import __version__
    from ..portable.files.fileio import write_bytes_atomic
    from ..portable.files.ownership import check_replaceable
    from .int8_scan import suggest

    check_replaceable(path, "json", option=SCAN_OPTION)
    data = {"format": "bisenet-int8-scan/1", "toolkit_version": __version__, "rows": rows,
            "suggested_keep_float": suggest(rows), "table": text}
    write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode())
    return [path]


def quantize_step(steps: Any, fp32_model: Any, record: Dict[str, Any],
                  options: Optional[Int8Options], onnx_path: str, rules: Any):
    """export_onnx's INT8 steps: quantize + measure [+ scan, saved even when the gate fails],
    the gate, then onnx.checker, the target's rules and TensorRT's parser on the Q/DQ graph.
    Returns (Q/DQ model, Int8Result, parser verdict)."""
    from .check import tensorrt_parser_check
    from .int8_gate import check_agreement
    from .check import check_graph, target_check

    options = options or Int8Options()
    scan_path = scan_report_path(onnx_path) if options.sensitivity_scan else None
    result = steps.run("int8 quantize + agreement", make_int8, fp32_model, record, options,
                       scan_path)
    try:
        check_agreement(result.agreement, float(options.min_agreement))
    except Exception as exc:
        if result.scan_paths:
            exc.args = (f"{exc.args[0]} The sensitivity scan is in {result.scan_paths[0]}.",)
        raise
    record["export"]["int8"] = result.info
    steps.run("onnx.checker (int8)", check_graph, result.model)
    steps.run(f"check {rules.name} (int8)", target_check, result.model, rules)
    parser = steps.run("TensorRT parser (int8)", tensorrt_parser_check, result.model)
    return result.model, result, parser
