"""TensorRT-RTX engines on a GPU: need TensorRT-RTX, pycuda and an NVIDIA GPU of its targets
(RTX 20-50 class, A-series workstation cards...); skipped elsewhere with the reason.

Builds small FP32 and FP16 engines (FP16 from the trt11 FP16 export), runs them with the
TensorRT runner, which picks TensorRT-RTX from the sidecar, and compares with onnxruntime on the
same input; the first activation compiles the kernels and writes the runtime cache beside the
engine, the second loads it. The inspector's layer list must show FP16 layers for the FP16 engine
(TensorRT-RTX writes the 'Datatype' key).
"""

import logging
import os

import numpy as np
import pytest
from support.rtx import rtx_gpu_or_skip

pytestmark = pytest.mark.tensorrt

SIZES = dict(input_size=(256, 128), model_size=(128, 64))


@pytest.fixture(scope="module")
def rtx_gpu():
    """(tensorrt_rtx module, GpuInfo, targets) or a skip with the reason."""
    return rtx_gpu_or_skip()


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    from bisenet_deploy.checkpoint import load_model
    from bisenet_deploy.export.pipeline import ExportOptions, export_onnx

    loaded = load_model(None, arch="bisenetv2-coincheung", dataset="cityscapes", seed=0)
    folder = tmp_path_factory.mktemp("rtx-gpu")
    made = {}
    for precision in ("fp32", "fp16"):
        result = export_onnx(ExportOptions(output_path=str(folder / ("m-%s.onnx" % precision)),
                                           target="trt11", precision=precision, output="both",
                                           dynamic_batch=(1, 2, 2), **SIZES),
                             loaded=(loaded.model, loaded.metadata))
        made[precision] = (result.path, result.record)
    return made


def _input(record, batch):
    from bisenet_deploy.portable.running.preprocess import prepare_input
    from bisenet_deploy.synthetic import synthetic_image

    return prepare_input([synthetic_image(256, 128, seed=i) for i in range(batch)], record)


def _onnxruntime(path, batch):
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": batch})))


@pytest.mark.parametrize("precision, logit_rtol, label_agreement", [
    ("fp32", 1e-3, 0.999), ("fp16", 5e-2, 0.97)])
def test_rtx_engine_runs_and_matches_onnxruntime(rtx_gpu, exports, tmp_path, caplog, precision,
                                                 logit_rtol, label_agreement):
    from bisenet_deploy.portable.building.builder import BuildOptions, build_engine
    from bisenet_deploy.portable.trt.engine_paths import runtime_cache_path
    from bisenet_deploy.portable.running.trt_runner import TensorRTRunner

    trt, gpu, targets = rtx_gpu
    path, record = exports[precision]
    result = build_engine(path, record, BuildOptions(output=str(tmp_path / "m.engine"),
                                                     flavour="tensorrt-rtx",
                                                     compute_capabilities=targets))
    assert result.sidecar["gpu"]["name"] == gpu.name
    batch = _input(record, 2)
    cache = runtime_cache_path(result.engine_path, gpu.compute_capability)
    with TensorRTRunner(result.engine_path) as runner:
        assert runner.describe().startswith("tensorrt-rtx")
        got = runner.infer(batch)
        assert runner.last_device_time_ms() > 0
    assert os.path.getsize(cache) > 0  # the JIT-compiled kernels, kept beside the engine
    want = _onnxruntime(path, batch)
    assert got["labels"].dtype == np.int32 and got["labels"].shape == want["labels"].shape
    scale = max(1.0, float(np.abs(want["logits"]).max()))
    np.testing.assert_allclose(got["logits"], want["logits"], rtol=0, atol=logit_rtol * scale)
    assert np.mean(got["labels"] == want["labels"]) >= label_agreement
    with caplog.at_level(logging.INFO):
        with TensorRTRunner(result.engine_path) as runner:
            again = runner.infer(batch)
    assert any("runtime cache %s loaded" % cache in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(again["labels"], got["labels"])


def test_rtx_fp16_engine_layers_are_fp16(rtx_gpu, exports, tmp_path):
    from bisenet_deploy.portable.building.builder import BuildOptions, build_engine
    from bisenet_deploy.portable.running.engine_inspect import inspect_engine, precision_summary

    trt, gpu, targets = rtx_gpu
    path, record = exports["fp16"]
    result = build_engine(path, record, BuildOptions(output=str(tmp_path / "m.engine"),
                                                     flavour="tensorrt-rtx",
                                                     compute_capabilities=targets))
    summary = precision_summary(inspect_engine(result.engine_path))
    assert summary.get("fp16", 0) > summary.get("fp32", 0), summary
