"""Metrics, tolerances, dataset layouts and mIoU evaluation (with a tiny numpy runner)."""

import json

import numpy as np
import pytest
from PIL import Image

from bisenet_deploy.datasets import get_dataset
from bisenet_deploy.errors import InputError
from bisenet_deploy.comparison import profiles as tolerances
from bisenet_deploy.evaluation.datasets_io import find_samples, read_label
from bisenet_deploy.evaluation.evaluate import (
    EvalTarget,
    evaluate,
    format_table,
    labels_at,
)
from bisenet_deploy.evaluation.metrics import (
    ConfusionMatrix,
    resize_labels_nearest,
    resize_logits_argmax,
)
from bisenet_deploy.metadata import ExportInfo, build_record
from bisenet_deploy.portable.running.runner_base import Runner, TensorSpec
from bisenet_deploy.synthetic import synthetic_image

CITY = get_dataset("cityscapes")
W, H = 32, 16


class ColourRunner(Runner):
    """Predicts the palette class nearest to each pixel's colour; optionally wrong in a corner."""

    backend = "fake"

    def __init__(self, width=W, height=H, wrong_corner=0, outputs=("labels", "logits")):
        super().__init__()
        info = ExportInfo(input_name="image", input_size=[width, height],
                          model_size=[width, height],
                          input_dtype="float32", channel_order="rgb", normalize="in-graph",
                          output="both", output_names=list(outputs), target="trt10",
                          precision="fp32", opset=17, batch={"dynamic": False, "size": 1})
        self.metadata = build_record(CITY.to_model_metadata("bisenetv2"), info)
        self.size = (width, height)
        self.wrong_corner = wrong_corner
        self.outputs = outputs
        self.palette = np.asarray(CITY.palette, np.float32)

    def input_spec(self):
        return TensorSpec("image", (1, 3, self.size[1], self.size[0]), np.float32)

    def _activate(self):
        pass

    def _deactivate(self):
        pass

    def _infer(self, batch):
        pix = np.transpose(batch, (0, 2, 3, 1))  # N H W 3
        d = ((pix[..., None, :] - self.palette) ** 2).sum(-1)  # N H W C
        logits = np.transpose(-d / 1000.0, (0, 3, 1, 2)).astype(np.float32)
        if self.wrong_corner:
            k = self.wrong_corner
            logits[:, :, :k, :k] = 0
            logits[:, 0, :k, :k] = 1.0  # says "road" there
        out = {"labels": logits.argmax(1).astype(np.int32), "logits": logits}
        return {k: out[k] for k in self.outputs}


# -- metrics -------------------------------------------------------------------------------------

def test_confusion_matrix_matches_hand_computation():
    gt = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 1, 0]])
    cm = ConfusionMatrix(4, ignore_index=255)
    cm.update(pred, gt)
    # pairs (gt, pred): (0,0) (0,1) (1,1) (1,1) (2,1); the 255 pixel is ignored
    # class 0: TP 1, FN 1, FP 0 -> 1/2 ; class 1: TP 2, FP 2 -> 2/4 ; class 2: TP 0 -> 0
    iou = cm.iou()
    assert iou[:3].tolist() == [0.5, 0.5, 0.0]
    assert np.isnan(iou[3])  # absent on both sides: left out of the mean
    assert cm.miou() == pytest.approx(1 / 3)
    assert cm.pixel_accuracy() == pytest.approx(3 / 5)
    s = cm.summary(["a", "b", "c", "d"])
    assert s["per_class"][3]["iou"] is None and s["classes_present"] == 3 and s["pixels"] == 5


def test_confusion_matrix_rows_are_ground_truth_columns_predictions():
    """IoU and pixel accuracy read the same from a transposed matrix; the ground-truth pixel
    counts and the per-class recall do not, so they pin the orientation."""
    gt = np.array([[0, 0, 0, 1], [2, 2, 255, 1]])
    pred = np.array([[0, 1, 2, 1], [2, 0, 1, 1]])
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(pred, gt)
    # (gt, pred): (0,0) (0,1) (0,2) (1,1) (2,2) (2,0) (1,1); the 255 pixel is ignored
    assert cm.matrix.tolist() == [[1, 1, 1],
                                  [0, 2, 0],
                                  [1, 0, 1]]
    per_class = cm.summary(["a", "b", "c"])["per_class"]
    assert [c["gt_pixels"] for c in per_class] == [3, 2, 2]  # columns would give [2, 3, 2]
    assert cm.class_accuracy().tolist() == [1 / 3, 1.0, 1 / 2]
    assert sum(c["gt_pixels"] for c in per_class) == cm.total == 7


def test_confusion_matrix_accumulates_over_images_not_per_image_mean():
    cm = ConfusionMatrix(2, ignore_index=255)
    cm.update(np.array([0, 0, 0, 0]), np.array([0, 0, 0, 1]))  # class 1 missed once
    cm.update(np.array([1]), np.array([1]))
    # totals: class0 TP3 FP1 -> 3/4 ; class1 TP1 FN1 -> 1/2
    assert cm.miou() == pytest.approx((3 / 4 + 1 / 2) / 2)


def test_confusion_matrix_refuses_unmapped_ground_truth_and_bad_predictions():
    cm = ConfusionMatrix(3)
    with pytest.raises(InputError, match="train ids"):
        cm.update(np.zeros(3), np.array([0, 1, 26]))
    with pytest.raises(InputError, match="outside 0..2"):
        cm.update(np.array([0, 5, 1]), np.array([0, 1, 1]))
    with pytest.raises(InputError, match="shape"):
        cm.update(np.zeros((2, 2)), np.zeros((2, 3)))


def test_resizes():
    lab = np.array([[0, 1], [2, 3]])
    up = resize_labels_nearest(lab, 4, 4)
    assert up.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    assert resize_labels_nearest(up, 2, 2).tolist() == lab.tolist()
    logits = np.zeros((2, 2, 2), np.float32)
    logits[0] = 0.5
    logits[1, :, 1] = 1.0  # bilinear: class 1 reaches 0.25 / 0.75 at the inner output columns
    assert resize_logits_argmax(logits, 4, 2).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1]]


def test_labels_at_prefers_logits_when_resizing():
    logits = np.zeros((1, 2, 1, 2), np.float32)
    logits[0, 1, 0, 1] = 1.0
    out = {"labels": np.array([[[0, 1]]], np.int32), "logits": logits}
    assert labels_at(out, 2, 1).tolist() == [[0, 1]]
    assert labels_at({"labels": out["labels"]}, 4, 1).tolist() == [[0, 0, 1, 1]]
    # bilinear logits: class 1 scores 0.25 > 0 at the second column, so the logits path differs
    # from nearest labels there, and it is the one taken whenever logits are available
    assert labels_at({"logits": logits}, 4, 1).tolist() == [[0, 1, 1, 1]]
    assert labels_at(out, 4, 1).tolist() == [[0, 1, 1, 1]]


# -- tolerances ----------------------------------------------------------------------------------

def test_tolerance_defaults_and_overrides():
    fp32 = tolerances.resolve("fp32")
    fp16 = tolerances.resolve("fp16")
    assert fp32["logits"]["max_rel"] < fp16["logits"]["max_rel"]
    assert fp32["labels"]["min_identical"] > fp16["labels"]["min_identical"]
    assert tolerances.resolve("int8")["logits"]["max_rel"] is None
    ov = tolerances.parse_overrides(["labels.min_identical=0.5", "fp16.logits.max_rel=none"])
    assert tolerances.resolve("fp32", ov)["labels"]["min_identical"] == 0.5
    assert tolerances.resolve("fp16", ov)["logits"]["max_rel"] is None
    assert tolerances.resolve("fp32", ov)["logits"]["max_rel"] == fp32["logits"]["max_rel"]
    # defaults are not mutated by resolving
    assert tolerances.DEFAULT_TOLERANCES["fp32"]["labels"]["min_identical"] == 0.9999
    for bad in ["labels.min_identical", "labels.nope=1", "fp64.labels.min_identical=1",
                "labels.min_identical=abc", "weights.max_abs=1"]:
        with pytest.raises(InputError):
            tolerances.parse_overrides([bad])


def test_tolerance_file(tmp_path):
    p = tmp_path / "tol.json"
    p.write_text(json.dumps({"fp16": {"labels": {"min_identical": 0.9}}}))
    ov = tolerances.load_tolerance_file(str(p))
    assert tolerances.resolve("fp16", ov)["labels"]["min_identical"] == 0.9
    p.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        tolerances.load_tolerance_file(str(p))


def test_judge_directions():
    checks = tolerances.judge("labels", {"identical": 0.95, "invalid": 0, "min_class_iou": None},
                              {"min_identical": 0.99, "max_invalid": 0, "min_class_iou": 0.9})
    by = {c["check"]: c["passed"] for c in checks}
    assert by == {"labels.min_identical": False, "labels.max_invalid": True}
    checks = tolerances.judge("logits", {"max_rel": float("nan")}, {"max_rel": 1.0})
    assert checks[0]["passed"] is False  # NaN never passes


# -- datasets ------------------------------------------------------------------------------------

# train id -> a Cityscapes label id that maps to it (independent of the library's table)
TRAIN_TO_ID = {0: 7, 2: 11, 8: 21, 10: 23, 13: 26}


def _scene(seed):
    """A W x H train-id map with a few classes and an ignored patch, and its RGB image."""
    rng = np.random.default_rng(seed)
    train = np.zeros((H, W), np.int64)
    train[: H // 3] = 10          # sky
    train[H // 3: H // 2] = 2     # building
    train[H // 2:, : W // 4] = 8  # vegetation
    x = int(rng.integers(8, 20))
    train[H // 2 + 2:, x:x + 8] = 13  # car
    image = np.asarray(CITY.palette, np.uint8)[train]
    train[-2:, -4:] = 255  # ignored (e.g. ego vehicle)
    return train, image


def make_dataset(root, layout, n=3):
    root.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in range(n):
        train, image = _scene(i)
        if layout == "cityscapes":
            ids = np.zeros_like(train)  # 255 -> label id 1 (ego vehicle, ignored)
            ids[train == 255] = 1
            for t, lid in TRAIN_TO_ID.items():
                ids[train == t] = lid
            city = "aachen" if i < 2 else "bochum"
            d_img = root / "leftImg8bit" / "val" / city
            d_gt = root / "gtFine" / "val" / city
            d_img.mkdir(parents=True, exist_ok=True)
            d_gt.mkdir(parents=True, exist_ok=True)
            name = f"{city}_{i:06d}_000019"
            Image.fromarray(image).save(d_img / f"{name}_leftImg8bit.png")
            Image.fromarray(ids.astype(np.uint8)).save(d_gt / f"{name}_gtFine_labelIds.png")
            # distractors the layout must skip
            Image.fromarray(image).save(d_gt / f"{name}_gtFine_color.png")
            truth[f"{city}/{name}"] = train
        else:
            (root / "images").mkdir(exist_ok=True)
            (root / "labels").mkdir(exist_ok=True)
            Image.fromarray(image).save(root / "images" / f"frame{i}.png")
            Image.fromarray(train.astype(np.uint8)).save(root / "labels" / f"frame{i}.png")
            truth[f"frame{i}"] = train
    return truth


@pytest.mark.parametrize("layout", ["cityscapes", "folders"])
def test_layouts_find_and_map_labels(tmp_path, layout):
    truth = make_dataset(tmp_path / layout, layout)
    samples = find_samples(str(tmp_path / layout), layout, "val")
    assert [s.name for s in samples] == sorted(truth)
    for s in samples:
        assert read_label(s, layout).tolist() == truth[s.name].tolist()


def test_cityscapes_id_mapping_matches_reference_table(tmp_path):
    # every label id 0..33 written into a labelIds PNG comes back as its train id or 255
    table = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
             25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    d_img = tmp_path / "leftImg8bit" / "val" / "x"
    d_gt = tmp_path / "gtFine" / "val" / "x"
    d_img.mkdir(parents=True)
    d_gt.mkdir(parents=True)
    ids = np.arange(36, dtype=np.uint8).reshape(1, 36)
    Image.fromarray(np.zeros((1, 36, 3), np.uint8)).save(d_img / "x_0_0_leftImg8bit.png")
    Image.fromarray(ids).save(d_gt / "x_0_0_gtFine_labelIds.png")
    (sample,) = find_samples(str(tmp_path), "cityscapes", "val")
    got = read_label(sample, "cityscapes")[0].tolist()
    assert got == [table.get(i, 255) for i in range(36)]


def test_layout_errors_are_clear(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        find_samples(str(tmp_path / "nope"), "cityscapes")
    make_dataset(tmp_path / "cs", "cityscapes")
    with pytest.raises(InputError, match="leftImg8bit/train"):
        find_samples(str(tmp_path / "cs"), "cityscapes", "train")
    gt = next((tmp_path / "cs" / "gtFine" / "val" / "aachen").glob("*_labelIds.png"))
    gt.unlink()
    with pytest.raises(InputError, match="1 of 3 images have no"):
        find_samples(str(tmp_path / "cs"), "cityscapes")
    make_dataset(tmp_path / "f", "folders")
    (tmp_path / "f" / "labels" / "frame1.png").unlink()
    with pytest.raises(InputError, match="frame1"):
        find_samples(str(tmp_path / "f"), "folders")
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "labels").mkdir()
    with pytest.raises(InputError, match="no images"):
        find_samples(str(tmp_path / "empty"), "folders")
    with pytest.raises(InputError, match="layout"):
        find_samples(str(tmp_path / "f"), "coco")
    # a colour PNG instead of ids is refused, naming the right file kind
    (tmp_path / "c" / "images").mkdir(parents=True)
    (tmp_path / "c" / "labels").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "c" / "images" / "a.png")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "c" / "labels" / "a.png")
    (s,) = find_samples(str(tmp_path / "c"), "folders")
    with pytest.raises(InputError, match="single-channel"):
        read_label(s, "folders")


# -- evaluate ------------------------------------------------------------------------------------

def _expected_miou(truths, wrong_corner):
    """Independent computation: TP/FP/FN per class by counting, mean over the present classes."""
    tp, fp, fn = {}, {}, {}
    for train in truths:
        pred = train.copy()
        pred[:wrong_corner, :wrong_corner] = 0
        for y in range(H):
            for x in range(W):
                g, p = int(train[y, x]), int(pred[y, x])
                if g == 255:
                    continue
                if g == p:
                    tp[g] = tp.get(g, 0) + 1
                else:
                    fn[g] = fn.get(g, 0) + 1
                    fp[p] = fp.get(p, 0) + 1
    classes = set(tp) | set(fp) | set(fn)
    ious = [tp.get(c, 0) / (tp.get(c, 0) + fp.get(c, 0) + fn.get(c, 0)) for c in classes]
    return sum(ious) / len(ious)


@pytest.mark.parametrize("layout", ["cityscapes", "folders"])
def test_evaluate_miou_matches_independent_count(tmp_path, layout):
    truth = make_dataset(tmp_path, layout)
    samples = find_samples(str(tmp_path), layout, "val")
    good = ColourRunner()
    bad = ColourRunner(wrong_corner=6)
    with good, bad:
        report = evaluate([EvalTarget("good", good), EvalTarget("bad", bad)], samples,
                          layout=layout, num_classes=19, class_names=CITY.class_names,
                          progress=False)
    good_r, bad_r = report["results"]
    assert good_r["miou"] == pytest.approx(1.0)
    assert bad_r["miou"] == pytest.approx(_expected_miou(list(truth.values()), 6))
    assert bad_r["miou"] < 1.0
    assert bad_r["miou_delta_vs_first"] == pytest.approx(bad_r["miou"] - 1.0)
    assert good_r["protocol"]["protocol"] == "full"
    text = format_table(report)
    assert "mIoU" in text and "sky" in text and "good" in text and "bad" in text
    json.dumps(report)


def test_evaluate_resizes_predictions_to_label_size(tmp_path):
    make_dataset(tmp_path, "folders")
    samples = find_samples(str(tmp_path), "folders")
    # a graph at half the label size: logits are upsampled bilinearly then argmax'ed
    with ColourRunner(W // 2, H // 2) as small, \
            ColourRunner(W // 2, H // 2, outputs=("labels",)) as small_labels:
        report = evaluate([EvalTarget("logits", small), EvalTarget("labels", small_labels)],
                          samples, layout="folders", num_classes=19, progress=False, limit=2)
    assert report["images"] == 2
    for r in report["results"]:
        assert r["protocol"]["network_size"] == [W // 2, H // 2]
        assert 0.6 < r["miou"] <= 1.0


def test_evaluate_refuses_class_count_mismatch(tmp_path):
    make_dataset(tmp_path, "folders", n=1)
    samples = find_samples(str(tmp_path), "folders")
    with ColourRunner() as r:
        with pytest.raises(InputError, match="19 classes but the dataset has 5"):
            evaluate([EvalTarget("x", r)], samples, layout="folders", num_classes=5,
                     progress=False)


def test_evaluate_refuses_a_non_cityscapes_model_on_the_cityscapes_layout(tmp_path):
    # an ADE20K model (150 classes) scored against Cityscapes train ids gave a silent mIoU
    make_dataset(tmp_path, "cityscapes", n=1)
    samples = find_samples(str(tmp_path), "cityscapes")
    with ColourRunner() as r:
        r.metadata["model"]["num_classes"] = 150
        with pytest.raises(InputError, match="19 Cityscapes train ids but the model predicts 150"):
            evaluate([EvalTarget("x", r)], samples, layout="cityscapes", num_classes=150,
                     progress=False)


def test_protocol_network_sizes():
    from bisenet_deploy.evaluation.backends import network_size
    from bisenet_deploy.evaluation.evaluate import describe_protocol

    assert network_size((2048, 1024), "paper") == (1024, 512)
    assert network_size((2048, 1024), "full") == (2048, 1024)
    rec = {"export": {"input_size": [2048, 1024], "model_size": [1024, 512]}}
    assert describe_protocol(rec, [2048, 1024])["protocol"] == "paper"
    rec = {"export": {"input_size": [2048, 1024], "model_size": [2048, 1024]}}
    assert describe_protocol(rec, [2048, 1024])["protocol"] == "full"


# -- bisenet-eval end to end on a tiny export ----------------------------------------------------

@pytest.fixture(scope="module")
def exported(tiny_export):
    d, ckpt, onnx_path = tiny_export("labels")
    data = d / "cityscapes"
    for i in range(2):
        img_dir = data / "leftImg8bit" / "val" / "ulm"
        gt_dir = data / "gtFine" / "val" / "ulm"
        img_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(synthetic_image(128, 64, seed=i)).save(
            img_dir / f"ulm_{i:06d}_000019_leftImg8bit.png")
        ids = np.random.default_rng(i).choice([0, 7, 8, 11, 21, 23, 26], size=(64, 128))
        Image.fromarray(ids.astype(np.uint8)).save(
            gt_dir / f"ulm_{i:06d}_000019_gtFine_labelIds.png")
    return d, ckpt, onnx_path, data


def test_cli_eval_torch_and_onnxruntime_side_by_side(exported, capsys):
    from bisenet_deploy.cli.eval_main import main

    d, ckpt, onnx_path, data = exported
    out = d / "eval.json"
    code = main(["--backend", "torch", "onnxruntime", "--checkpoint", ckpt, "--onnx", onnx_path,
                 "--data", str(data), "--protocol", "both", "--json", str(out), "--threads", "1",
                 "--no-progress", "-q"])
    text = capsys.readouterr().out
    assert code == 0
    report = json.loads(out.read_text())
    paper, full, ort = report["results"]
    assert [r["backend"] for r in report["results"]] == ["torch (paper)", "torch (full)",
                                                         "onnxruntime"]
    assert paper["protocol"]["network_size"] == [64, 32]
    assert paper["protocol"]["protocol"] == "paper"
    assert full["protocol"]["network_size"] == [128, 64] and full["protocol"]["protocol"] == "full"
    # PyTorch at the paper protocol runs the exported graph: the same confusion matrix
    assert ort["miou"] == pytest.approx(paper["miou"], abs=1e-9)
    assert ort["pixel_accuracy"] == pytest.approx(paper["pixel_accuracy"], abs=1e-9)
    assert report["images"] == 2 and report["num_classes"] == 19
    assert paper["pixels"] == sum(c["gt_pixels"] for c in paper["per_class"])
    assert np.asarray(paper["confusion_matrix"]).sum() == paper["pixels"]
    assert np.asarray(paper["confusion_matrix"]).shape == (19, 19)
    assert "mIoU vs torch (paper)" in text and "road" in text
    assert report["command"].startswith("bisenet-eval --backend torch onnxruntime ")


def test_cli_eval_errors(exported, capsys):
    from bisenet_deploy.cli.eval_main import main

    d, ckpt, onnx_path, data = exported
    assert main(["--backend", "onnxruntime", "--onnx", onnx_path, "--data", str(data),
                 "--layout", "folders", "-q"]) == 2
    assert "folders layout needs" in capsys.readouterr().err
    assert main(["--backend", "tensorrt", "--data", str(data), "-q"]) == 2
    assert "needs an engine" in capsys.readouterr().err
    # an unwritable report or a bad network size is refused before any image is evaluated
    assert main(["--backend", "onnxruntime", "--onnx", onnx_path, "--data", str(data),
                 "--json", str(d / "tiny.onnx" / "r.json"), "-q"]) == 2
    assert "--json" in capsys.readouterr().err
    assert main(["--backend", "torch", "--checkpoint", ckpt, "--data", str(data),
                 "--network-size", "64x40", "-q"]) == 2
    assert "--network-size" in capsys.readouterr().err


def test_model_source_loads_the_weights_once(monkeypatch):
    """The graph record and the runner of one torch backend share one load of the weights."""
    from bisenet_deploy import checkpoint
    from bisenet_deploy.evaluation.backends import ModelSource, parse_spec

    calls = []
    real = checkpoint.load_model

    def counting(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "load_model", counting)
    source = ModelSource()
    record = source.torch_record(parse_spec("torch"), (64, 32), (64, 32))
    model, meta = source.loaded(None, record["model"])
    assert len(calls) == 1 and meta.num_classes == 19
    source.loaded(None, {"arch": "bisenetv2", "num_classes": 7})  # another model: loaded anew
    assert len(calls) == 2
