"""Tolerance profiles as data: named tables, one per precision and per output.

A profile is how strictly a use judges a model against its reference:

* ``export``: export parity, the exported ONNX on onnxruntime CPU against the PyTorch network
  (`export/parity.py`). The strictest: FP32 graphs must give >= 99.99 % identical labels and a
  logits relative error <= 1e-4. FP16 graphs (trt11 --precision fp16): >= 99.0 % and <= 2e-2.
  FP16 has an 11-bit mantissa (unit roundoff 4.9e-4); through ~40 layers the logits carry errors
  of a few 1e-3 of their range, and a pixel's label flips only where its two best classes are
  closer than that, which on a trained network is a boundary pixel; 1 % of pixels / 2 % of the
  logit range leaves room for that while still failing an FP16 graph that overflows (inf/NaN)
  or is wrong.
* ``compare``: `bisenet-compare`, any backend (engines included) against the reference
  (the PyTorch model running the same graph), overridable from the command line. FP32 is
  strict on both outputs; its label rule is the export's (>= 99.99 % identical), which an FP32
  engine meets because the engine builder turns TF32 off. FP16 and INT8 are judged mostly on
  labels: their logits limits are loose (FP16) or off (INT8), as reduced precision moves logits
  while keeping the decisions.
* ``device``: a Jetson bundle's engine, built on the device, against the desktop's ONNX Runtime
  labels for the bundled sample (`jetson_run.py build`). Labels only; its numbers live in the
  portable floor (`portable/shared/parity_limits.py`) because the bundle reads them there, on Python 3.6.

The checks (what each measures is defined once, in `measures.py`):

* ``logits`` (when both sides return logits): ``max_abs`` / ``mean_abs`` are absolute errors,
  ``max_rel`` / ``mean_rel`` the relative errors (`measures.relative_error`), ``max_nonfinite``
  caps NaN/Inf values.
* ``labels`` (always; from argmax of the logits where a side returns only logits):
  ``min_identical`` is the smallest allowed share of pixels with the same class,
  ``min_class_iou`` the smallest allowed IoU between the two label maps for any class that covers
  at least ``min_class_pixels`` reference pixels (tiny classes give noisy IoUs), ``max_invalid``
  caps labels outside 0..num_classes-1 (a runtime reading an output with the wrong dtype).

A limit of ``None`` switches that check off.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ..errors import InputError
from ..portable.shared.parity_limits import DEVICE_MIN_IDENTICAL

PRECISIONS = ("fp32", "fp16", "int8")
OUTPUTS = ("logits", "labels")

#: check name -> "max" (value must be <= limit), "min" (>= limit) or "param" (a setting)
LIMIT_KINDS: Dict[str, Dict[str, str]] = {
    "logits": {"max_abs": "max", "mean_abs": "max", "max_rel": "max", "mean_rel": "max",
               "max_nonfinite": "max"},
    "labels": {"min_identical": "min", "min_class_iou": "min", "min_class_pixels": "param",
               "max_invalid": "max"},
}

Table = Dict[str, Dict[str, Optional[float]]]

#: the compare profile (the default, and what --tol / --tol-file override)
DEFAULT_TOLERANCES: Dict[str, Table] = {
    "fp32": {
        "logits": {"max_abs": None, "mean_abs": None, "max_rel": 1e-3, "mean_rel": 1e-4,
                   "max_nonfinite": 0},
        "labels": {"min_identical": 0.9999, "min_class_iou": 0.99, "min_class_pixels": 64,
                   "max_invalid": 0},
    },
    "fp16": {
        "logits": {"max_abs": None, "mean_abs": None, "max_rel": 0.05, "mean_rel": 0.01,
                   "max_nonfinite": 0},
        "labels": {"min_identical": 0.98, "min_class_iou": 0.9, "min_class_pixels": 64,
                   "max_invalid": 0},
    },
    "int8": {
        "logits": {"max_abs": None, "mean_abs": None, "max_rel": None, "mean_rel": None,
                   "max_nonfinite": 0},
        "labels": {"min_identical": 0.9, "min_class_iou": 0.7, "min_class_pixels": 64,
                   "max_invalid": 0},
    },
}


#: export parity: the graph precision's table (an FP16 graph only from trt11 --precision fp16)
EXPORT_TOLERANCES: Dict[str, Table] = {
    "fp32": {
        "logits": {"max_abs": None, "mean_abs": None, "max_rel": 1e-4, "mean_rel": None,
                   "max_nonfinite": 0},
        "labels": {"min_identical": 0.9999, "min_class_iou": None, "min_class_pixels": None,
                   "max_invalid": 0},
    },
    "fp16": {
        "logits": {"max_abs": None, "mean_abs": None, "max_rel": 2e-2, "mean_rel": None,
                   "max_nonfinite": 0},
        "labels": {"min_identical": 0.99, "min_class_iou": None, "min_class_pixels": None,
                   "max_invalid": 0},
    },
}

#: a Jetson engine against the desktop's labels: the bundle's own check, labels only
DEVICE_TOLERANCES: Dict[str, Table] = {
    precision: {
        "logits": {"max_abs": None, "mean_abs": None, "max_rel": None, "mean_rel": None,
                   "max_nonfinite": None},
        "labels": {"min_identical": share, "min_class_iou": None, "min_class_pixels": None,
                   "max_invalid": None},
    } for precision, share in DEVICE_MIN_IDENTICAL.items()
}

PROFILES: Dict[str, Dict[str, Table]] = {"compare": DEFAULT_TOLERANCES,
                                         "export": EXPORT_TOLERANCES,
                                         "device": DEVICE_TOLERANCES}


def _parse_value(text: str, key: str) -> Optional[float]:
    low = text.strip().lower()
    if low in ("none", "off", "null", ""):
        return None
    try:
        return float(low)
    except ValueError:
        raise InputError(f"tolerance {key}={text!r}: the value must be a number or 'none'") \
            from None


def _checked(key: str, name: str, value: Optional[float]) -> Optional[float]:
    """A limit is a finite number >= 0 (errors, counts, pixels) and at most 1 for a share
    (min_identical, min_class_iou); a negative one would pass or fail everything silently."""
    if value is None:
        return None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"tolerance {key}={value:g}: a limit must be a number >= 0 (or 'none' "
                         f"to switch the check off)")
    if name.startswith("min_") and name != "min_class_pixels" and value > 1:
        raise InputError(f"tolerance {key}={value:g}: {name} is a share between 0 and 1 "
                         f"(e.g. 0.999)")
    return value


def _split_key(key: str) -> Tuple[Optional[str], str, str]:
    parts = key.strip().lower().split(".")
    precision = None
    if len(parts) == 3:
        precision = parts.pop(0)
        if precision not in PRECISIONS:
            raise InputError(f"tolerance {key!r}: unknown precision {precision!r} "
                             f"(use one of {', '.join(PRECISIONS)})")
    if len(parts) != 2:
        raise InputError(f"tolerance {key!r} is not [PRECISION.]OUTPUT.NAME "
                         f"(e.g. labels.min_identical or fp16.logits.max_rel)")
    output, name = parts
    if output not in LIMIT_KINDS:
        raise InputError(f"tolerance {key!r}: unknown output {output!r} "
                         f"(use {' or '.join(OUTPUTS)})")
    if name not in LIMIT_KINDS[output]:
        raise InputError(f"tolerance {key!r}: unknown limit {name!r}; {output} has "
                         f"{', '.join(sorted(LIMIT_KINDS[output]))}")
    return precision, output, name


def parse_overrides(items: Iterable[str]) -> List[Tuple[Optional[str], str, str, Optional[float]]]:
    """['labels.min_identical=0.999', 'fp16.logits.max_rel=none'] -> (precision|None, out, name, v).

    Without a precision prefix an override applies to every precision.
    """
    parsed = []
    for item in items or ():
        if "=" not in item:
            raise InputError(f"tolerance {item!r} is not KEY=VALUE "
                             f"(e.g. --tol labels.min_identical=0.999)")
        key, value = item.split("=", 1)
        precision, output, name = _split_key(key)
        parsed.append((precision, output, name, _checked(key, name, _parse_value(value, key))))
    return parsed


def load_tolerance_file(path: str) -> List[Tuple[Optional[str], str, str, Optional[float]]]:
    """A JSON file shaped like DEFAULT_TOLERANCES (any subset) -> overrides."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise InputError(f"cannot read the tolerance file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"the tolerance file {path} is not valid JSON ({exc})") from None
    out = []
    if not isinstance(data, dict):
        raise InputError(f"the tolerance file {path} must hold a JSON object")
    for precision, outputs in data.items():
        if not isinstance(outputs, dict):
            raise InputError(f"tolerance file {path}: {precision!r} must map outputs to limits")
        for output, limits in outputs.items():
            if not isinstance(limits, dict):
                raise InputError(f"tolerance file {path}: {precision}.{output} must be an object")
            for name, value in limits.items():
                key = f"{precision}.{output}.{name}"
                prec, o, n = _split_key(key)
                if value is not None and (isinstance(value, bool)
                                          or not isinstance(value, (int, float))):
                    raise InputError(f"tolerance file {path}: {key} must be a number or null")
                value = _checked(f"{path}: {key}", n, None if value is None else float(value))
                out.append((prec, o, n, value))
    return out


def resolve(precision: str, overrides=(), profile: str = "compare") -> Table:
    """The tolerance table of `profile` for one precision after applying overrides (later ones
    win)."""
    if profile not in PROFILES:
        raise InputError(f"unknown tolerance profile {profile!r} (known: {', '.join(PROFILES)})")
    tables = PROFILES[profile]
    precision = (precision or "fp32").lower()
    if precision not in tables:
        raise InputError(f"no tolerances for precision {precision!r} in the {profile} profile "
                         f"(known: {', '.join(tables)})")
    table = copy.deepcopy(tables[precision])
    for prec, output, name, value in overrides:
        if prec is None or prec == precision:
            table[output][name] = value
    return table


def judge(output: str, stats: Dict[str, Any],
          limits: Dict[str, Optional[float]]) -> List[Dict[str, Any]]:
    """Checks of one output's statistics against its limits: [{check, value, limit, passed}]."""
    value_of = {
        "max_abs": "max_abs", "mean_abs": "mean_abs", "max_rel": "max_rel",
        "mean_rel": "mean_rel", "max_nonfinite": "nonfinite", "min_identical": "identical",
        "min_class_iou": "min_class_iou", "max_invalid": "invalid",
    }
    checks = []
    for name, kind in LIMIT_KINDS[output].items():
        limit = limits.get(name)
        if kind == "param" or limit is None:
            continue
        value = stats.get(value_of[name])
        if value is None:  # nothing to judge (e.g. no class big enough for the IoU check)
            continue
        nan = isinstance(value, float) and math.isnan(value)
        passed = (not nan) and (value <= limit if kind == "max" else value >= limit)
        checks.append({"check": f"{output}.{name}", "value": value, "limit": limit,
                       "passed": bool(passed)})
    return checks


def describe_defaults(profile: str = "compare") -> str:
    """A profile's tables as text (for --help epilogs and the README)."""
    lines = []
    for precision, outputs in PROFILES[profile].items():
        for output, limits in outputs.items():
            shown = ", ".join(f"{k}={'off' if v is None else v:g}" if v is not None else f"{k}=off"
                              for k, v in limits.items())
            lines.append(f"  {precision}.{output}: {shown}")
    return "\n".join(lines)
