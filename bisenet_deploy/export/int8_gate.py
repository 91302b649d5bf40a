"""The INT8 accuracy gate: how often the Q/DQ graph gives the FP32 graph's label, on images the
calibration never saw.

Users of INT8 segmentation report "masks much worse" or "no mask at all" only after deploying.
Here the export measures it first: both graphs run on onnxruntime CPU on held-out images, and the
share of pixels with the same label (overall, and the worst image) is reported and kept in the
metadata record. Below the threshold the export fails (exit 3) and writes nothing.

Held-out images: the calibration folder's images after the first `--calib-count` ones (at most
HELD_OUT_MAX), or, when the folder has no spare images, seeded synthetic street scenes
(synthetic.py) at the graph's input size, whose seeds no calibration set uses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..errors import ParityError

log = logging.getLogger(__name__)

#: percent of pixels with the FP32 graph's label; a trained BiSeNet V2 that quantizes well
#: stays above it (docs/int8.md), a broken calibration (wrong preprocessing) is far below
DEFAULT_MIN_AGREEMENT = 99.0
HELD_OUT_MAX = 16
SYNTHETIC_HELD_OUT = 8
#: synthetic held-out scenes use seeds from here on (no calibration set uses them)
SYNTHETIC_SEED = 910_000


@dataclass
class Agreement:
    """Label agreement of a candidate graph with the FP32 graph, in percent."""

    mean: float
    worst: float
    images: int
    source: str  # "calibration folder" | "synthetic street scenes"

    def to_dict(self) -> Dict[str, Any]:
        return {"percent": round(self.mean, 4), "worst_image_percent": round(self.worst, 4),
                "images": self.images, "held_out": self.source}

    def summary(self) -> str:
        return (f"{self.mean:.2f}% of pixels keep the FP32 label (worst image {self.worst:.2f}%) "
                f"on {self.images} held-out image(s) ({self.source})")


def synthetic_held_out(record: Dict[str, Any], count: int = SYNTHETIC_HELD_OUT
                       ) -> List[np.ndarray]:
    from ..synthetic import synthetic_image

    width, height = (int(v) for v in record["export"]["input_size"])
    return [synthetic_image(width, height, seed=SYNTHETIC_SEED + i) for i in range(count)]


def session(model: Any):
    """An onnxruntime CPU session of an in-memory onnx.ModelProto."""
    from ..ort_runner import import_onnxruntime

    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def run_labels(sess: Any, images: Sequence[np.ndarray], record: Dict[str, Any]
               ) -> List[np.ndarray]:
    """Per-image labels (H x W) of a graph session: its labels output, else the argmax of its
    logits."""
    from .quantize import batches

    names = [o.name for o in sess.get_outputs()]
    input_name = record["export"]["input_name"]
    labels: List[np.ndarray] = []
    for batch in batches(images, record):
        outputs = dict(zip(names, sess.run(None, {input_name: batch})))
        got = outputs["labels"] if "labels" in outputs else np.argmax(outputs["logits"], axis=1)
        labels.extend(np.asarray(got))
    return labels[:len(images)]


def agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], source: str
              ) -> Agreement:
    per_image = [100.0 * float(np.mean(a == b)) for a, b in zip(reference, candidate)]
    return Agreement(float(np.mean(per_image)), float(np.min(per_image)), len(per_image), source)


def check_agreement(result: Agreement, min_agreement: float) -> None:
    """Raise ParityError (exit 3) when the INT8 graph agrees less than `min_agreement` percent."""
    if result.mean < min_agreement:
        raise ParityError(
            f"INT8 gate failed: {result.summary()}, below --min-agreement {min_agreement:g}; "
            f"nothing was written. Keep the sensitive layers in float (--sensitivity-scan ranks them, "
            f"then --keep-float LAYER...), calibrate on more images like the deployment's "
            f"(--calib-count), or lower --min-agreement knowingly")


def miou_side_by_side(fp32_model: Any, int8_model: Any, record: Dict[str, Any],
                      eval_data: str, limit: Optional[int] = None) -> Dict[str, Any]:
    """mIoU and per-class IoU of both graphs on a Cityscapes-layout folder (evaluation/ code)."""
    from ..evaluation.datasets_io import find_samples, read_label
    from ..evaluation.metrics import ConfusionMatrix
    from ..portable.building.calibrator import load_image

    samples = find_samples(eval_data, layout="cityscapes", option="--eval-data")
    if limit:
        samples = samples[:limit]
    num_classes = int(record["model"]["num_classes"])
    ignore = int(record["model"]["ignore_index"])
    sessions = {"fp32": session(fp32_model), "int8": session(int8_model)}
    matrices = {k: ConfusionMatrix(num_classes, ignore_index=ignore) for k in sessions}
    from ..runtime.images import resize_labels_nearest

    for sample in samples:
        image = load_image(sample.image_path)
        truth = read_label(sample, "cityscapes")
        for key, sess in sessions.items():
            labels = run_labels(sess, [image], record)[0]
            if labels.shape != truth.shape:
                labels = resize_labels_nearest(labels, truth.shape[1], truth.shape[0])
            matrices[key].update(labels, truth, where=sample.name)
    names = record["model"]["class_names"]
    out: Dict[str, Any] = {"images": len(samples), "data": eval_data}
    for key, matrix in matrices.items():
        iou = matrix.iou()
        out[key] = {"miou": _pct(matrix.miou()),
                    "per_class_iou": {names[i]: _pct(v) for i, v in enumerate(iou)}}
    return out


def _pct(value: Any) -> Optional[float]:
    if value is None or not np.isfinite(value):
        return None
    return round(100.0 * float(value), 3)
