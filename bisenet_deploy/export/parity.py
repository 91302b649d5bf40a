"""Parity: the exported ONNX graph on onnxruntime CPU against PyTorch on the same image.

The reference is `DeployModule(model, record, fold_normalization=False)` in FP32: the unmodified
network with every preprocessing step written out the plain PyTorch way, so the check also proves
the folding of normalization into the first convolutions. The input is the seeded realistic
synthetic street scene (`bisenet_deploy.synthetic`), prepared for the graph input exactly as the
runtime does it (`portable.running.preprocess.prepare_input`). The graph runs through the toolkit's
`OnnxRuntimeRunner` (ort_runner.py, below export/ and runtime/) on the CPU, given the serialized model. A labels-only graph is compared on its
logits too: the logits tensor that feeds its ArgMax is exposed as an extra output of an in-memory
copy of the graph.

Measured and judged by the comparison core (`bisenet_deploy.comparison`) that `bisenet-compare`
uses too, over the whole batch, with its "export" profile for the graph's precision:
* logits relative error: max |onnx - torch| / max |torch| (`measures.relative_error`), and no
  NaN/Inf;
* labels identical: the share of pixels whose class id is the same (reported in percent), and no
  label outside the class range.
FP32 graphs must give >= 99.99 % identical labels and a relative error <= 1e-4, FP16 graphs
(trt11 --precision fp16) >= 99.0 % and <= 2e-2; `comparison/profiles.py` says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from ..comparison import profiles
from ..comparison.measures import LabelAgreement, LogitsAgreement, verdict
from ..errors import ParityError

log = logging.getLogger(__name__)

#: graph precision -> the export profile's tolerance table
TOLERANCES: Dict[str, profiles.Table] = profiles.EXPORT_TOLERANCES


@dataclass
class ParityReport:
    graph_precision: str
    batch: int
    input_shape: tuple
    logits_max_abs_error: float  # inf where the graph gave NaN/Inf logits
    logits_rel_error: float
    logits_max_abs_reference: float
    labels_identical_pct: float
    tolerance: profiles.Table
    passed: bool
    reference_classes: int = 0  # distinct classes in the reference labels (a degenerate map is weak proof)
    #: the comparison core's report: {output: {"stats", "checks"}} and the failed checks' lines
    outputs: Dict[str, Any] = field(default_factory=dict)
    failures: List[str] = field(default_factory=list)

    @property
    def min_labels_identical_pct(self) -> float:
        return round(100.0 * self.tolerance["labels"]["min_identical"], 10)  # 99.99, not ...01

    @property
    def max_logits_rel_error(self) -> float:
        return self.tolerance["logits"]["max_rel"]

    def summary(self) -> str:
        return (f"labels identical {self.labels_identical_pct:.4f}% (>= "
                f"{self.min_labels_identical_pct:g}%), logits max abs error "
                f"{self.logits_max_abs_error:.3g}, relative error {self.logits_rel_error:.3g} "
                f"(<= {self.max_logits_rel_error:g}) [{self.graph_precision}, "
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
            "tolerance": {"profile": "export",
                          "min_labels_identical_pct": self.min_labels_identical_pct,
                          "max_logits_rel_error": self.max_logits_rel_error},
            "checks": [c for o in self.outputs.values() for c in o["checks"]],
            "passed": self.passed,
        }


def parity_batch_size(batch: Dict[str, Any]) -> int:
    """The batch parity runs: the static size, or (dynamic) 2 when allowed so N > 1 is exercised."""
    if batch.get("dynamic"):
        return max(int(batch["min"]), min(int(batch["max"]), 2))
    return int(batch["size"])


def make_parity_input(record: Dict[str, Any], batch: int, seed: int = 0) -> np.ndarray:
    """The graph input for `batch` seeded synthetic street scenes (seeds seed, seed+1, ...)."""
    from ..portable.running.preprocess import prepare_input
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
    """Run an onnx.ModelProto on onnxruntime CPU (the toolkit's runner, given the serialized
    model); returns labels and logits when obtainable."""
    import onnx

    from ..ort_runner import OnnxRuntimeRunner

    model = onnx.ModelProto()
    model.CopyFrom(onnx_model)
    outputs = [o.name for o in model.graph.output]
    if "logits" not in outputs:
        source = _logits_source(model)
        if source is not None:
            model.graph.output.add().CopyFrom(onnx.helper.make_empty_tensor_value_info(source))
    with OnnxRuntimeRunner(model.SerializeToString(), providers="cpu") as runner:
        values = runner.infer(image)
    return {name if name in ("labels", "logits") else "logits": value
            for name, value in values.items()}


def compare_outputs(got: Dict[str, np.ndarray], ref_labels: np.ndarray, ref_logits: np.ndarray,
                    num_classes: int, limits: profiles.Table):
    """The comparison core's (outputs, failures) for one graph's outputs against the reference's.
    A graph whose logits cannot be had fails: labels alone do not prove the export."""
    if "logits" in got:
        measured = LogitsAgreement()
        measured.update(ref_logits, got["logits"])
        logits = measured.result()
    else:  # should not happen for graphs we export
        logits = {"max_abs": None, "max_rel": float("nan"), "nonfinite": 0}
    labels = got.get("labels")
    if labels is None:  # a logits-only graph: the labels its logits imply
        labels = np.argmax(got["logits"], axis=1)
    agreement = LabelAgreement(num_classes)
    agreement.update(ref_labels, labels)
    return verdict({"logits": logits, "labels": agreement.result()}, limits)


def check_parity(torch_model: Any, record: Dict[str, Any], onnx_model: Any, *,
                 seed: int = 0, raise_on_failure: bool = True) -> ParityReport:
    """Compare `onnx_model` (onnx.ModelProto) against the PyTorch reference for `record`."""
    import torch

    from .deploy_module import DeployModule
    from .targets import get_target

    export = record["export"]
    graph_precision = get_target(export["target"]).graph_precision(export["precision"])
    tolerance = profiles.resolve(graph_precision, profile="export")
    batch = parity_batch_size(export["batch"])
    image = make_parity_input(record, batch, seed)

    # the reference is always the FP32 network with explicit preprocessing
    fp32_record = dict(record, export=dict(export, precision="fp32"))
    reference = DeployModule(torch_model, fp32_record, fold_normalization=False,
                             output_names=("labels", "logits"))
    with torch.no_grad():
        ref_labels, ref_logits = (t.numpy() for t in reference(torch.from_numpy(image)))
    got = run_onnxruntime(onnx_model, image)

    outputs, failures = compare_outputs(got, ref_labels, ref_logits, ref_logits.shape[1],
                                        tolerance)
    logits, labels = outputs["logits"]["stats"], outputs["labels"]["stats"]
    broken = logits["nonfinite"] > 0  # NaN/Inf logits: the error is unbounded
    report = ParityReport(
        graph_precision, batch, tuple(image.shape),
        float("inf") if broken else _number(logits["max_abs"]),
        float("inf") if broken else _number(logits["max_rel"]),
        float(np.max(np.abs(ref_logits))), 100.0 * labels["identical"], tolerance,
        not failures, reference_classes=int(np.unique(ref_labels).size),
        outputs=outputs, failures=failures)
    log.debug("parity vs PyTorch: %s", report.summary())  # the commands print the result once
    if failures and raise_on_failure:
        raise ParityError(
            f"the ONNX graph does not reproduce PyTorch on onnxruntime CPU: {report.summary()}; "
            f"failed: {'; '.join(failures)}. This is a bug in the export for this model/options; "
            f"please report it with the command line (the file was not written)")
    return report


def _number(value: Optional[float]) -> float:
    return float("nan") if value is None else float(value)
