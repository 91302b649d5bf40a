"""The picture of a `bisenet-eval` report: per-class IoU with the backends side by side, and each
backend's confusion matrix as an image.

A table of 19 IoUs per backend hides what a picture shows at once: which classes an FP16 engine
lost, which classes are confused with which. matplotlib is imported only here, only when a plot
is asked for; the PNG carries our mark (portable/files/ownership.py), so the next run may replace it.
"""

from __future__ import annotations

import textwrap
from typing import Any, Dict

import numpy as np


def eval_figure(report: Dict[str, Any]):
    """The matplotlib Figure of `report` (evaluate()'s dict): IoU bars on top, one row-normalised
    confusion matrix per backend below (rows: ground truth, columns: prediction)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    results = report["results"]
    names = [c["name"] for c in results[0]["per_class"]]
    n_classes, n_backends = len(names), len(results)
    fig = plt.figure(figsize=(max(10.0, 0.55 * n_classes + 4), 5.5 + 5.4 * _matrix_rows(
        n_backends)), layout="constrained")
    fig.suptitle(textwrap.fill(
        f"bisenet-eval: {report.get('images', '?')} image(s) of "
        f"{report.get('data', 'the dataset')} ({report.get('layout', '?')})", 150), fontsize=11)
    top, bottom = fig.subfigures(2, 1, height_ratios=[5.5, 5.4 * _matrix_rows(n_backends)])
    _iou_bars(top.subplots(), results, names)
    _confusion_matrices(bottom, results, names, fig)
    return fig


def _matrix_rows(n_backends: int) -> int:
    return (n_backends + 2) // 3  # at most three matrices side by side


def _iou_bars(ax, results, names) -> None:
    n = len(results)
    width = 0.8 / n
    x = np.arange(len(names))
    for i, r in enumerate(results):
        iou = [np.nan if c["iou"] is None else 100.0 * c["iou"] for c in r["per_class"]]
        miou = "-" if r.get("miou") is None else f"{100.0 * r['miou']:.2f}"
        backend = r["backend"] if len(r["backend"]) <= 80 else "..." + r["backend"][-77:]
        ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(iou), width,
               label=f"mIoU {miou}%  {backend}")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 105)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("per-class IoU (classes absent from the ground truth and the predictions: no "
                 "bar)", fontsize=9)
    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.06), ncol=min(n, 2),
              frameon=False)


def _confusion_matrices(sub, results, names, fig) -> None:
    rows = _matrix_rows(len(results))
    cols = min(len(results), 3)
    axes = np.atleast_1d(sub.subplots(rows, cols)).ravel()
    image = None
    ticks = np.arange(len(names))
    for ax, r in zip(axes, results):
        matrix = np.asarray(r["confusion_matrix"], dtype=np.float64)
        totals = matrix.sum(axis=1, keepdims=True)
        share = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0) * 100.0
        image = ax.imshow(share, cmap="viridis", vmin=0, vmax=100, interpolation="nearest")
        ax.set_title(textwrap.fill(r["backend"], 60), fontsize=9)
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xticklabels(names, rotation=90, fontsize=6)
        ax.set_yticklabels(names, fontsize=6)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("ground truth", fontsize=8)
    for ax in axes[len(results):]:
        ax.axis("off")
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes[:len(results)]), shrink=0.8)
        bar.set_label("% of the ground-truth class's pixels", fontsize=8)


def write_eval_plot(report: Dict[str, Any], path: str) -> None:
    """Write the figure of `report` to `path` atomically, as a PNG marked as ours."""
    import matplotlib.pyplot as plt

    from ..portable.files.fileio import atomic_output
    from ..portable.files.ownership import PNG_TEXT

    fig = eval_figure(report)
    try:
        with atomic_output(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=90, metadata=PNG_TEXT)  # ours: replaceable
    finally:
        plt.close(fig)
