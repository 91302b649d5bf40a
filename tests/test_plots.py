"""The pictures: `bisenet-eval --plot` (per-class IoU side by side, confusion matrices) and
`bisenet-compare --plot`, whose titles must not run into each other."""

import itertools

import numpy as np
import pytest
from PIL import Image

from bisenet_deploy.datasets import get_dataset
from bisenet_deploy.evaluation.metrics import ConfusionMatrix
from bisenet_deploy.portable.files.ownership import is_ours
from bisenet_deploy.synthetic import synthetic_image

LONG_ONNX = ("onnxruntime:export/bisenetv2-coincheung-cityscapes-2048x1024-to-1024x512-labels-"
             "trt10.onnx")
LONG_ENGINE = ("tensorrt:engines/nvidia-geforce-rtx-3080-sm86-trt10.13.0/bisenetv2-coincheung-"
               "cityscapes-2048x1024-to-1024x512-labels-trt10-fp16.engine")


def titles(fig):
    """Every title of the figure: its own, each sub-figure's, each panel's (non-empty)."""
    found = [fig._suptitle] + [sub._suptitle for sub in fig.subfigs]
    found += [ax.title for ax in fig.get_axes()]
    return [t for t in found if t is not None and t.get_text()]


def assert_no_titles_overlap(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in titles(fig)]
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), f"titles overlap: {a!r} and {b!r}"
    width = fig.bbox.width
    for text, box in boxes:
        assert box.x0 >= -1 and box.x1 <= width + 1, f"title outside the figure: {text!r}"


def test_compare_plot_titles_do_not_overlap_with_long_backend_names():
    import matplotlib.pyplot as plt

    from bisenet_deploy.evaluation.compare import disagreement_figure

    image = synthetic_image(256, 128, seed=1)
    reference = np.random.default_rng(0).integers(0, 19, (128, 256))
    labels = reference.copy()
    labels[:20, :40] = 3
    worst = {"image": image, "reference": reference, "labels": labels, "index": 3}
    report = {"reference": "torch (bisenetv2-coincheung, cityscapes, checkpoint "
                           "models/model_final_v2_city.pth, CPU, 4 threads)",
              "backends": [{"backend": name, "precision": "fp16", "_worst": worst}
                           for name in (LONG_ONNX, LONG_ENGINE)]}
    fig = disagreement_figure(report, get_dataset("cityscapes").palette)
    try:
        assert_no_titles_overlap(fig)
        assert sum(LONG_ENGINE.split(":")[0] in t.get_text() for t in titles(fig)) == 1
    finally:
        plt.close(fig)


def eval_report(backends=("torch (paper)", LONG_ONNX, LONG_ENGINE)):
    names = get_dataset("cityscapes").class_names
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 19, (64, 128))
    results = []
    for k, backend in enumerate(backends):
        pred = truth.copy()
        noisy = rng.random(truth.shape) < 0.1 * (k + 1)
        pred[noisy] = rng.integers(0, 19, int(noisy.sum()))
        cm = ConfusionMatrix(19, 255)
        cm.update(pred, truth)
        summary = cm.summary(names)
        summary.update(backend=backend, confusion_matrix=cm.matrix.tolist())
        results.append(summary)
    return {"results": results, "images": 2, "data": "data/cityscapes", "layout": "cityscapes"}


def test_eval_figure_shows_every_class_iou_of_every_backend_and_their_matrices():
    import matplotlib.pyplot as plt

    from bisenet_deploy.evaluation.eval_plot import eval_figure

    report = eval_report()
    fig = eval_figure(report)
    try:
        bars_ax, *matrix_axes = [ax for ax in fig.get_axes() if ax.patches or ax.images]
        heights = [p.get_height() for p in bars_ax.patches]
        expected = [100.0 * c["iou"] for r in report["results"] for c in r["per_class"]]
        assert heights == pytest.approx(expected)  # backend after backend, class by class
        assert [t.get_text() for t in bars_ax.get_xticklabels()] == \
            list(get_dataset("cityscapes").class_names)
        shown = [ax.images[0].get_array() for ax in matrix_axes if ax.images]
        assert len(shown) == 3
        first = np.asarray(report["results"][0]["confusion_matrix"], float)
        assert np.allclose(shown[0], 100.0 * first / first.sum(axis=1, keepdims=True))
        assert_no_titles_overlap(fig)
    finally:
        plt.close(fig)


def test_eval_plot_is_a_png_marked_as_ours(tmp_path):
    from bisenet_deploy.evaluation.eval_plot import write_eval_plot

    path = tmp_path / "eval.png"
    write_eval_plot(eval_report(backends=("onnxruntime",)), str(path))
    assert is_ours(path, "png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] >= 800


@pytest.fixture(scope="module")
def folder_dataset(tiny_export):
    d, _, onnx_path = tiny_export("labels")
    root = d / "plot-dataset"
    for sub in ("images", "labels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(2):
        Image.fromarray(synthetic_image(128, 64, seed=i)).save(root / "images" / f"{i}.png")
        labels = np.random.default_rng(i).integers(0, 19, size=(64, 128), dtype=np.uint8)
        Image.fromarray(labels).save(root / "labels" / f"{i}.png")
    return onnx_path, root


def test_eval_cli_plot_next_to_the_report_and_never_over_a_users_file(folder_dataset, tmp_path,
                                                                        capsys):
    from bisenet_deploy.cli.eval_main import main

    onnx_path, root = folder_dataset
    base = ["--backend", "onnxruntime", "--onnx", onnx_path, "--data", str(root), "--layout",
            "folders", "--threads", "1", "--no-progress", "-q"]
    report = tmp_path / "r.json"
    assert main(base + ["--json", str(report), "--plot"]) == 0
    assert is_ours(tmp_path / "r.png", "png")
    assert f"plot: {tmp_path / 'r.png'}" in capsys.readouterr().out
    theirs = tmp_path / "theirs.png"
    Image.new("RGB", (4, 4)).save(theirs)
    before = theirs.read_bytes()
    assert main(base + ["--plot", str(theirs)]) == 2  # refused before evaluating
    assert "--plot" in capsys.readouterr().err
    assert theirs.read_bytes() == before
