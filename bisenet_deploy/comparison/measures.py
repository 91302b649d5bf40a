"""How a model's outputs are measured against a reference: the one definition of each number that
export parity and `bisenet-compare` report, and the one shape of their verdict.

Statistics run over every element of every compared image (so nothing depends on batch order):

* relative error (`relative_error`): an error divided by the reference's magnitude over the same
  elements, not per element, so near-zero logits do not blow it up. ``max_rel`` is the largest
  absolute error over the largest reference magnitude, ``mean_rel`` the mean absolute error over
  the mean reference magnitude. NaN/Inf values are counted apart (``nonfinite``) and left out of
  the errors.
* labels identical (`LabelAgreement`): the share of pixels whose class id is the same on both
  sides (0..1; reports that speak in percent multiply by 100), plus labels outside the class
  range (``invalid``) and, when given a confusion matrix, the per-class IoU between the maps.

`verdict` judges these statistics by a tolerance profile (`profiles.py`) into the report shape
both users keep: ``{output: {"stats": ..., "checks": [...]}}`` and one failure line per failed
check (`failure_text`).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import profiles

#: elements converted to float64 at a time: exact differences without a float64 copy of a whole
#: batch (8 x 19 x 1024 x 2048 logits are 2.5 GB per float64 copy)
_CHUNK = 1 << 22


def relative_error(error: Optional[float], scale: Optional[float]) -> Optional[float]:
    """`error` relative to the reference magnitude `scale`: error / scale; 0 for no error at all
    and inf for an error against an all-zero reference; None when nothing was measured."""
    if error is None or scale is None:
        return None
    if scale > 0:
        return error / scale
    return 0.0 if error == 0 else math.inf


class LogitsAgreement:
    """Running absolute and relative errors and NaN/Inf counts between two logits tensors."""

    def __init__(self):
        self.max_abs = 0.0
        self.sum_abs = 0.0
        self.count = 0
        self.ref_max = 0.0
        self.ref_sum = 0.0
        self.nonfinite = 0
        self.ref_nonfinite = 0

    def update(self, ref: np.ndarray, out: np.ndarray) -> None:
        ref, out = np.asarray(ref).reshape(-1), np.asarray(out).reshape(-1)
        for start in range(0, ref.size, _CHUNK):
            self._update(ref[start:start + _CHUNK].astype(np.float64),
                         out[start:start + _CHUNK].astype(np.float64))

    def _update(self, ref: np.ndarray, out: np.ndarray) -> None:
        finite_out, finite_ref = np.isfinite(out), np.isfinite(ref)
        self.nonfinite += int((~finite_out).sum())
        self.ref_nonfinite += int((~finite_ref).sum())
        both = finite_out & finite_ref
        diff = np.abs(out[both] - ref[both])
        aref = np.abs(ref[both])
        if diff.size:
            self.max_abs = max(self.max_abs, float(diff.max()))
            self.sum_abs += float(diff.sum())
            self.ref_max = max(self.ref_max, float(aref.max()))
            self.ref_sum += float(aref.sum())
            self.count += int(diff.size)

    def result(self) -> Dict[str, Any]:
        measured = self.count > 0
        mean_abs = self.sum_abs / self.count if measured else None
        ref_mean = self.ref_sum / self.count if measured else None
        return {
            "max_abs": self.max_abs if measured else None,
            "mean_abs": mean_abs,
            "max_rel": relative_error(self.max_abs if measured else None, self.ref_max),
            "mean_rel": relative_error(mean_abs, ref_mean),
            "nonfinite": self.nonfinite,
            "reference_nonfinite": self.ref_nonfinite,
            "reference_max_abs": self.ref_max,
            "elements": self.count,
        }


class LabelAgreement:
    """Running identical-label share and invalid-label count between two label maps; with a
    `confusion` matrix (rows: reference, columns: compared; `update(pred, target)`, `iou()`,
    `matrix`) also the per-class IoU between the maps."""

    def __init__(self, num_classes: int, confusion: Any = None):
        self.num_classes = int(num_classes)
        self.confusion = confusion
        self.identical = 0
        self.total = 0
        self.invalid = 0

    def update(self, ref: np.ndarray, out: np.ndarray) -> None:
        ref = np.asarray(ref).astype(np.int64)
        out = np.asarray(out).astype(np.int64)
        self.total += int(ref.size)
        self.identical += int((ref == out).sum())
        bad = (out < 0) | (out >= self.num_classes)
        self.invalid += int(bad.sum())
        if self.confusion is not None:
            ok = ~bad & (ref >= 0) & (ref < self.num_classes)
            self.confusion.update(out[ok], ref[ok])

    def result(self, class_names: Sequence[str] = (),
               min_class_pixels: Optional[float] = None) -> Dict[str, Any]:
        stats = {
            "identical": self.identical / self.total if self.total else None,
            "differing_pixels": self.total - self.identical,
            "pixels": self.total,
            "invalid": self.invalid,
            "min_class_iou": None,
            "min_class_iou_class": None,
        }
        if self.confusion is not None:
            stats.update(self._class_iou(class_names, min_class_pixels))
        return stats

    def _class_iou(self, class_names: Sequence[str],
                   min_class_pixels: Optional[float]) -> Dict[str, Any]:
        iou = self.confusion.iou()
        ref_pixels = self.confusion.matrix.sum(1)
        per_class = {}
        worst_name, worst = None, None
        threshold = 0 if min_class_pixels is None else min_class_pixels
        for c in range(self.num_classes):
            if ref_pixels[c] == 0 and np.isnan(iou[c]):
                continue
            name = class_names[c] if c < len(class_names) else str(c)
            v = None if np.isnan(iou[c]) else float(iou[c])
            per_class[name] = {"iou": v, "reference_pixels": int(ref_pixels[c])}
            if v is not None and ref_pixels[c] >= threshold and (worst is None or v < worst):
                worst, worst_name = v, name
        return {"min_class_iou": worst, "min_class_iou_class": worst_name,
                "per_class_iou": per_class}


def verdict(stats: Dict[str, Optional[Dict[str, Any]]],
            limits: profiles.Table) -> Tuple[Dict[str, Any], List[str]]:
    """Judge each output's statistics (None: not compared) by its limits: the report's
    ``{output: {"stats", "checks"}}`` and one `failure_text` line per failed check."""
    outputs: Dict[str, Any] = {}
    for output in profiles.OUTPUTS:
        if stats.get(output) is not None:
            outputs[output] = {"stats": stats[output],
                               "checks": profiles.judge(output, stats[output], limits[output])}
    failures = [failure_text(c) for o in outputs.values() for c in o["checks"] if not c["passed"]]
    return outputs, failures


def describe_outputs(outputs: Dict[str, Any]) -> List[str]:
    """The report's statistics as text, one line per compared output."""
    lines = []
    if outputs.get("logits"):
        s = outputs["logits"]["stats"]
        lines.append(f"logits: max_abs {format_value(s['max_abs'])}  "
                     f"mean_abs {format_value(s['mean_abs'])}  "
                     f"max_rel {format_value(s['max_rel'])}  "
                     f"mean_rel {format_value(s['mean_rel'])}  "
                     f"NaN/Inf {s['nonfinite']} (reference {s['reference_nonfinite']})")
    if outputs.get("labels"):
        s = outputs["labels"]["stats"]
        ident = "-" if s["identical"] is None else f"{100 * s['identical']:.3f}%"
        worst = "-" if s["min_class_iou"] is None else \
            f"{s['min_class_iou']:.4f} ({s['min_class_iou_class']})"
        lines.append(f"labels: identical {ident} ({s['differing_pixels']} of {s['pixels']} "
                     f"pixels differ)  min class IoU {worst}  invalid {s['invalid']}")
    return lines


def failure_text(check: Dict[str, Any]) -> str:
    """"labels.min_identical: 0.9998 < limit 0.99999": value and limit never printed alike."""
    output, name = check["check"].split(".")
    op = ">" if profiles.LIMIT_KINDS[output][name] == "max" else "<"
    value, limit = check["value"], check["limit"]
    shown_limit = f"{limit:.6g}" if float(f"{limit:.6g}") == limit else repr(float(limit))
    digits = 4  # enough digits that the printed value lies on the same side of the limit
    while digits < 12 and not _same_side(format_value(value, digits), value, limit):
        digits += 1
    return f"{check['check']}: {format_value(value, digits)} {op} limit {shown_limit}"


def _same_side(shown: str, value: Any, limit: float) -> bool:
    try:
        v = float(shown)
    except ValueError:
        return True
    return (v < limit) == (value < limit) and (v > limit) == (value > limit)


def format_value(v: Any, digits: int = 4) -> str:
    """A statistic for a report line: "-" for none, "nan", 4 significant digits by default."""
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.{digits}g}" if (abs(v) >= 1e-3 or v == 0) else f"{v:.{digits - 2}e}"
    return str(v)
