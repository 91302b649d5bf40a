"""bisenet-predict: colour label maps and overlays in the palette's colours, latency printed."""

import sys

import numpy as np
import pytest
from PIL import Image

from bisenet_deploy.datasets import get_dataset
from bisenet_deploy.evaluation.colorize import colorize, overlay
from bisenet_deploy.evaluation.predict import predict_paths
from bisenet_deploy.synthetic import synthetic_image

CITY = get_dataset("cityscapes")


def _colours(path):
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        arr = np.asarray(im)
    return arr, {tuple(int(v) for v in c) for c in arr.reshape(-1, 3)}


def test_legend_lists_the_classes_present_with_their_palette_colours():
    from bisenet_deploy.evaluation.legend import legend_entries, with_legend

    labels = np.zeros((40, 60), np.int64)
    labels[:, 40:] = 13  # car, a third of the pixels
    labels[0, 0] = 255  # ignore index: not a class
    entries = legend_entries(labels, CITY.palette, CITY.class_names)
    assert [text.split(": ")[0] for _, text in entries] == ["0 road", "13 car",
                                                           "255 not a class of the model"]
    assert entries[0][0] == tuple(CITY.palette[0]) and entries[1][1].endswith("33.3%")
    picture = colorize(labels, CITY.palette)
    out = with_legend(picture, labels, CITY.palette, CITY.class_names)
    assert out.shape[0] >= 40 and out.shape[1] > 60 and np.array_equal(out[:40, :60], picture)
    panel = {tuple(int(v) for v in c) for c in out[:, 60:].reshape(-1, 3)}
    assert tuple(CITY.palette[0]) in panel and tuple(CITY.palette[13]) in panel  # swatches
    assert tuple(CITY.palette[1]) not in panel  # sidewalk is not in this image
    many = np.arange(19).repeat(2).reshape(2, 19)  # more classes than the picture is high
    assert with_legend(colorize(many, CITY.palette), many, CITY.palette).shape[0] > 19 * 12


def test_colorize_and_overlay():
    labels = np.array([[0, 1], [18, 255]])
    rgb = colorize(labels, CITY.palette)
    assert rgb[0, 0].tolist() == list(CITY.palette[0])
    assert rgb[1, 0].tolist() == list(CITY.palette[18])
    assert rgb[1, 1].tolist() == [0, 0, 0]  # ignore / out of range
    img = np.full((2, 2, 3), 100, np.uint8)
    assert overlay(img, rgb, 0.5)[0, 0].tolist() == [114, 82, 114]  # (100 + (128, 64, 128)) / 2


@pytest.fixture(scope="module")
def exported(tiny_export):
    d, ckpt, onnx_path = tiny_export("labels")
    images = d / "images"
    images.mkdir()
    Image.fromarray(synthetic_image(128, 64, seed=1)).save(images / "street.png")
    Image.fromarray(synthetic_image(96, 80, seed=2)).save(images / "other size.jpg")
    return d, ckpt, onnx_path, images


def test_cli_onnx_writes_palette_pngs_and_prints_latency(exported, tmp_path, capsys):
    from bisenet_deploy.cli.predict_main import main

    d, ckpt, onnx_path, images = exported
    out = tmp_path / "out"
    code = main(["--onnx", onnx_path, str(images), "-o", str(out), "--threads", "1", "-q",
                 "--json", str(tmp_path / "p.json")])
    text = capsys.readouterr().out
    assert code == 0
    palette = {tuple(c) for c in CITY.palette}
    for stem, size in (("street", (128, 64)), ("other size", (96, 80))):
        labels, colours = _colours(out / f"{stem}_labels.png")
        assert labels.shape == (size[1], size[0], 3)  # at the image's own resolution
        assert colours <= palette
        ov, _ = _colours(out / f"{stem}_overlay.png")
        assert ov.shape[0] >= labels.shape[0] and ov.shape[1] > labels.shape[1]  # + legend
        assert f"{stem}" in text and "infer" in text and " ms" in text
    # the overlay is the blend of the image and the label colours, the legend beside it
    src = np.asarray(Image.open(images / "street.png"), np.float32)
    lab, _ = _colours(out / "street_labels.png")
    ov, _ = _colours(out / "street_overlay.png")
    h, w = lab.shape[:2]
    from bisenet_deploy.evaluation.legend import warning_band_height

    top = warning_band_height()  # below the RANDOM WEIGHTS band of this random-init model
    assert np.abs(ov[top:h, :w] - (0.5 * src + 0.5 * lab)[top:]).max() <= 1.0
    # --no-legend: the overlay alone, at the image's size
    bare = tmp_path / "bare"
    assert main(["--onnx", onnx_path, str(images / "street.png"), "-o", str(bare), "-q",
                 "--no-legend"]) == 0
    assert np.array_equal(_colours(bare / "street_overlay.png")[0], ov[:h, :w])
    assert (tmp_path / "p.json").exists()


def test_cli_torch_checkpoint(exported, tmp_path, capsys):
    from bisenet_deploy.cli.predict_main import main

    d, ckpt, onnx_path, images = exported
    code = main(["--checkpoint", ckpt, str(images / "street.png"), "-o", str(tmp_path),
                 "--network-size", "64x32", "--threads", "1", "-q"])
    assert code == 0
    # torch runs the same graph as the ONNX: identical pictures
    ort_out = tmp_path / "ort"
    assert main(["--onnx", onnx_path, str(images / "street.png"), "-o", str(ort_out), "-q"]) == 0
    a, _ = _colours(tmp_path / "street_labels.png")
    b, _ = _colours(ort_out / "street_labels.png")
    assert (a == b).mean() > 0.999
    # --backend torch with --onnx: PyTorch on that export's graph, whatever --network-size says
    graph_out = tmp_path / "graph"
    assert main(["--backend", "torch", "--onnx", onnx_path, "--checkpoint", ckpt,
                 str(images / "other size.jpg"), "-o", str(graph_out), "--network-size",
                 "128x128", "--threads", "1", "-q"]) == 0
    assert main(["--onnx", onnx_path, str(images / "other size.jpg"), "-o", str(ort_out),
                 "-q"]) == 0
    a, _ = _colours(graph_out / "other size_labels.png")
    b, _ = _colours(ort_out / "other size_labels.png")
    assert (a == b).all(axis=2).mean() > 0.999


def test_predict_paths_same_stem_does_not_overwrite(exported, tmp_path):
    from bisenet_deploy.runtime.factory import open_runner

    d, ckpt, onnx_path, images = exported
    other = tmp_path / "b"
    other.mkdir()
    Image.fromarray(synthetic_image(128, 64, seed=3)).save(other / "street.png")
    with open_runner("onnxruntime", onnx=onnx_path) as runner:
        res = predict_paths(runner, [str(images / "street.png"), str(other / "street.png")],
                            str(tmp_path / "o"))
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert names == ["street_2_labels.png", "street_2_overlay.png", "street_labels.png",
                     "street_overlay.png"]
    assert len(res) == 2 and all(r["infer_ms"] > 0 for r in res)


def test_video_without_opencv_says_what_to_install(exported, tmp_path, capsys, monkeypatch):
    from bisenet_deploy.cli.predict_main import main

    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` fails, as where it isn't installed
    d, ckpt, onnx_path, images = exported
    video = tmp_path / "drive.mp4"
    video.write_bytes(b"\x00" * 64)
    assert main(["--onnx", onnx_path, str(video), "-o", str(tmp_path / "o"), "-q"]) == 4
    err = capsys.readouterr().err
    assert "opencv-python-headless" in err and err.count("\n") == 1


def test_bad_inputs(exported, tmp_path, capsys):
    from bisenet_deploy.cli.predict_main import main

    d, ckpt, onnx_path, images = exported
    assert main(["--onnx", onnx_path, str(tmp_path / "nope.png"), "-o", str(tmp_path), "-q"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("x")
    assert main(["--onnx", onnx_path, str(tmp_path / "notes.txt"), "-o", str(tmp_path), "-q"]) == 2
    assert "unsupported file type" in capsys.readouterr().err
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert main(["--onnx", onnx_path, str(broken), "-o", str(tmp_path / "o2"), "-q"]) == 5
    assert "cannot read image" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()  # nothing written, not even an empty folder
    img = str(images / "street.png")
    assert main(["--onnx", onnx_path, img, "-o", str(broken), "-q"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["--checkpoint", ckpt, img, "-o", str(tmp_path / "o3"), "--network-size",
                 "100x64", "-q"]) == 2
    assert "--network-size" in capsys.readouterr().err
    assert not (tmp_path / "o3").exists()


def test_video_to_mp4_with_opencv(exported, tmp_path, capsys):
    cv2 = pytest.importorskip("cv2", reason="OpenCV not installed (pip install "
                                            "opencv-python-headless): video is optional")
    from bisenet_deploy.cli.predict_main import main

    d, ckpt, onnx_path, images = exported
    video = str(tmp_path / "drive.mp4")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (128, 64))
    for i in range(4):
        writer.write(np.ascontiguousarray(synthetic_image(128, 64, seed=i)[:, :, ::-1]))
    writer.release()
    out = tmp_path / "out"
    assert main(["--onnx", onnx_path, video, "-o", str(out), "--max-frames", "3", "-q"]) == 0
    assert "frame 2" in capsys.readouterr().out
    for name in ("drive_overlay.mp4", "drive_labels.mp4"):
        cap = cv2.VideoCapture(str(out / name))
        frames = 0
        while cap.read()[0]:
            frames += 1
        cap.release()
        assert frames == 3


def test_static_batch_models_are_fed_a_padded_batch(tmp_path):
    """A model with a fixed batch of 2 (e.g. an engine built for it) still predicts one image
    (predict, eval) and compares image by image (compare)."""
    from bisenet_deploy.evaluation import compare as cmp
    from bisenet_deploy.evaluation.predict import predict_image
    from bisenet_deploy.metadata import build_record
    from bisenet_deploy.portable.running.runner_base import Runner, TensorSpec
    from bisenet_deploy.runtime.torch_runner import default_export_info

    record = build_record(CITY.to_model_metadata("bisenetv2"))
    record["export"] = default_export_info(record["model"], input_size=(64, 32),
                                           model_size=(64, 32),
                                           batch={"dynamic": False, "size": 2})

    class Pairs(Runner):
        backend = "pairs"

        def __init__(self):
            Runner.__init__(self)
            self.metadata = record
            self.fed = []

        def input_spec(self):
            return TensorSpec("image", (2, 3, 32, 64), np.float32)

        def _activate(self):
            pass

        def _deactivate(self):
            pass

        def _infer(self, batch):
            self.fed.append(batch.shape[0])
            mean = batch.mean(axis=(1, 2, 3))  # each image's own label: its mean brightness
            labels = (np.abs(mean) * 1000).astype(np.int32) % 19
            return {"labels": np.broadcast_to(labels[:, None, None], (2, 32, 64)).copy()}

    images = [synthetic_image(64, 32, seed=s) for s in range(3)]
    with Pairs() as runner:
        result = predict_image(runner, images[0], CITY.palette)
        assert result["labels"].shape == (32, 64) and runner.fed == [2]
        per_image = [predict_image(runner, im, CITY.palette)["labels"][0, 0] for im in images]
        outs = cmp._run(runner, images)  # 2 + (1 padded to 2)
        assert runner.fed[-2:] == [2, 2] and len(outs) == 3
        assert [int(o["labels"][0, 0, 0]) for o in outs] == [int(v) for v in per_image]


def test_random_weights_are_warned_and_marked_on_every_overlay(exported, tmp_path, capsys):
    """bench, compare and eval say RANDOM WEIGHTS; predict says it too, and its overlays carry
    a red band saying so (the labels PNG stays the exact label map for tools)."""
    import copy

    from bisenet_deploy.cli.predict_main import main
    from bisenet_deploy.evaluation.legend import warning_band_height
    from bisenet_deploy.runtime.factory import open_runner

    d, ckpt, onnx_path, images = exported
    capsys.readouterr()
    assert main(["--onnx", onnx_path, str(images / "street.png"), "-o", str(tmp_path / "r"),
                 "-q"]) == 0
    assert "RANDOM WEIGHTS" in capsys.readouterr().err
    marked, _ = _colours(tmp_path / "r" / "street_overlay.png")
    band = marked[:4, :120].reshape(-1, 3)
    assert (band == (200, 0, 0)).all(axis=1).mean() > 0.5  # red band, white text on it
    labels, _ = _colours(tmp_path / "r" / "street_labels.png")
    assert labels.shape[:2] == (64, 128)

    with open_runner("onnxruntime", onnx=onnx_path) as runner:  # the same model, trained
        runner.metadata = copy.deepcopy(runner.metadata)
        runner.metadata["model"]["weights"] = "checkpoint"
        predict_paths(runner, [str(images / "street.png")], str(tmp_path / "t"))
    plain, _ = _colours(tmp_path / "t" / "street_overlay.png")
    assert (plain[:4, :120].reshape(-1, 3) == (200, 0, 0)).all(axis=1).mean() < 0.1
    top = warning_band_height()
    assert np.array_equal(plain[top:, :128], marked[top:, :128])  # only the band differs
