"""INT8 calibration inputs are exactly what the graph sees at inference time.

Calibration batches come from `CalibrationBatches` (folder -> prepare_input with the ONNX's record).
The check runs the batches through onnxruntime: a graph that normalizes in-graph (and flips BGR to
RGB) fed its calibration batches must produce the same network-body input as a `--normalize none`
graph fed its own calibration batches, and both must equal the normalization computed by hand.
"""

import os

import numpy as np
import onnxruntime as ort
import pytest
from support.fake_trt import fake_trt
from support.onnx_graphs import MEAN, STD, preprocessing_graph
from support.records import engine_record as make_record

from bisenet_deploy.errors import InputError, MissingDependencyError
from bisenet_deploy.portable.building import calibrator


def _images(folder, count=5, size=(80, 48), seed=0, png=0):
    rng = np.random.default_rng(seed)
    images = []
    os.makedirs(str(folder), exist_ok=True)
    for i in range(count):
        img = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        images.append(img)
        if i < png:
            from PIL import Image
            Image.fromarray(img).save(os.path.join(str(folder), "img%02d.png" % i))
        else:
            np.save(os.path.join(str(folder), "img%02d.npy" % i), img)
    return images


def _run(model, batch):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"image": batch})[0]


def _by_hand(image_rgb, width, height):
    from bisenet_deploy.portable.running.preprocess import resize_bilinear
    x = resize_bilinear(image_rgb, width, height)
    x = (x - np.float32(255) * np.asarray(MEAN, np.float32)) / (np.float32(255) * np.asarray(STD, np.float32))
    return np.transpose(x, (2, 0, 1))


@pytest.mark.parametrize("graph_order", ["rgb", "bgr"])
def test_calibration_batches_equal_in_graph_and_prenormalized(tmp_path, graph_order):
    images = _images(tmp_path / "calib", count=5, png=2)
    in_graph = make_record(normalize="in-graph", channel_order=graph_order)
    none = make_record(normalize="none", channel_order="rgb")
    paths = calibrator.list_calibration_images(str(tmp_path / "calib"))
    assert [os.path.basename(p) for p in paths] == ["img%02d.%s" % (i, "png" if i < 2 else "npy")
                                                   for i in range(5)]
    batches_a = list(calibrator.CalibrationBatches(paths, in_graph, batch_size=2))
    batches_b = list(calibrator.CalibrationBatches(paths, none, batch_size=2))
    assert len(batches_a) == 2  # 5 images, batches of 2: the fifth is left out
    graph_a, graph_b = preprocessing_graph(in_graph), preprocessing_graph(none)
    for n, (a, b) in enumerate(zip(batches_a, batches_b)):
        assert a.shape == b.shape == (2, 3, 32, 64) and a.dtype == b.dtype == np.float32
        seen_a, seen_b = _run(graph_a, a), _run(graph_b, b)
        np.testing.assert_allclose(seen_a, seen_b, rtol=0, atol=2e-5)
        for k in range(2):
            want = _by_hand(images[2 * n + k], 64, 32)
            np.testing.assert_allclose(seen_a[k], want, rtol=0, atol=2e-5)


def test_uint8_graph_input(tmp_path):
    _images(tmp_path / "c", count=2, size=(64, 32))
    rec = make_record(normalize="in-graph", input_dtype="uint8", channel_order="bgr")
    batches = list(calibrator.CalibrationBatches(
        calibrator.list_calibration_images(str(tmp_path / "c")), rec, batch_size=2))
    assert batches[0].dtype == np.uint8 and batches[0].shape == (2, 3, 32, 64)
    seen = _run(preprocessing_graph(rec), batches[0])
    ref = _run(preprocessing_graph(make_record(normalize="none")), list(
        calibrator.CalibrationBatches(calibrator.list_calibration_images(str(tmp_path / "c")),
                                      make_record(normalize="none"), batch_size=2))[0])
    np.testing.assert_allclose(seen, ref, rtol=0, atol=2e-5)


def test_wrong_calibration_images_are_refused(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    with pytest.raises(InputError, match="no calibration images"):
        calibrator.list_calibration_images(str(folder))
    np.save(str(folder / "x.npy"), np.zeros((4, 4), np.float32))
    with pytest.raises(InputError, match="H x W x 3 uint8"):
        list(calibrator.CalibrationBatches([str(folder / "x.npy")], make_record()))
    with pytest.raises(InputError, match="cannot fill one batch"):
        calibrator.CalibrationBatches([str(folder / "x.npy")], make_record(), batch_size=2)
    with pytest.raises(InputError, match="does not exist"):
        calibrator.list_calibration_images(str(tmp_path / "nope"))


def test_png_without_opencv_or_pillow_says_what_to_do(tmp_path, monkeypatch):
    _images(tmp_path / "c", count=2, png=1)
    monkeypatch.setattr(calibrator, "_image_reader", lambda: None)
    with pytest.raises(MissingDependencyError, match=r"\.npy"):
        calibrator.list_calibration_images(str(tmp_path / "c"))


def test_calibration_cache_round_trip(tmp_path):
    path = str(tmp_path / "sub" / "m.calib.cache")
    assert calibrator.read_calibration_cache(path) is None
    blob = b"TRT-8201-EntropyCalibration2\nimage: 3c010a14\n"
    calibrator.write_calibration_cache(path, blob)
    assert calibrator.read_calibration_cache(path) == blob
    calibrator.write_calibration_cache(path, bytearray(b"second"))
    assert calibrator.read_calibration_cache(path) == b"second"
    assert [n for n in os.listdir(str(tmp_path / "sub")) if n.endswith(".tmp")] == []
    open(path, "wb").close()
    assert calibrator.read_calibration_cache(path) is None  # an empty cache means recalibrate


def test_exported_graphs_see_the_same_from_calibration_batches(tmp_path):
    """With the real exporter: an in-graph (BGR input) and a --normalize none export of the same
    network give the same logits when each is fed its own calibration batches, the records being
    read from the ONNX files the way the Jetson builder reads them (no onnx package)."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from bisenet_deploy.checkpoint import load_model
    from bisenet_deploy.export.pipeline import ExportOptions, export_onnx
    from bisenet_deploy.portable.files.onnx_reader import read_onnx_summary, record_from_summary

    loaded = load_model(None, arch="bisenetv2-coincheung", dataset="cityscapes", seed=0)
    _images(tmp_path / "calib", count=2, size=(160, 96))
    paths = calibrator.list_calibration_images(str(tmp_path / "calib"))
    logits = []
    for normalize, order in (("in-graph", "bgr"), ("none", None)):
        path = str(tmp_path / ("%s.onnx" % normalize))
        export_onnx(ExportOptions(output_path=path, target="trt8.2", output="logits",
                                  normalize=normalize, channel_order=order, input_size=(128, 64),
                                  model_size=(64, 32), simplify=False, parity=False),
                    loaded=tuple(loaded))
        with open(path, "rb") as f:
            record = record_from_summary(read_onnx_summary(f.read()))
        assert record["export"]["normalize"] == normalize
        batch = next(iter(calibrator.CalibrationBatches(paths, record, batch_size=1)))
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        logits.append(sess.run(None, {record["export"]["input_name"]: batch})[0])
    assert logits[0].shape == (1, 19, 64, 128)
    np.testing.assert_allclose(logits[0], logits[1], rtol=0, atol=1e-5)  # measured 1.8e-07


def test_calibrator_callbacks_never_raise_into_tensorrt(tmp_path, monkeypatch):
    """TensorRT calls these from noexcept C++ (an escaping exception aborts the process): errors
    are kept in `error` for the builder, and the callbacks answer 'no data' / 'no cache'."""
    from support import fake_cuda

    fake_cuda.install(monkeypatch)
    trt = fake_trt("10.3.0")  # its IInt8EntropyCalibrator2
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    batches = calibrator.CalibrationBatches([str(tmp_path / "bad.npy")], make_record())
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cal = calibrator.make_entropy_calibrator(trt, batches, str(blocker / "c.cache"), "image")
    assert cal.get_batch_size() == 1
    assert cal.read_calibration_cache() is None
    assert cal.get_batch(["image"]) is None
    assert isinstance(cal.error, InputError) and "bad.npy" in str(cal.error)
    cal.write_calibration_cache(b"table")  # the cache's folder is a file: kept, not raised
    assert isinstance(cal.error, InputError)  # the first error is the one reported
    assert cal.get_batch(["image"]) is None
