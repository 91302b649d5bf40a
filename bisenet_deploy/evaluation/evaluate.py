"""Task-level accuracy: mIoU of any backend on a labelled dataset, several backends side by side.

Every backend sees the same image, prepared for its graph input exactly as its metadata says
(`portable.running.preprocess.prepare_input`: host bilinear resize to the graph input size when the image
differs). What the network itself runs at is the graph's `model_size`:

* paper protocol: graph input 2048x1024 with the in-graph resize to a 1024x512 network (the
  BiSeNet V2 paper's setting); the graph resizes its logits back to 2048x1024 and takes the
  argmax there.
* full protocol: the network at 2048x1024 itself (how CoinCheung/BiSeNet reports 74.95 mIoU).

Predictions are compared at the label's resolution. The Cityscapes layout adds the benchmark's
category IoU, iIoU where `*_gtFine_instanceIds.png` files are present, and a count of ground-truth
values that are no Cityscapes label id (ignored, or refused with `strict`): see
`cityscapes_official`. When a backend's output is smaller than the
label (a graph exported at another input size), its logits are resized bilinearly
(align_corners=False) and then argmax'ed when the backend returns logits - the same as the
graph's own output path - and its labels are resized nearest-neighbour when it returns labels
only (slightly less accurate along boundaries).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError, UnusableFileError
from ..portable.running.preprocess import prepare_input
from ..runtime.api import pad_batch
from ..runtime.images import read_image
from . import cityscapes_official as official
from .datasets_io import Sample, read_label, read_label_png
from .metrics import (
    ConfusionMatrix,
    per_class_table,
    resize_labels_nearest,
    resize_logits_argmax,
)

log = logging.getLogger(__name__)


def labels_at(outputs: Dict[str, np.ndarray], width: int, height: int,
              index: int = 0) -> np.ndarray:
    """Label map (H x W int) of batch item `index` at width x height, per the module docstring."""
    if "logits" in outputs:
        logits = np.asarray(outputs["logits"])[index]
        if (logits.shape[2], logits.shape[1]) != (width, height) or "labels" not in outputs:
            return resize_logits_argmax(logits, width, height)
    if "labels" in outputs:
        return resize_labels_nearest(np.asarray(outputs["labels"])[index], width, height)
    raise InputError(f"the backend returned neither 'labels' nor 'logits' (got "
                     f"{', '.join(outputs) or 'nothing'})")


def describe_protocol(record: Dict[str, Any], label_size: Sequence[int]) -> Dict[str, Any]:
    """What a graph does with an image of `label_size` [W, H]: sizes and a protocol name."""
    export = (record or {}).get("export") or {}
    input_size = list(export.get("input_size") or label_size)
    model_size = list(export.get("model_size") or input_size)
    label_size = [int(label_size[0]), int(label_size[1])]
    if model_size == label_size:
        name = "full"
    elif input_size == label_size and model_size[0] * 2 == label_size[0] \
            and model_size[1] * 2 == label_size[1]:
        name = "paper"
    else:
        name = "custom"
    return {"protocol": name, "graph_input_size": input_size, "network_size": model_size,
            "eval_size": label_size}


class EvalTarget:
    """One column of the evaluation: a label ("tensorrt fp16") and its active runner."""

    def __init__(self, label: str, runner):
        self.label = label
        self.runner = runner
        self.cm: Optional[ConfusionMatrix] = None
        self.infer_ms: List[float] = []
        self.protocol: Optional[Dict[str, Any]] = None


def evaluate(targets: Sequence[EvalTarget], samples: Sequence[Sample], *, layout: str,
             num_classes: int, class_names: Optional[Sequence[str]] = None,
             ignore_index: int = 255, limit: Optional[int] = None,
             progress: bool = True,
             skipped: Optional[List[Tuple[str, str]]] = None,
             strict: bool = False) -> Dict[str, Any]:
    """Accumulate one confusion matrix per target over `samples`; returns the JSON-able report.

    With a `skipped` list, a sample whose image or label cannot be read is appended there as
    (name, reason) and left out of every matrix; without one it stops the evaluation. `strict`
    refuses Cityscapes ground truth holding values that are no label id.
    """
    if not targets:
        raise InputError("no backend to evaluate")
    samples = list(samples)[:limit] if limit else list(samples)
    if not samples:
        raise InputError("the dataset has no samples to evaluate")
    if layout == "cityscapes":
        from ..datasets import get_dataset

        city_classes = get_dataset("cityscapes").num_classes
        if num_classes != city_classes:
            # the labelIds are mapped to Cityscapes' train ids: another model's class ids would
            # be scored against them and give a meaningless mIoU
            raise InputError(f"--layout cityscapes scores the {city_classes} Cityscapes train "
                             f"ids but the model predicts {num_classes} classes: evaluate a "
                             f"Cityscapes model, or use --layout folders with labels holding "
                             f"this model's class ids")
    matrices = [ConfusionMatrix(num_classes, ignore_index) for _ in targets]
    for t, cm in zip(targets, matrices):
        t.cm = cm
        if t.runner.metadata is None:
            raise InputError(f"{t.label}: the runner carries no model metadata")
        model = t.runner.metadata.get("model") or {}
        if model.get("num_classes") and int(model["num_classes"]) != num_classes:
            raise InputError(f"{t.label} predicts {model['num_classes']} classes but the dataset "
                             f"has {num_classes}: use a model trained for this dataset")
    ground_truth = _CityscapesTruth(samples, len(targets), strict) if layout == "cityscapes" \
        else None
    from ..progress import progress_bar

    with progress_bar(samples, desc="evaluating", unit="img", enabled=progress) as bar:
        for sample in bar:
            try:
                image = read_image(sample.image_path)
                if ground_truth is not None:
                    gt, instances = ground_truth.read(sample)
                else:
                    gt, instances = read_label(sample, layout), None
            except UnusableFileError as exc:
                if skipped is None:
                    raise
                skipped.append((sample.name, str(exc)))
                log.warning("skipped %s: %s", sample.name, exc)
                continue
            if gt.shape != image.shape[:2]:
                raise InputError(f"{sample.name}: label {gt.shape[1]}x{gt.shape[0]} and image "
                                 f"{image.shape[1]}x{image.shape[0]} differ in size")
            h, w = gt.shape
            for index, (t, cm) in enumerate(zip(targets, matrices)):
                if t.protocol is None:
                    t.protocol = describe_protocol(t.runner.metadata, [w, h])
                batch = pad_batch(t.runner, prepare_input(image, t.runner.metadata))
                start = time.perf_counter()
                out = t.runner.infer(batch)
                t.infer_ms.append((time.perf_counter() - start) * 1e3)
                pred = labels_at(out, w, h)
                cm.update(pred, gt, where=f"{t.label}, {sample.name}")
                if instances is not None:
                    ground_truth.stats[index].update(pred, instances)
    if skipped and len(skipped) == len(samples):
        raise UnusableFileError(f"none of the {len(samples)} sample(s) could be read (reasons "
                                f"above)")

    results = []
    for index, (t, cm) in enumerate(zip(targets, matrices)):
        summary = cm.summary(class_names)
        summary.update({"backend": t.label, "runner": t.runner.describe(),
                        "protocol": t.protocol,
                        "confusion_matrix": cm.matrix.tolist(),  # rows: truth, cols: prediction
                        "mean_infer_ms": float(np.mean(t.infer_ms)) if t.infer_ms else None})
        if ground_truth is not None:
            summary["cityscapes"] = official.official_scores(
                cm.matrix, ground_truth.stats[index] if ground_truth.instances else None)
        results.append(summary)
    base = results[0]["miou"]
    for r in results:
        r["miou_delta_vs_first"] = None if (base is None or r["miou"] is None) \
            else r["miou"] - base
    report = {"layout": layout, "images": len(samples) - len(skipped or ()),
              "num_classes": num_classes, "ignore_index": ignore_index, "results": results,
              "skipped": [{"sample": name, "reason": why} for name, why in skipped or ()]}
    if ground_truth is not None:
        report["instance_level"] = ground_truth.instances
        report["unknown_gt_values"] = ground_truth.unknown_report()
    return report


class _CityscapesTruth:
    """Reads the Cityscapes ground truth of a split: train ids, instance ids when every image has
    them, and the count of values that are no label id (an InputError with `strict`)."""

    def __init__(self, samples: Sequence[Sample], targets: int, strict: bool):
        self.strict = strict
        self.paths = {s.name: official.instance_path(s.label_path or "") for s in samples}
        missing = sum(1 for p in self.paths.values() if p is None)
        self.instances = missing == 0
        if missing and missing < len(samples):
            log.warning("iIoU is not reported: %d of %d images have no *%s beside their labels",
                        missing, len(samples), official.INSTANCE_SUFFIX)
        self.stats = [official.InstanceStats() for _ in range(targets)]
        self.unknown: Dict[int, int] = {}
        self.unknown_images = 0

    def read(self, sample: Sample):
        from ..datasets import cityscapes_ids_to_trainids

        if sample.label_path is None:
            raise InputError(f"{sample.name} has no label file")
        raw = read_label_png(sample.label_path)
        unknown = official.unknown_ids(raw)
        if unknown:
            if self.strict:
                raise InputError(
                    f"{sample.label_path}: {sum(unknown.values())} ground-truth pixels hold "
                    f"values {sorted(unknown)[:10]} that are no Cityscapes label id (0.."
                    f"{official.MAX_LABEL_ID}); --strict refuses them: use the "
                    f"*_gtFine_labelIds.png files, or leave --strict out to ignore those pixels")
            self.unknown_images += 1
            for value, count in unknown.items():
                self.unknown[value] = self.unknown.get(value, 0) + count
        instances = None
        if self.instances:
            instances = read_label_png(self.paths[sample.name])
            if instances.shape != raw.shape:
                raise InputError(f"{self.paths[sample.name]}: instance ids "
                                 f"{instances.shape[1]}x{instances.shape[0]} and labels "
                                 f"{raw.shape[1]}x{raw.shape[0]} differ in size")
        return cityscapes_ids_to_trainids(raw).astype(np.int64), instances

    def unknown_report(self) -> Dict[str, Any]:
        pixels = int(sum(self.unknown.values()))
        return {"pixels": pixels, "images": self.unknown_images,
                "values": {str(v): c for v, c in sorted(self.unknown.items())}}


def format_table(report: Dict[str, Any], per_class: bool = True) -> str:
    """Side-by-side text table: per-class IoU, mIoU, pixel accuracy, mIoU change vs the first."""
    from ..text_table import format_table as _table

    results = report["results"]
    header = ["class"] + [r["backend"] for r in results]
    rows: List[List[str]] = per_class_table(results) if per_class else []

    def pct(v):
        return "-" if v is None else f"{100 * v:.2f}"

    rows.append(["mIoU"] + [pct(r["miou"]) for r in results])
    rows.append(["pixel accuracy"] + [pct(r["pixel_accuracy"]) for r in results])
    if len(results) > 1:
        rows.append([f"mIoU vs {results[0]['backend']}"] + [
            "-" if r["miou_delta_vs_first"] is None else f"{100 * r['miou_delta_vs_first']:+.2f}"
            for r in results])
    rows.append(["protocol"] + [
        "{} (net {}x{})".format(r["protocol"]["protocol"], *r["protocol"]["network_size"])
        if r["protocol"] else "-" for r in results])
    rows.append(["infer ms/img"] + [
        "-" if r["mean_infer_ms"] is None else f"{r['mean_infer_ms']:.1f}" for r in results])
    if any("cityscapes" in r for r in results):
        rows[-2:-2] = official.format_rows(results, [e["name"] for e in results[0]["per_class"]],
                                           per_class)
    text = _table(rows, header)
    unknown = report.get("unknown_gt_values") or {}
    if unknown.get("pixels"):
        text += (f"\nground truth: {unknown['pixels']} pixels in {unknown['images']} image(s) hold "
                 f"values that are no Cityscapes label id ("
                 f"{', '.join(f'{v}: {c} px' for v, c in list(unknown['values'].items())[:10])}"
                 f"); they were ignored (--strict refuses such ground truth)")
    return text
