"""Segmentation metrics from one confusion matrix: per-class IoU, mIoU, pixel accuracy.

The matrix is accumulated over a whole split (not averaged per image), which is how Cityscapes and
CoinCheung/BiSeNet report mIoU. Rows are ground truth, columns predictions; pixels whose ground
truth is the ignore index are not counted. The mIoU averages the classes that occur (a class
that is neither in the ground truth nor in the predictions has no IoU and is left out).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..errors import InputError
from ..runtime.images import resize_labels_nearest  # noqa: F401  (shared; re-exported)


class ConfusionMatrix:
    """num_classes x num_classes counts, rows = ground truth, columns = prediction."""

    def __init__(self, num_classes: int, ignore_index: Optional[int] = 255):
        if int(num_classes) < 1:
            raise InputError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray, where: str = "") -> None:
        """Add one prediction / ground-truth pair (same shape, integer labels)."""
        pred = np.asarray(pred)
        target = np.asarray(target)
        label = f" ({where})" if where else ""
        if pred.shape != target.shape:
            raise InputError(f"prediction shape {pred.shape} differs from the label shape "
                             f"{target.shape}{label}")
        pred = pred.astype(np.int64, copy=False).ravel()
        target = target.astype(np.int64, copy=False).ravel()
        keep = np.ones(target.shape, dtype=bool) if self.ignore_index is None \
            else target != self.ignore_index
        t = target[keep]
        p = pred[keep]
        if t.size and (t.min() < 0 or t.max() >= self.num_classes):
            bad = np.unique(t[(t < 0) | (t >= self.num_classes)])[:10].tolist()
            raise InputError(
                f"the ground truth holds values {bad} outside 0..{self.num_classes - 1} and is "
                f"not the ignore index {self.ignore_index}{label}: the labels must hold train ids "
                f"(e.g. Cityscapes label ids must be mapped to the 19 train ids)")
        if p.size and (p.min() < 0 or p.max() >= self.num_classes):
            bad = np.unique(p[(p < 0) | (p >= self.num_classes)])[:10].tolist()
            raise InputError(f"the prediction holds class ids {bad} outside "
                             f"0..{self.num_classes - 1}{label}: the model's number of classes "
                             f"does not match the dataset, or the backend returned garbage")
        counts = np.bincount(t * self.num_classes + p, minlength=self.num_classes ** 2)
        self.matrix += counts.reshape(self.num_classes, self.num_classes)

    def merge(self, other: "ConfusionMatrix") -> None:
        if other.num_classes != self.num_classes:
            raise InputError("cannot merge confusion matrices of different class counts")
        self.matrix += other.matrix

    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    def iou(self) -> np.ndarray:
        """Per-class IoU = TP / (TP + FP + FN); NaN for a class absent from both sides."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - np.diag(self.matrix)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        """Mean IoU over the classes present (NaN when nothing was counted)."""
        iou = self.iou()
        present = ~np.isnan(iou)
        return float(iou[present].mean()) if present.any() else float("nan")

    def pixel_accuracy(self) -> float:
        total = self.total
        return float(np.trace(self.matrix)) / total if total else float("nan")

    def class_accuracy(self) -> np.ndarray:
        """Per-class recall TP / ground-truth pixels; NaN where the class has no ground truth."""
        gt = self.matrix.sum(1).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gt > 0, np.diag(self.matrix) / np.maximum(gt, 1), np.nan)

    def summary(self, class_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        """JSON-able dict: mIoU, pixel accuracy and per-class IoU (None for absent classes)."""
        names = list(class_names) if class_names is not None else \
            [str(i) for i in range(self.num_classes)]
        if len(names) != self.num_classes:
            names = [str(i) for i in range(self.num_classes)]
        iou = self.iou()
        gt_pixels = self.matrix.sum(1)
        return {
            "miou": _num(self.miou()),
            "pixel_accuracy": _num(self.pixel_accuracy()),
            "classes_present": int((~np.isnan(iou)).sum()),
            "pixels": self.total,
            "per_class": [
                {"id": i, "name": names[i], "iou": _num(iou[i]), "gt_pixels": int(gt_pixels[i])}
                for i in range(self.num_classes)],
        }


def _num(x: float) -> Optional[float]:
    x = float(x)
    return None if np.isnan(x) else x


def label_iou(reference: np.ndarray, other: np.ndarray, num_classes: int) -> ConfusionMatrix:
    """Confusion matrix of one label map against another (reference as ground truth, no ignore)."""
    cm = ConfusionMatrix(num_classes, ignore_index=None)
    cm.update(other, reference)
    return cm


def resize_logits_argmax(logits: np.ndarray, width: int, height: int) -> np.ndarray:
    """C x H x W logits -> bilinear resize (align_corners=False) to width x height -> argmax.

    Uses torch's interpolate (the sampling the network's own upsampling uses); torch is a
    dependency of the package, imported here only when a resize is needed.
    """
    c, in_h, in_w = logits.shape
    if (in_w, in_h) == (width, height):
        return np.argmax(logits, axis=0).astype(np.int32)
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))[None]
        up = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)
        return up[0].argmax(0).numpy().astype(np.int32)


def per_class_table(summaries: List[Dict[str, Any]]) -> List[List[str]]:
    """Rows (class name, IoU per summary) for a side-by-side text table."""
    rows = []
    for i, entry in enumerate(summaries[0]["per_class"]):
        row = [entry["name"]]
        for s in summaries:
            v = s["per_class"][i]["iou"]
            row.append("-" if v is None else f"{100 * v:.2f}")
        rows.append(row)
    return rows
