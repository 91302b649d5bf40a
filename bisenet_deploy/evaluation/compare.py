"""Element-level parity: the same inputs through a reference runner and each backend under test.

For every backend and output the comparison keeps running statistics over all images (so nothing
depends on batch order): absolute and scale-relative logits errors, NaN/Inf counts, the share of
identical labels, the per-class IoU between the two label maps and labels outside the class
range, all measured by the comparison core (`comparison/measures.py`, shared with export parity).
Each backend is then judged against the compare profile's table of its precision
(`comparison/profiles.py`). The report is a JSON-able dict; `format_report` renders it for the
terminal and `plot_disagreement` draws where the labels differ.
"""

from __future__ import annotations

import json
import logging
import textwrap
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

from ..errors import InputError
from ..portable.running.preprocess import prepare_input
from ..runtime.api import batch_range, pad_batch
from ..runtime.images import labels_from_outputs
from ..comparison import profiles
from ..comparison.measures import LabelAgreement, LogitsAgreement, describe_outputs, verdict
from .metrics import ConfusionMatrix

log = logging.getLogger(__name__)


class Candidate:
    """A backend under test: its report label ("onnxruntime:model.onnx"), runner, precision."""

    def __init__(self, label: str, runner, precision: Optional[str] = None):
        self.label = label
        self.runner = runner
        self.precision = (precision or runner_precision(runner)).lower()


def runner_precision(runner) -> str:
    """fp32/fp16/int8 of a runner: a TensorRT engine's sidecar (an FP16 engine is built from an
    FP32 ONNX, so its record says fp32), else the runner's `precision`, else its export record."""
    sidecar = getattr(runner, "sidecar", None)
    p = sidecar.get("precision") if isinstance(sidecar, dict) else None
    if isinstance(p, str) and p.lower() in profiles.PRECISIONS:
        return p.lower()
    p = getattr(runner, "precision", None)
    if isinstance(p, str) and p.lower() in profiles.PRECISIONS:
        return p.lower()
    export = ((getattr(runner, "metadata", None) or {}).get("export") or {})
    p = export.get("precision")
    return p.lower() if isinstance(p, str) and p.lower() in profiles.PRECISIONS else "fp32"


def check_images_fit(count: int, record: Dict[str, Any], backends: int, what: str,
                     fix: str) -> None:
    """Refuse, before any inference, more images than memory can hold: `compare` keeps every
    image and, for the reference and each candidate, its outputs (logits and labels at the
    graph's input size)."""
    from ..portable.shared.memory import check_fits

    export = record.get("export") or {}
    width, height = (int(v) for v in export.get("input_size") or (1024, 512))
    classes = int((record.get("model") or {}).get("num_classes") or 19)
    per_output = width * height * 4 * (classes + 1)  # float32 logits + int32 labels
    check_fits(int(count) * (width * height * 3 + (1 + int(backends)) * per_output),
               "%s (each kept with its outputs at %dx%d, %d classes)" % (what, width, height,
                                                                         classes), fix)


def _run(runner, images: List[np.ndarray], label: str = "",
         progress: bool = True) -> List[Dict[str, np.ndarray]]:
    """Per-image outputs {name: array with a leading batch dim of 1}; a bar named `label` on a
    terminal."""
    from ..progress import progress_bar

    results: List[Dict[str, np.ndarray]] = []
    record = runner.metadata
    if record is None:
        raise InputError(f"the {runner.backend} runner carries no model metadata; cannot prepare "
                         f"its input")
    size = batch_range(runner)[0]  # the smallest batch it takes: 1, or a static batch
    with progress_bar(total=len(images), desc=label or runner.backend, unit="img",
                      enabled=progress) as bar:
        for start in range(0, len(images), size):
            group = images[start:start + size]
            out = runner.infer(pad_batch(runner, prepare_input(group, record)))
            for i in range(len(group)):
                results.append({k: np.asarray(v)[i:i + 1] for k, v in out.items()})
            bar.update(len(group))
    return results


def compare(reference, candidates: Sequence[Candidate], images: Iterable[np.ndarray], *,
            overrides=(), class_names: Optional[Sequence[str]] = None,
            num_classes: Optional[int] = None, keep_worst: bool = False,
            progress: bool = True) -> Dict[str, Any]:
    """Run `images` (H x W x 3 uint8 RGB) through the reference and each active candidate.

    `reference` is an active Runner, or a callable `record -> active Runner` that builds the
    reference for a candidate's graph (e.g. PyTorch running the same DeployModule); it is called
    once per distinct graph description. Returns the report dict; with `keep_worst` it also holds,
    per backend, the image with the most differing labels (numpy arrays under "_worst", dropped
    by `json_report`).
    """
    images = list(images)
    if not images:
        raise InputError("no images to compare on")
    if not candidates:
        raise InputError("no backend to compare against the reference")
    cache: Dict[str, Any] = {}

    def reference_for(cand: Candidate):
        if hasattr(reference, "infer"):
            key = "fixed"
        else:
            key = json.dumps((cand.runner.metadata or {}).get("export"), sort_keys=True)
        if key not in cache:
            runner = reference if key == "fixed" else reference(cand.runner.metadata)
            log.info("reference %s on %d image(s)", runner.describe(), len(images))
            cache[key] = (runner, _run(runner, images, "reference", progress))
        return cache[key]

    first_record = candidates[0].runner.metadata or {}
    model = first_record.get("model") or {}
    num_classes = int(num_classes or model.get("num_classes") or 0)
    class_names = list(class_names or model.get("class_names") or [])
    if not num_classes:
        _, first = reference_for(candidates[0])
        num_classes = int(first[0]["logits"].shape[1]) if "logits" in first[0] else \
            int(max(labels_from_outputs(r).max() for r in first)) + 1
    if not class_names:
        class_names = [str(i) for i in range(num_classes)]

    backends = []
    all_passed = True
    for cand in candidates:
        ref_runner, ref_results = reference_for(cand)
        log.info("comparing %s (%s)", cand.label, cand.precision)
        results = _run(cand.runner, images, cand.label, progress)
        logits = LogitsAgreement()
        labels = LabelAgreement(num_classes, ConfusionMatrix(num_classes, ignore_index=None))
        has_logits = False
        worst = None
        for i, (ref, out) in enumerate(zip(ref_results, results)):
            ref_labels = labels_from_outputs(ref)
            out_labels = labels_from_outputs(out)
            if ref_labels.shape != out_labels.shape:
                raise InputError(
                    f"{cand.label} returns labels of shape {out_labels.shape[1:]} but the "
                    f"reference {ref_labels.shape[1:]}: compare models exported at the same "
                    f"input size")
            labels.update(ref_labels, out_labels)
            if "logits" in ref and "logits" in out:
                if ref["logits"].shape != out["logits"].shape:
                    raise InputError(f"{cand.label} returns logits of shape {out['logits'].shape} "
                                     f"but the reference {ref['logits'].shape}")
                has_logits = True
                logits.update(ref["logits"], out["logits"])
            if keep_worst:
                diff = int((ref_labels != out_labels).sum())
                if worst is None or diff > worst["differing"]:
                    worst = {"index": i, "differing": diff,
                             "image": _at_size(images[i], ref_labels.shape[1:]),
                             "reference": ref_labels[0], "labels": out_labels[0]}
        limits = profiles.resolve(cand.precision, overrides)
        outputs, failures = verdict(
            {"logits": logits.result() if has_logits else None,
             "labels": labels.result(class_names, limits["labels"].get("min_class_pixels"))},
            limits)
        passed = not failures
        all_passed = all_passed and passed
        entry = {
            "backend": cand.label,
            "runner": cand.runner.describe(),
            "reference": ref_runner.describe(),
            "precision": cand.precision,
            "passed": passed,
            "tolerances": limits,
            "outputs": outputs,
            "failures": failures,
        }
        if not has_logits:
            entry["note"] = ("logits not compared: the reference or this backend returns labels "
                             "only, so only the labels are judged; for an element-level check "
                             "export with `bisenet-export onnx --output both`")
        int8 = ((cand.runner.metadata or {}).get("export") or {}).get("int8")
        if isinstance(int8, dict):  # a Q/DQ graph: the agreement its export measured
            entry["export_int8"] = {k: int8.get(k) for k in ("agreement", "calibration")}
        if keep_worst:
            entry["_worst"] = worst
        backends.append(entry)
    return {
        "reference": ", ".join(sorted({r.describe() for r, _ in cache.values()})),
        "images": len(images),
        "image_size": [int(images[0].shape[1]), int(images[0].shape[0])],
        "num_classes": num_classes,
        "passed": all_passed,
        "backends": backends,
    }


def _at_size(image: np.ndarray, shape) -> np.ndarray:
    """The image at the label maps' size (the graph input size), for plotting side by side."""
    from ..portable.running.preprocess import resize_bilinear

    h, w = int(shape[0]), int(shape[1])
    if image.shape[:2] == (h, w):
        return image
    return np.clip(np.rint(resize_bilinear(image, w, h)), 0, 255).astype(np.uint8)


def json_report(report: Dict[str, Any]) -> Dict[str, Any]:
    """The report without the in-memory pictures kept for plotting."""
    out = dict(report)
    out["backends"] = [{k: v for k, v in b.items() if not k.startswith("_")}
                       for b in report["backends"]]
    return out


def format_report(report: Dict[str, Any]) -> str:
    """A readable multi-line summary: one block per backend, failures spelled out."""
    w, h = report["image_size"]
    lines = [f"reference: {report['reference']}   inputs: {report['images']} image(s) {w}x{h}"]
    for b in report["backends"]:
        mark = "PASS" if b["passed"] else "FAIL"
        lines.append("")
        lines.append(f"{b['backend']}  [{b['precision']}]  {mark}   ({b['runner']})")
        lines += [f"  {line}" for line in describe_outputs(b["outputs"])]
        if b.get("note"):
            lines.append(f"  note: {b['note']}")
        for f in b["failures"]:
            lines.append(f"  FAILED {f}")
    n_fail = sum(not b["passed"] for b in report["backends"])
    lines.append("")
    lines.append("all backends match the reference within tolerance" if report["passed"] else
                 f"{n_fail} of {len(report['backends'])} backend(s) differ from the reference "
                 f"beyond tolerance")
    return "\n".join(lines)


def plot_disagreement(report: Dict[str, Any], path: str, palette) -> None:
    """PNG: per backend its worst image, the reference labels, its labels, where they differ."""
    import matplotlib.pyplot as plt

    from ..portable.files.fileio import atomic_output
    from ..portable.files.ownership import PNG_TEXT

    fig = disagreement_figure(report, palette)
    try:
        with atomic_output(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=80, metadata=PNG_TEXT)  # ours: replaceable
    finally:
        plt.close(fig)


def disagreement_figure(report: Dict[str, Any], palette):
    """The matplotlib Figure plot_disagreement writes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .colorize import colorize

    rows = [b for b in report["backends"] if b.get("_worst")]
    if not rows:
        raise InputError("nothing to plot: run the comparison with keep_worst=True")
    # one sub-figure per backend: its (long) name is the row's own heading, wrapped to the
    # figure's width, and the panel titles stay short, so no two titles share a line
    fig = plt.figure(figsize=(16, 3.0 * len(rows) + 0.6), layout="constrained")
    fig.suptitle(textwrap.fill(f"label disagreement vs {report['reference']}", 160), fontsize=10)
    for sub, b in zip(np.atleast_1d(fig.subfigures(len(rows), 1)), rows):
        wst = b["_worst"]
        differ = wst["reference"] != wst["labels"]
        grey = wst["image"].mean(axis=2, keepdims=True).repeat(3, axis=2) * 0.5
        marked = grey.astype(np.uint8)
        marked[differ] = (255, 0, 0)
        sub.suptitle(textwrap.fill(f"{b['backend']} [{b['precision']}]", 170), fontsize=9)
        panels = [(wst["image"], f"input #{wst['index']}"),
                  (colorize(wst["reference"], palette), "reference labels"),
                  (colorize(wst["labels"], palette), "this backend's labels"),
                  (marked, f"differ: {int(differ.sum())} px ({100 * differ.mean():.3f}%)")]
        for ax, (img, title) in zip(sub.subplots(1, 4), panels):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    return fig
