"""The official Cityscapes formats and scores: label-id PNGs, iIoU, category IoU, id checks.

Definitions follow the Cityscapes benchmark's pixel-level evaluation (cityscapesscripts'
evalPixelLevelSemanticLabeling), restated for a network that predicts the 19 train ids:

* label ids: the benchmark takes predictions as `*_labelIds.png`, uint8 label ids (0..33); train
  id t is written as the id it came from (`CITYSCAPES_ID_TO_TRAINID` inverted: 0 -> 7 road ...).
* IoU per class = TP / (TP + FP + FN) over the split; pixels whose ground truth is an id ignored
  in evaluation count nowhere. Since predictions are only ever the 19 evaluated ids, this is the
  confusion matrix over train ids that `metrics.ConfusionMatrix` accumulates.
* category IoU: the same with classes merged into their 7 evaluated categories (flat,
  construction, object, nature, sky, human, vehicle).
* iIoU (instance-level IoU) for the 8 classes with instances (person ... bicycle): every
  ground-truth instance in `*_gtFine_instanceIds.png` (value = label id * 1000 + n, values above
  1000) weighs its TP and FN pixels by (the class's average instance size over the training set) /
  (the instance's size), so that small objects count as much as large ones; FP stays the pixel
  count. iIoU = TPw / (TPw + FP + FNw). Category iIoU for human and vehicle weighs each instance
  with its class's average size as well. Averages are over the classes (categories) that have a
  score.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..datasets import CITYSCAPES_ID_TO_TRAINID, get_dataset
from ..errors import InputError

#: the largest Cityscapes label id (ids 0..33 exist; license plate's -1 is never drawn in PNGs)
MAX_LABEL_ID = 33
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
#: the evaluated categories and the train ids in each
CATEGORIES = {"flat": (0, 1), "construction": (2, 3, 4), "object": (5, 6, 7), "nature": (8, 9),
              "sky": (10,), "human": (11, 12), "vehicle": (13, 14, 15, 16, 17, 18)}
#: average instance size in pixels over the training set of each class with instances, by train
#: id (the benchmark's constants; they weight iIoU)
AVERAGE_INSTANCE_SIZE = {11: 3462.4756337644, 12: 3930.4788056518, 13: 12794.0202738185,
                         14: 27855.1264367816, 15: 35732.1511111111, 16: 67583.7075812274,
                         17: 6298.7200839748, 18: 4672.3249222261}
INSTANCE_CATEGORIES = ("human", "vehicle")
_CLASSES = len(CITYSCAPES_ID_TO_TRAINID)

TRAINID_TO_ID = np.zeros(256, dtype=np.uint8)  # anything but 0..18 -> 0 ("unlabeled")
for _label_id, _train_id in CITYSCAPES_ID_TO_TRAINID.items():
    TRAINID_TO_ID[_train_id] = _label_id
_ID_TO_TRAINID = np.full(MAX_LABEL_ID + 1, 255, dtype=np.int64)
for _label_id, _train_id in CITYSCAPES_ID_TO_TRAINID.items():
    _ID_TO_TRAINID[_label_id] = _train_id
_CATEGORY_OF = np.full(256, -1, dtype=np.int64)
for _index, _ids in enumerate(CATEGORIES.values()):
    _CATEGORY_OF[list(_ids)] = _index


def is_cityscapes_model(model: Dict[str, Any]) -> bool:
    """True when a model record's classes are the 19 Cityscapes train-id classes, in order."""
    names = [str(n).lower() for n in (model or {}).get("class_names") or []]
    return names == get_dataset("cityscapes").class_names


def check_cityscapes_model(model: Dict[str, Any], what: str) -> None:
    """InputError unless the model predicts Cityscapes' classes (`what` names the feature)."""
    if not is_cityscapes_model(model):
        raise InputError(
            f"{what} needs a model of the 19 Cityscapes classes, but this one predicts "
            f"{model.get('num_classes', '?')} classes of dataset {model.get('dataset', '?')!r}; "
            f"leave {what} out (or pass --dataset cityscapes if it is a Cityscapes model)")


def train_ids_to_label_ids(labels: np.ndarray) -> np.ndarray:
    """H x W train ids (0..18) -> uint8 Cityscapes label ids, what the benchmark server takes."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= _CLASSES):
        raise InputError(f"label map holds values outside the Cityscapes train ids 0..18 "
                         f"({int(labels.min())}..{int(labels.max())})")
    return TRAINID_TO_ID[labels.astype(np.int64)]


def instance_path(label_path: str) -> Optional[str]:
    """The `*_gtFine_instanceIds.png` beside a `*_gtFine_labelIds.png`, or None if absent."""
    stem = label_path[:-len("_gtFine_labelIds.png")] if label_path.endswith(
        "_gtFine_labelIds.png") else None
    if stem is None or not os.path.isfile(stem + INSTANCE_SUFFIX):
        return None
    return stem + INSTANCE_SUFFIX


def unknown_ids(raw: np.ndarray) -> Dict[int, int]:
    """{value: pixels} of ground-truth values that are no Cityscapes label id (not 0..33)."""
    raw = np.asarray(raw)
    bad = raw[(raw < 0) | (raw > MAX_LABEL_ID)]
    values, counts = np.unique(bad, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


class InstanceStats:
    """Weighted TP/FN per class with instances and per instance category, over a split."""

    def __init__(self) -> None:
        self.tp = np.zeros(_CLASSES)
        self.fn = np.zeros(_CLASSES)
        self.category_tp = np.zeros(len(CATEGORIES))
        self.category_fn = np.zeros(len(CATEGORIES))

    def update(self, pred: np.ndarray, instances: np.ndarray) -> None:
        """Add one image: `pred` train ids and the ground-truth instance ids, same H x W."""
        inside = instances > 1000
        ids = instances[inside].astype(np.int64)
        if not ids.size:
            return
        unique, which = np.unique(ids, return_inverse=True)
        label_ids = unique // 1000
        train = np.where(label_ids <= MAX_LABEL_ID,
                         _ID_TO_TRAINID[np.minimum(label_ids, MAX_LABEL_ID)], 255)
        counted = np.isin(train, list(AVERAGE_INSTANCE_SIZE))  # caravan, trailer: not evaluated
        predicted = np.asarray(pred)[inside].astype(np.int64)
        sizes = np.bincount(which).astype(np.float64)
        hits = np.bincount(which, weights=predicted == train[which])
        category = _CATEGORY_OF[np.minimum(train, 255)]
        category_hits = np.bincount(which, weights=_CATEGORY_OF[predicted] == category[which])
        for k in np.flatnonzero(counted):
            weight = AVERAGE_INSTANCE_SIZE[int(train[k])] / sizes[k]
            self.tp[train[k]] += hits[k] * weight
            self.fn[train[k]] += (sizes[k] - hits[k]) * weight
            self.category_tp[category[k]] += category_hits[k] * weight
            self.category_fn[category[k]] += (sizes[k] - category_hits[k]) * weight


def _ratio(tp: float, fp: float, fn: float) -> Optional[float]:
    denominator = tp + fp + fn
    return float(tp / denominator) if denominator > 0 else None


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def official_scores(matrix: np.ndarray, stats: Optional[InstanceStats]) -> Dict[str, Any]:
    """Category IoU (and, with instance stats, iIoU per class and per category) from the 19 x 19
    train-id confusion matrix of a split (rows ground truth, columns predictions)."""
    m = np.asarray(matrix, dtype=np.float64)
    fp = m.sum(0) - np.diag(m)
    categories = {}
    for index, (name, ids) in enumerate(CATEGORIES.items()):
        ids = list(ids)
        others = [i for i in range(_CLASSES) if i not in ids]
        tp = m[np.ix_(ids, ids)].sum()
        cat_fp = m[np.ix_(others, ids)].sum()
        entry = {"iou": _ratio(tp, cat_fp, m[ids, :].sum() - tp), "iiou": None}
        if stats is not None and name in INSTANCE_CATEGORIES:
            entry["iiou"] = _ratio(stats.category_tp[index], cat_fp, stats.category_fn[index])
        categories[name] = entry
    report: Dict[str, Any] = {
        "category": categories,
        "category_miou": _mean([c["iou"] for c in categories.values()]),
        "iiou": None, "per_class_iiou": None, "category_iiou": None,
    }
    if stats is not None:
        per_class = {c: _ratio(stats.tp[c], fp[c], stats.fn[c]) for c in AVERAGE_INSTANCE_SIZE}
        report["per_class_iiou"] = {str(c): v for c, v in per_class.items()}
        report["iiou"] = _mean(list(per_class.values()))
        report["category_iiou"] = _mean([categories[c]["iiou"] for c in INSTANCE_CATEGORIES])
    return report


def format_rows(results: List[Dict[str, Any]], class_names: Sequence[str],
                per_class: bool = True) -> List[List[str]]:
    """Rows (name, value per backend) for the official extras of each result's "cityscapes"."""
    extras = [r.get("cityscapes") or {} for r in results]

    def pct(value):
        return "-" if value is None else f"{100 * value:.2f}"

    rows: List[List[str]] = []
    with_iiou = any(e.get("iiou") is not None for e in extras)
    if per_class and with_iiou:
        for c in AVERAGE_INSTANCE_SIZE:
            rows.append([f"iIoU {class_names[c]}"] + [
                pct((e.get("per_class_iiou") or {}).get(str(c))) for e in extras])
    if with_iiou:
        rows.append(["iIoU (class average)"] + [pct(e.get("iiou")) for e in extras])
    if per_class:
        for name in CATEGORIES:
            rows.append([f"category {name}"] + [
                pct(((e.get("category") or {}).get(name) or {}).get("iou")) for e in extras])
    rows.append(["category mIoU"] + [pct(e.get("category_miou")) for e in extras])
    if with_iiou:
        rows.append(["category iIoU"] + [pct(e.get("category_iiou")) for e in extras])
    return rows
