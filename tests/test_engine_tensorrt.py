"""Real engine builds with full TensorRT: need its Python package and an NVIDIA GPU (skipped
otherwise; TensorRT-RTX engines on a GPU are tests/test_engine_rtx_gpu.py).

Export a small graph with the real exporter, build FP32 / FP16 (and INT8 where the GPU has fast
INT8) engines with the portable builder, load each with the TensorRT runner (which checks the
sidecar against this GPU and TensorRT), run once and compare with onnxruntime on the same input.
"""

import os

import numpy as np
import pytest

pytestmark = pytest.mark.tensorrt


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    from bisenet_deploy.checkpoint import load_model
    from bisenet_deploy.export.pipeline import ExportOptions, export_onnx
    from bisenet_deploy.errors import MissingDependencyError
    from bisenet_deploy.portable.trt.capabilities import detect_capabilities
    from bisenet_deploy.portable.trt.flavours import import_flavour

    try:
        trt = import_flavour("tensorrt")
    except MissingDependencyError as exc:
        pytest.skip("full TensorRT is not installed (%s)" % exc)
    target = detect_capabilities(trt).export_target
    loaded = load_model(None, arch="bisenetv2-coincheung", dataset="cityscapes", seed=0)
    path = str(tmp_path_factory.mktemp("onnx") / "small.onnx")
    result = export_onnx(ExportOptions(output_path=path, target=target, output="both",
                                       input_size=(256, 128), model_size=(128, 64),
                                       dynamic_batch=(1, 2, 2)), loaded=tuple(loaded))
    return path, result.record


def _input(record, batch=1):
    from bisenet_deploy.portable.running.preprocess import prepare_input
    from bisenet_deploy.synthetic import synthetic_image

    images = [synthetic_image(256, 128, seed=i) for i in range(batch)]
    return prepare_input(images, record)


def _onnxruntime(path, batch):
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {"image": batch})))


def _build(path, record, tmp_path, precision, **kw):
    from bisenet_deploy.portable.building.builder import BuildOptions, build_engine

    options = BuildOptions(precision=precision, output=str(tmp_path / ("m-%s.engine" % precision)),
                           flavour="tensorrt", **kw)
    return build_engine(path, record, options)


def _skip_fp16_on_trt11():
    from bisenet_deploy.portable.trt.capabilities import detect_capabilities
    from bisenet_deploy.portable.trt.flavours import import_flavour

    if detect_capabilities(import_flavour("tensorrt")).strong_typing == "always":
        pytest.skip("TensorRT 11 builds FP16 only from an FP16 ONNX (`--target trt11 --precision "
                    "fp16`); the policy tests cover the refusal")


def _run_engine(engine_path, batch):
    from bisenet_deploy.portable.running.trt_runner import TensorRTRunner

    with TensorRTRunner(engine_path) as runner:
        return runner.infer(batch)


# tolerances relative to the largest logit. The builder turns TF32 off, so an FP32 engine differs
# from onnxruntime only by kernel summation order; FP16 by half-precision rounding.
@pytest.mark.parametrize("precision, logit_rtol, label_agreement", [
    ("fp32", 1e-3, 0.999), ("fp16", 5e-2, 0.97)])
def test_build_run_and_compare(exported, tmp_path, precision, logit_rtol, label_agreement):
    if precision == "fp16":
        _skip_fp16_on_trt11()
    path, record = exported
    result = _build(path, record, tmp_path, precision)
    assert os.path.getsize(result.engine_path) > 0
    sc = result.sidecar
    assert sc["precision"] == precision and sc["onnx_metadata"] == record
    assert [t["name"] for t in sc["io"]] == ["image", "labels", "logits"]
    assert sc["profiles"][0]["max"][0] == 2
    assert os.path.isfile(os.path.join(str(tmp_path), "timing.cache"))
    batch = _input(record, batch=2)
    got = _run_engine(result.engine_path, batch)
    want = _onnxruntime(path, batch)
    assert got["labels"].dtype == np.int32 and got["labels"].shape == want["labels"].shape
    scale = max(1.0, float(np.abs(want["logits"]).max()))
    np.testing.assert_allclose(got["logits"], want["logits"], rtol=0, atol=logit_rtol * scale)
    assert np.mean(got["labels"] == want["labels"]) >= label_agreement


def test_inspect_reports_layer_precisions(exported, tmp_path):
    from bisenet_deploy.portable.running.engine_inspect import inspect_engine, precision_summary

    _skip_fp16_on_trt11()
    path, record = exported
    result = _build(path, record, tmp_path, "fp16")
    layers = inspect_engine(result.engine_path)
    assert layers and all(layer.precision != "?" for layer in layers)
    assert precision_summary(layers).get("fp16", 0) > 0


def test_timing_cache_is_reused(exported, tmp_path):
    path, record = exported
    cache = str(tmp_path / "shared.cache")
    _build(path, record, tmp_path, "fp32", timing_cache=cache)
    size = os.path.getsize(cache)
    assert size > 0
    _build(path, record, tmp_path, "fp32", timing_cache=cache)
    assert os.path.getsize(cache) >= size


def test_engine_refused_for_another_tensorrt(exported, tmp_path):
    import json

    from bisenet_deploy.errors import IncompatibleEngineError

    path, record = exported
    result = _build(path, record, tmp_path, "fp32")
    with open(result.sidecar_path) as f:
        sc = json.load(f)
    sc["tensorrt_version"] = "8.0.0"
    with open(result.sidecar_path, "w") as f:
        json.dump(sc, f)
    with pytest.raises(IncompatibleEngineError, match="TensorRT 8.0.0"):
        _run_engine(result.engine_path, _input(record))


def test_int8_with_calibration(exported, tmp_path):
    from bisenet_deploy.portable.trt.gpu_info import query_gpu
    from bisenet_deploy.portable.trt.precision import has_fast_int8
    from bisenet_deploy.portable.trt.flavours import import_flavour
    from bisenet_deploy.synthetic import synthetic_image

    trt = import_flavour("tensorrt")
    if not has_fast_int8(query_gpu().compute_capability) or not hasattr(trt, "IInt8EntropyCalibrator2"):
        pytest.skip("INT8 calibration needs a GPU with fast INT8 and TensorRT <= 10.x")
    path, record = exported
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(4):
        np.save(str(calib / ("%d.npy" % i)), synthetic_image(256, 128, seed=10 + i))
    result = _build(path, record, tmp_path, "int8", calib_images=str(calib))
    cache = result.sidecar["build"]["options"]["calibration"]["cache"]
    assert os.path.getsize(cache) > 0
    batch = _input(record)
    got = _run_engine(result.engine_path, batch)
    want = _onnxruntime(path, batch)
    assert np.mean(got["labels"] == want["labels"]) >= 0.8
