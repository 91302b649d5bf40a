"""Parity: the exported ONNX graph on onnxruntime CPU against PyTorch on the same image.

The reference is `DeployModule(model, record, fold_normalization=False)` in FP32: the unmodified
network with every preprocessing step written out the plain PyTorch way, so the check also proves
the folding of normalization into the first convolutions. The input is the seeded realistic
synthetic street scene (`bisenet_deploy.synthetic`), prepared for the graph input exactly as the
runtime does it (`portable.preprocess.prepare_input`). A labels-only graph is compared on its
logits too: the logits tensor that feeds its ArgMax is exposed as an extra output of an in-memory
copy of the graph.

Numbers (all over the whole batch):
* logits max abs error: max |onnx - torch|
* logits relative error: max |onnx - torch| / max |torch|  (the largest error relative to the
  largest reference magnitude: one number, stable where individual logits are near zero)
* labels identical: percentage of pixels whose class id is the same.

Tolerances are data (`TOLERANCES`): FP32 graphs must give >= 99.99 % identical labels and a
relative error <= 1e-4. FP16 graphs (trt11 --precision fp16): >= 99.0 % and <= 2e-2. FP16 has an
11-bit mantissa (unit roundoff 4.9e-4); through ~40 layers the logits carry errors of a few
1e-3 of their range, and a pixel's label flips only where its two best classes are closer than
that, which on a trained network is a boundary pixel; 1 % of pixels / 2 % of the logit range
leaves room for that while still failing an FP16 graph that overflows (inf/NaN) or is wrong.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np

from ..errors import MissingDependencyError, ParityError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tolerance:
    min_labels_identical_pct: float
    max_logits_rel_error: float


TOLERANCES: Dict[str, Tolerance] = {
    "fp32": Tolerance(min_labels_identical_pct=99.99, max_logits_rel_error=1e-4),
    "fp16": Tolerance(min_labels_identical_pct=99.0, max_logits_rel_error=2e-2),
}


@dataclass
class ParityReport:
    graph_precision: str
    batch: int
    input_shape: tuple
    logits_max_abs_error: float
    logits_rel_error: float
    logits_max_abs_reference: float
    labels_identical_pct: float
    tolerance: Tolerance
    passed: bool
    reference_classes: int = 0  # distinct classes in the reference labels (a degenerate map is weak proof)

    def summary(self) -> str:
        return (f"labels identical {self.labels_identical_pct:.4f}% (>= "
                f"{self.tolerance.min_labels_identical_pct}%), logits max abs error "
                f"{self.logits_max_abs_error:.3g}, relative error {self.logits_rel_error:.3g} "
                f"(<= {self.tolerance.max_logits_rel_error:g}) [{self.graph_precision}, "
                f"batch {self.batch}, {self.reference_classes} classes in the reference]")

    def to_dict(self) -> Dict[str, Any]:
        return {
            "graph_precision": self.graph_precision, "batch": self.batch,
            "input_shape": list(self.input_shape),
            "logits_max_abs_error": self.logits_max_abs_error,
            "logits_rel_error": self.logits_rel_error,
            "logits_max_abs_reference": self.logits_max_abs_reference,
            "labels_identical_pct": self.labels_identical_pct,
            "reference_classes": self.reference_classes,
            "tolerance": {"min_labels_identical_pct": self.tolerance.min_labels_identical_pct,
                          "max_logits_rel_error": self.tolerance.max_logits_rel_error},
            "passed": self.passed,
        }


def parity_batch_size(batch: Dict[str, Any]) -> int:
    """The batch parity runs: the static size, or (dynamic) 2 when allowed so N > 1 is exercised."""
    if batch.get("dynamic"):
        return max(int(batch["min"]), min(int(batch["max"]), 2))
    return int(batch["size"])


def make_parity_input(record: Dict[str, Any], batch: int, seed: int = 0) -> np.ndarray:
    """The graph input for `batch` seeded synthetic street scenes (seeds seed, seed+1, ...)."""
    from ..portable.preprocess import prepare_input
    from ..synthetic import synthetic_image

    width, height = (int(v) for v in record["export"]["input_size"])
    images = [synthetic_image(width, height, seed + i) for i in range(batch)]
    return prepare_input(images, record)


def _logits_source(model: Any) -> Optional[str]:
    """The name of the logits tensor that feeds the labels' ArgMax."""
    producers = {out: node for node in model.graph.node for out in node.output}
    cast = producers.get("labels")
    argmax = producers.get(cast.input[0]) if cast is not None else None
    if argmax is None or argmax.op_type != "ArgMax":
        return None
    return argmax.input[0]


def run_onnxruntime(onnx_model: Any, image: np.ndarray) -> Dict[str, np.ndarray]:
    """Run an onnx.ModelProto on onnxruntime CPU; returns labels and logits when obtainable."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError("the parity check needs onnxruntime: pip install onnxruntime") \
            from None
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(onnx_model)
    outputs = [o.name for o in model.graph.output]
    if "logits" not in outputs:
        source = _logits_source(model)
        if source is not None:
            model.graph.output.add().CopyFrom(onnx.helper.make_empty_tensor_value_info(source))
            outputs.append(source)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    values = session.run(outputs, {input_name: image})
    result = {}
    for name, value in zip(outputs, values):
        result["logits" if name not in ("labels", "logits") else name] = value
    return result


def check_parity(torch_model: Any, record: Dict[str, Any], onnx_model: Any, *,
                 seed: int = 0, raise_on_failure: bool = True) -> ParityReport:
    """Compare `onnx_model` (onnx.ModelProto) against the PyTorch reference for `record`."""
    import torch

    from .deploy_module import DeployModule
    from .targets import get_target

    export = record["export"]
    graph_precision = get_target(export["target"]).graph_precision(export["precision"])
    tolerance = TOLERANCES[graph_precision]
    batch = parity_batch_size(export["batch"])
    image = make_parity_input(record, batch, seed)

    # the reference is always the FP32 network with explicit preprocessing
    fp32_record = dict(record, export=dict(export, precision="fp32"))
    reference = DeployModule(torch_model, fp32_record, fold_normalization=False,
                             output_names=("labels", "logits"))
    with torch.no_grad():
        ref_labels, ref_logits = (t.numpy() for t in reference(torch.from_numpy(image)))
    got = run_onnxruntime(onnx_model, image)

    ref_max = float(np.max(np.abs(ref_logits)))
    if "logits" in got:
        # float32 differences: exact enough for a max error, half the memory of float64 at
        # big batches (8 x 19 x 1024 x 2048 logits are 1.3 GB per copy)
        finite = bool(np.all(np.isfinite(got["logits"])))
        max_abs = float(np.max(np.abs(got["logits"].astype(np.float32) - ref_logits))) \
            if finite else float("inf")
        rel = max_abs / ref_max if ref_max > 0 else max_abs
    else:  # should not happen for graphs we export; labels are still compared
        max_abs, rel = float("nan"), float("nan")
    labels = got.get("labels")
    if labels is None:  # a logits-only graph: the labels its logits imply
        labels = np.argmax(got["logits"], axis=1)
    identical = float(np.mean(labels.astype(np.int64) == ref_labels.astype(np.int64)) * 100.0)
    passed = identical >= tolerance.min_labels_identical_pct and \
        (not np.isnan(rel) and rel <= tolerance.max_logits_rel_error)
    report = ParityReport(graph_precision, batch, tuple(image.shape), max_abs, rel, ref_max,
                          identical, tolerance, passed,
                          reference_classes=int(np.unique(ref_labels).size))
    log.info("parity vs PyTorch: %s", report.summary())
    if not passed and raise_on_failure:
        raise ParityError(
            f"the ONNX graph does not reproduce PyTorch on onnxruntime CPU: {report.summary()}. "
            f"This is a bug in the export for this model/options; please report it with the "
            f"command line (the file was not written)")
    return report
