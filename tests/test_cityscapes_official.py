"""The Cityscapes benchmark's formats and scores: `--label-ids` PNGs, iIoU, category IoU, id checks.

The last test runs the official evaluation (cityscapesscripts' evalPixelLevelSemanticLabeling) on
`bisenet-predict --label-ids` outputs and compares every IoU and iIoU with `bisenet-eval`; it is
skipped where cityscapesscripts is not installed (pip install cityscapesscripts==2.3.0).
"""

import importlib.util
import json
import os

import numpy as np
import pytest
from PIL import Image

from bisenet_deploy.cli.eval_main import main as eval_main
from bisenet_deploy.cli.predict_main import main as predict_main
from bisenet_deploy.datasets import (
    CITYSCAPES_ID_TO_TRAINID,
    cityscapes_ids_to_trainids,
    get_dataset,
)
from bisenet_deploy.errors import InputError
from bisenet_deploy.evaluation import cityscapes_official as official
from bisenet_deploy.synthetic import synthetic_image

CITY = "aachen"
NAMES = [f"{CITY}_00000{i}_000019" for i in range(3)]
#: the label ids of the 19 evaluated classes, in train-id order
EVAL_LABEL_IDS = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]


def test_train_ids_map_back_to_the_official_label_ids():
    train = np.arange(19).reshape(1, 19)
    ids = official.train_ids_to_label_ids(train)
    assert ids.dtype == np.uint8
    assert ids.tolist()[0] == [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31,
                               32, 33]
    assert np.array_equal(cityscapes_ids_to_trainids(ids), train)
    assert {v: k for k, v in CITYSCAPES_ID_TO_TRAINID.items()} == {
        t: int(official.TRAINID_TO_ID[t]) for t in range(19)}
    with pytest.raises(InputError):
        official.train_ids_to_label_ids(np.array([[19]]))


def test_unknown_ground_truth_values_are_counted():
    raw = np.array([[7, 34, 34], [255, 33, 0]])
    assert official.unknown_ids(raw) == {34: 2, 255: 1}
    assert official.unknown_ids(np.arange(34)) == {}


def test_iiou_weighs_instances_by_the_average_size():
    # two persons (train id 11, label id 24): 100 px with 50 predicted right, 10 px all right;
    # 20 more pixels predicted person on road: FP 20.
    gt = np.zeros((10, 20), dtype=np.int64)           # road (train 0) everywhere
    inst = np.full((10, 20), 7, dtype=np.int64)        # label id 7, no instance
    pred = np.zeros((10, 20), dtype=np.int64)
    gt[:, :10] = 11
    inst[:, :10] = 24001                               # 100 px
    pred[:5, :10] = 11                                 # 50 of them right
    pred[5:, :10] = 12                                 # 50 predicted rider: still "human"
    gt[:1, 10:20] = 11
    inst[:1, 10:20] = 24002                            # 10 px
    pred[:1, 10:20] = 11
    pred[5:7, 10:20] = 11                              # 20 px of road predicted person
    stats = official.InstanceStats()
    stats.update(pred, inst)
    size = official.AVERAGE_INSTANCE_SIZE[11]
    tp_w = 50 * size / 100 + 10 * size / 10
    fn_w = 50 * size / 100
    from bisenet_deploy.evaluation.metrics import ConfusionMatrix

    cm = ConfusionMatrix(19)
    cm.update(pred, gt)
    scores = official.official_scores(cm.matrix, stats)
    assert scores["per_class_iiou"]["11"] == pytest.approx(tp_w / (tp_w + 20 + fn_w))
    assert scores["per_class_iiou"]["12"] == 0.0  # no rider in the truth, 50 px predicted: FP
    assert scores["per_class_iiou"]["13"] is None  # no car on either side: not scored
    assert scores["iiou"] == pytest.approx(tp_w / (tp_w + 20 + fn_w) / 2)
    # category human: the rider predictions count as hits; FP: the 20 road pixels
    human_tp_w = 100 * size / 100 + 10 * size / 10
    assert scores["category"]["human"]["iiou"] == pytest.approx(human_tp_w / (human_tp_w + 20))
    # category IoU (pixel level): human TP 110, FP 20, FN 0; flat TP 70, FN 20, FP 0
    assert scores["category"]["human"]["iou"] == pytest.approx(110 / 130)
    assert scores["category"]["flat"]["iou"] == pytest.approx(70 / 90)
    assert scores["category"]["sky"]["iou"] is None
    assert scores["category_miou"] == pytest.approx((110 / 130 + 70 / 90) / 2)


#: the Cityscapes categories by class name, written out here from the dataset's definition
#: (cityscapesscripts' labels.py), independently of cityscapes_official.CATEGORIES
CATEGORY_OF_CLASS = {
    "road": "flat", "sidewalk": "flat", "building": "construction", "wall": "construction",
    "fence": "construction", "pole": "object", "traffic light": "object",
    "traffic sign": "object", "vegetation": "nature", "terrain": "nature", "sky": "sky",
    "person": "human", "rider": "human", "car": "vehicle", "truck": "vehicle", "bus": "vehicle",
    "train": "vehicle", "motorcycle": "vehicle", "bicycle": "vehicle"}


def _full_confusion_matrix(seed=0):
    """A 19 x 19 train-id confusion matrix in which every class is confused with every other,
    within and across categories, each count different."""
    rng = np.random.default_rng(seed)
    matrix = rng.integers(1, 1000, size=(19, 19)).astype(np.int64)
    matrix[np.diag_indices(19)] += rng.integers(5000, 20000, size=19)
    return matrix


def test_category_iou_on_a_full_confusion_matrix():
    """Every class's category matters: moving any one class into another category changes the
    scores (every cross-category confusion is present, every count distinct)."""
    matrix = _full_confusion_matrix()
    names = get_dataset("cityscapes").class_names
    categories = sorted(set(CATEGORY_OF_CLASS.values()))
    index = [categories.index(CATEGORY_OF_CLASS[n]) for n in names]
    merged = np.zeros((len(categories), len(categories)), np.int64)  # truth x prediction
    for i in range(19):
        for j in range(19):
            merged[index[i], index[j]] += matrix[i, j]
    scores = official.official_scores(matrix, None)
    assert set(scores["category"]) == set(categories)
    expected = {}
    for k, name in enumerate(categories):
        tp = merged[k, k]
        expected[name] = tp / (merged[k, :].sum() + merged[:, k].sum() - tp)
        assert scores["category"][name]["iou"] == pytest.approx(expected[name], rel=1e-12), name
    assert scores["category_miou"] == pytest.approx(np.mean(list(expected.values())), rel=1e-12)


def test_category_iou_equals_cityscapesscripts_on_a_full_confusion_matrix(official_eval):
    matrix = _full_confusion_matrix(seed=1)
    conf = official_eval.generateMatrix(official_eval.args)  # label ids x label ids
    ids = official.TRAINID_TO_ID[:19].astype(np.int64)
    conf[np.ix_(ids, ids)] = matrix
    scores = official.official_scores(matrix, None)
    for name, entry in scores["category"].items():
        reference = official_eval.getIouScoreForCategory(name, conf, official_eval.args)
        assert entry["iou"] == pytest.approx(reference, rel=1e-12), name
    from bisenet_deploy.evaluation.metrics import ConfusionMatrix

    cm = ConfusionMatrix(19)
    cm.matrix[...] = matrix
    for train_id, name in enumerate(get_dataset("cityscapes").class_names):
        reference = official_eval.getIouScoreForLabel(int(ids[train_id]), conf,
                                                      official_eval.args)
        assert cm.iou()[train_id] == pytest.approx(reference, rel=1e-12), name


def test_crowd_and_unevaluated_instances_do_not_count():
    pred = np.full((4, 4), 13)
    inst = np.full((4, 4), 26)          # a car crowd region: label id only, no instance
    inst[0, 0] = 29001                  # a caravan instance: not evaluated
    stats = official.InstanceStats()
    stats.update(pred, inst)
    assert not stats.tp.any() and not stats.fn.any() and not stats.category_tp.any()


def test_cityscapes_model_check():
    city = {"class_names": ["road", "sidewalk", "building", "wall", "fence", "pole",
                            "traffic light", "traffic sign", "vegetation", "terrain", "sky",
                            "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                            "bicycle"], "num_classes": 19, "dataset": "cityscapes-mmseg"}
    assert official.is_cityscapes_model(city)
    other = dict(city, class_names=[f"class_{i}" for i in range(19)], dataset="custom")
    with pytest.raises(InputError) as exc:
        official.check_cityscapes_model(other, "--label-ids")
    assert "\n" not in str(exc.value) and "19 Cityscapes classes" in str(exc.value)


# ------------------------------------------------------------------ a small Cityscapes tree


def write_images(root):
    folder = root / "leftImg8bit" / "val" / CITY
    folder.mkdir(parents=True)
    for i, name in enumerate(NAMES):
        Image.fromarray(synthetic_image(256, 128, seed=i)).save(folder / f"{name}_leftImg8bit.png")
    return folder


def write_truth(root, predicted_ids, seed=0):
    """Ground truth made from predicted label ids, changed enough to score 0 < IoU < 1:
    blocks of other classes, instances of several sizes, a crowd region, ignored ids."""
    rng = np.random.default_rng(seed)
    folder = root / "gtFine" / "val" / CITY
    folder.mkdir(parents=True, exist_ok=True)
    for name, ids in zip(NAMES, predicted_ids):
        ids = ids.astype(np.int64).copy()
        flip = rng.random(ids.shape) < 0.1  # every evaluated class, in every category
        ids[flip] = rng.choice(EVAL_LABEL_IDS, size=int(flip.sum()))
        for k, label_id in enumerate(EVAL_LABEL_IDS):  # a block of each of the 19 classes
            ids[40:56, 10 + 12 * k:22 + 12 * k] = label_id
        ids[10:40, 20:90] = 26                   # cars
        ids[60:100, 150:170] = 24                # a person
        ids[100:128, :30] = 0                    # unlabeled: ignored
        ids[0:8, 200:256] = 9                    # parking: ignored in evaluation
        ids[90:110, 60:90] = 29                  # caravan: ignored, an instance all the same
        inst = ids.copy()
        yy, xx = np.mgrid[0:ids.shape[0], 0:ids.shape[1]]
        for label_id in (24, 25, 26, 27, 28, 31, 32, 33, 29):
            where = ids == label_id
            inst[where] = label_id * 1000 + 1 + (xx[where] // 40) + 10 * (yy[where] // 64)
        inst[10:40, 20:40][ids[10:40, 20:40] == 26] = 26   # a car crowd: no instance id
        Image.fromarray(ids.astype(np.uint8)).save(folder / f"{name}_gtFine_labelIds.png")
        Image.fromarray(inst.astype(np.uint16)).save(folder / f"{name}_gtFine_instanceIds.png")
    return folder


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """A Cityscapes tree, `bisenet-predict --label-ids` outputs for it (seeded random weights, the
    network at half the image size, as bisenet-eval's paper protocol runs it) and the truth."""
    root = tmp_path_factory.mktemp("cityscapes")
    images = write_images(root)
    out = root / "pred"
    assert predict_main([str(images), "-o", str(out), "--label-ids", "--network-size", "128x64",
                         "-q"]) == 0
    ids = [np.asarray(Image.open(out / f"{n}_leftImg8bit_labelIds.png")) for n in NAMES]
    write_truth(root, ids)
    return root, out, ids


def test_label_ids_png_is_uint8_label_ids(predicted, tmp_path):
    root, out, ids = predicted
    assert sorted(os.listdir(out)) == [f"{n}_leftImg8bit_labelIds.png" for n in NAMES]
    pictures = tmp_path / "pictures"  # the same run without --label-ids: colour label maps
    assert predict_main([str(root / "leftImg8bit" / "val" / CITY), "-o", str(pictures),
                         "--network-size", "128x64", "-q"]) == 0
    palette = np.array(get_dataset("cityscapes").palette)
    for name, label_ids in zip(NAMES, ids):
        with Image.open(out / f"{name}_leftImg8bit_labelIds.png") as im:
            assert im.mode == "L" and im.size == (256, 128)
        assert set(np.unique(label_ids)) <= set(CITYSCAPES_ID_TO_TRAINID)
        colour = np.asarray(Image.open(pictures / f"{name}_leftImg8bit_labels.png"))
        assert (colour == palette[cityscapes_ids_to_trainids(label_ids)]).all()
    assert len(set(np.unique(np.concatenate([i.ravel() for i in ids])))) >= 3


def test_label_ids_refused_for_other_models_and_videos(tmp_path, capsys):
    image = tmp_path / "street.png"
    Image.fromarray(synthetic_image(64, 64, seed=1)).save(image)
    out = tmp_path / "out"
    code = predict_main([str(image), "-o", str(out), "--label-ids", "--dataset", "ade20k",
                         "--network-size", "64x64"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "--label-ids needs a model of the 19 Cityscapes classes" in err[-1]
    assert not out.exists() or not os.listdir(out)
    video = tmp_path / "drive.mp4"
    video.write_bytes(b"not really a video")
    assert predict_main([str(image), str(video), "-o", str(out), "--label-ids",
                         "--network-size", "64x64"]) == 2
    assert "drive.mp4 is a video" in capsys.readouterr().err
    assert not out.exists() or not os.listdir(out)


def run_eval(root, tmp_path, *extra):
    report = tmp_path / "eval.json"
    code = eval_main(["--backend", "torch", "--data", str(root), "--protocol", "paper",
                      "--json", str(report), "--no-progress", "-q", *extra])
    return code, (json.loads(report.read_text()) if code == 0 else None)


def test_eval_reports_iiou_categories_and_unknown_ids(predicted, tmp_path, capsys):
    root, _out, _ids = predicted
    code, report = run_eval(root, tmp_path)
    assert code == 0
    result = report["results"][0]["cityscapes"]
    assert report["instance_level"] is True
    assert 0 < result["iiou"] < 1 and 0 < result["category_iiou"] < 1
    assert set(result["per_class_iiou"]) == {str(c) for c in range(11, 19)}
    assert set(result["category"]) == set(official.CATEGORIES)
    assert report["unknown_gt_values"]["pixels"] == 0
    table = capsys.readouterr().out
    assert "iIoU (class average)" in table and "category mIoU" in table and "iIoU person" in table


def test_eval_counts_and_strict_refuses_unknown_ids(tmp_path, capsys):
    root = tmp_path / "city"
    write_images(root)
    labels = root / "gtFine" / "val" / CITY
    labels.mkdir(parents=True)
    for name in NAMES:  # train ids saved by mistake: 255 is no label id
        ids = np.full((128, 256), 255, dtype=np.uint8)
        ids[:64] = 7
        Image.fromarray(ids).save(labels / f"{name}_gtFine_labelIds.png")
    code, report = run_eval(root, tmp_path, "--limit", "2")
    assert code == 0
    assert report["unknown_gt_values"] == {"pixels": 2 * 64 * 256, "images": 2,
                                           "values": {"255": 2 * 64 * 256}}
    assert report["instance_level"] is False
    assert report["results"][0]["cityscapes"]["iiou"] is None  # no *_gtFine_instanceIds.png
    out = capsys.readouterr().out
    assert "hold values that are no Cityscapes label id (255: 32768 px)" in out
    assert "iIoU" not in out
    code, _ = run_eval(root, tmp_path, "--strict")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "values [255] that are no Cityscapes label id" in err[-1] and "--strict" in err[-1]


# ------------------------------------------------------------------ against the official tool


@pytest.fixture
def official_eval(monkeypatch):
    if importlib.util.find_spec("cityscapesscripts") is None:
        pytest.skip("cityscapesscripts is not installed (pip install cityscapesscripts==2.3.0)")
    if not hasattr(np, "in1d"):  # numpy 2 removed it; cityscapesscripts 2.3.0 calls it
        monkeypatch.setattr(np, "in1d", np.isin, raising=False)
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as module

    for name, value in (("quiet", True), ("JSONOutput", False), ("evalInstLevelScore", True),
                        ("evalPixelAccuracy", False)):
        monkeypatch.setattr(module.args, name, value)
    return module


def test_iou_and_iiou_equal_cityscapesscripts(predicted, official_eval, tmp_path, monkeypatch):
    root, out, _ids = predicted
    gt = [str(root / "gtFine" / "val" / CITY / f"{n}_gtFine_labelIds.png") for n in NAMES]
    # the predictions are found in the output folder the way the official script's main() finds
    # them (CITYSCAPES_RESULTS): exactly one PNG per ground-truth image must match
    monkeypatch.setattr(official_eval.args, "predictionPath", str(out))
    monkeypatch.setattr(official_eval.args, "predictionWalk", None)
    preds = [official_eval.getPrediction(official_eval.args, g) for g in gt]
    assert preds == [str(out / f"{n}_leftImg8bit_labelIds.png") for n in NAMES]
    reference = official_eval.evaluateImgLists(preds, gt, official_eval.args)
    code, report = run_eval(root, tmp_path)
    assert code == 0
    ours = report["results"][0]

    def same(value, expected):
        if expected != expected:  # NaN: the class is not scored
            return value is None
        return value is not None and abs(value - expected) <= 1e-9

    per_class_iiou = ours["cityscapes"]["per_class_iiou"]
    scored = 0
    for entry in ours["per_class"]:
        assert same(entry["iou"], reference["classScores"][entry["name"]]), entry["name"]
        iiou = per_class_iiou.get(str(entry["id"]))
        assert same(iiou, reference["classInstScores"][entry["name"]]), entry["name"]
        scored += iiou is not None and iiou > 0
    assert scored >= 2  # the comparison covers real instance scores, not only empty classes
    assert all(e["iou"] is not None for e in ours["per_class"]) and len(ours["per_class"]) == 19
    assert all(v is not None for v in per_class_iiou.values()) and len(per_class_iiou) == 8
    assert same(ours["miou"], reference["averageScoreClasses"])
    assert same(ours["cityscapes"]["iiou"], reference["averageScoreInstClasses"])
    for name, scores in ours["cityscapes"]["category"].items():
        assert same(scores["iou"], reference["categoryScores"][name]), name
        assert same(scores["iiou"], reference["categoryInstScores"][name]), name
    assert same(ours["cityscapes"]["category_miou"], reference["averageScoreCategories"])
    assert same(ours["cityscapes"]["category_iiou"], reference["averageScoreInstCategories"])
    print(f"bisenet-eval vs cityscapesscripts: mIoU {ours['miou']:.6f} / "
          f"{reference['averageScoreClasses']:.6f}, iIoU {ours['cityscapes']['iiou']:.6f} / "
          f"{reference['averageScoreInstClasses']:.6f}, max |difference| "
          f"{_max_difference(ours, reference):.2g}")


def _max_difference(ours, reference):
    pairs = [(e["iou"], reference["classScores"][e["name"]]) for e in ours["per_class"]]
    pairs += [(ours["cityscapes"]["per_class_iiou"].get(str(e["id"])),
               reference["classInstScores"][e["name"]]) for e in ours["per_class"]]
    return max((abs(a - b) for a, b in pairs if a is not None), default=0.0)


def test_the_default_setup_installs_the_reference_implementations():
    """scripts/setup_env.sh (every developer's setup, and CI's) installs cityscapesscripts and
    mmsegmentation with the test tools, so the comparisons above and tests/test_mmseg_reference.py
    run everywhere instead of skipping; CI does not install them a second way."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "scripts", "setup_env.sh"), encoding="utf-8") as f:
        setup = f.read()
    with_tests = setup.split("*,test,*)", 1)[1].split(";;", 1)[0]
    for pin in ("cityscapesscripts==2.3.0", "mmsegmentation==1.2.2", "mmengine==",
                "mmcv-lite=="):
        assert pin in with_tests, pin
    with open(os.path.join(root, ".ci", "run"), encoding="utf-8") as f:
        ci = f.read()
    assert "scripts/setup_env.sh" in ci
    assert "cityscapesscripts==" not in ci and "mmsegmentation==" not in ci
