"""Engines from a Q/DQ ONNX (`bisenet-export onnx --precision int8`): explicit quantization.

The real TensorRT-RTX parser and builder build the INT8 graph without a GPU, and the sidecar says
`int8-qdq` and carries the export's agreement numbers. Full TensorRT 8.6 and 10 (the fake of
tests/support/fake_trt.py) get the INT8 flag and no calibrator; 11 builds strongly typed without
flags; trtexec gets `--int8` and no `--calib`. The implicit calibrator stays for 8.2/8.6 FP32
graphs only.
"""

import os

import numpy as np
import pytest
from support.fake_trt import fake_trt
from support.onnx_graphs import preprocessing_graph, save
from support.records import engine_record as make_record

from bisenet_deploy.errors import EngineError, InputError
from bisenet_deploy.portable.building.builder import BuildOptions, build_engine
from bisenet_deploy.portable.trt.gpu_info import GpuInfo

A10 = GpuInfo("NVIDIA A10", (8, 6), driver="550")


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    """A tiny INT8 Q/DQ export (trt11, calibrated on 3 synthetic scenes, gate off)."""
    from bisenet_deploy.checkpoint import load_model
    from bisenet_deploy.export.int8_export import Int8Options
    from bisenet_deploy.export.pipeline import ExportOptions, export_onnx
    from bisenet_deploy.synthetic import synthetic_image

    folder = tmp_path_factory.mktemp("int8-engine")
    calib = folder / "calib"
    calib.mkdir()
    for i in range(3):
        np.save(str(calib / ("c%d.npy" % i)), synthetic_image(96, 48, seed=40 + i))
    loaded = load_model(None, arch="bisenetv2-coincheung", dataset="cityscapes", seed=0)
    result = export_onnx(ExportOptions(
        output_path=str(folder / "int8.onnx"), input_size=(96, 48), model_size=(64, 32),
        target="trt11", precision="int8", parity=False,
        int8=Int8Options(calib_images=str(calib), calib_count=3, min_agreement=0.0)),
        loaded=(loaded.model, loaded.metadata))
    return result.path, result.record


def test_tensorrt_rtx_builds_the_qdq_graph_without_a_gpu(int8_export, tmp_path):
    pytest.importorskip("tensorrt_rtx_bindings", reason="TensorRT-RTX is not installed")
    path, record = int8_export
    out = str(tmp_path / "e.engine")
    result = build_engine(path, None, BuildOptions(output=out, flavour="tensorrt-rtx"))
    sc = result.sidecar
    with open(out, "rb") as f:
        assert f.read(4) == b"vtrt"
    assert sc["precision"] == "int8-qdq" and sc["gpu"] is None
    assert sc["precision_decision"]["strongly_typed"] and sc["precision_decision"]["flags"] == []
    assert any("weight-only" in w for w in sc["precision_decision"]["warnings"])
    # the agreement numbers travel into the sidecar with the record
    int8 = sc["onnx_metadata"]["export"]["int8"]
    assert int8 == record["export"]["int8"] and 0 <= int8["agreement"]["percent"] <= 100
    assert os.path.splitext(out)[0] + ".json" == result.sidecar_path


def test_tensorrt_rtx_folds_the_cpu_rewrites_into_the_layers_it_builds_anyway(tiny_export,
                                                                                tmp_path):
    """The onnxruntime-CPU rewrites (a Q before each ReLU, LeakyRelu(0), a pair per reader) must
    not cost a GPU engine a layer: TensorRT-RTX builds the same engine layers, of the same
    precisions, with and without them (its build log's layer list; no GPU needed)."""
    pytest.importorskip("tensorrt_rtx_bindings", reason="TensorRT-RTX is not installed")
    import onnx

    from bisenet_deploy.export.onnx_metadata import get_record, set_record
    from bisenet_deploy.export.quantize import QuantizeSettings, quantize_graph
    from bisenet_deploy.synthetic import synthetic_image

    _, _, path = tiny_export()
    fp32 = onnx.load(path)
    record = get_record(fp32)
    record["export"].update(target="trt11", precision="int8")
    record["export"]["int8"] = {
        "scheme": "qdq-int8-symmetric", "quantizer": "onnxruntime.quantization",
        "calibration": {"method": "percentile", "images": 2},
        "agreement": {"percent": 90.0, "worst_image_percent": 90.0, "images": 1,
                      "held_out": "synthetic street scenes"},
        "min_agreement": 0.0, "keep_float": [], "qdq_pairs": 1}
    images = [synthetic_image(128, 64, seed=80 + i) for i in range(2)]
    built = {}
    for fusable in (False, True):
        q = quantize_graph(fp32, record, images, QuantizeSettings(cpu_fusable=fusable))
        assert any(n.op_type == "LeakyRelu" for n in q.graph.node) == fusable
        set_record(q, record)
        onnx_path = str(tmp_path / ("q%d.onnx" % fusable))
        onnx.save(q, onnx_path)
        result = build_engine(onnx_path, None, BuildOptions(
            output=str(tmp_path / ("q%d.engine" % fusable)), flavour="tensorrt-rtx"))
        built[fusable] = result.sidecar["layer_precisions"]
    assert built[False] and built[False].get("int8", 0) >= 20, built
    assert built[True] == built[False], built


def _config_state(calls):
    return [c for c in calls if c[0] not in ("parse", "Builder")]


def _qdq_onnx(tmp_path, target, batch=1):
    rec = make_record(target=target, precision="int8", opset=17, batch=batch)
    return save(preprocessing_graph(rec, dynamic_batch=False), tmp_path / "q.onnx"), rec


def _failing_build(path, rec, trt, gpu, tmp_path, **kw):
    with pytest.raises(EngineError, match="could not build the engine"):
        build_engine(path, rec, BuildOptions(output=str(tmp_path / "o" / "m.engine"), **kw),
                     trt=trt, gpu=gpu)


@pytest.mark.parametrize("version, target, gpu, flags", [
    ((8, 6), "trt8.6", A10, ["INT8", "FP16"]),
    ((10, 13), "trt10", A10, ["INT8", "FP16"])])
def test_full_tensorrt_explicit_quantization_sets_int8_without_calibrator(
        tmp_path, version, target, gpu, flags):
    from bisenet_deploy.portable.building.build_plan import plan_build

    path, rec = _qdq_onnx(tmp_path, target)
    calls = []
    trt = fake_trt(version, calls, input_shape=(1, 3, 32, 64))
    plan = plan_build(path, rec, BuildOptions(output=str(tmp_path / "p" / "m.engine")),
                      trt=trt, gpu=gpu)
    assert plan.decision.precision == "int8-qdq" and plan.decision.flags == flags
    assert plan.calib is None and plan.calib_cache is None  # no calibrator, no cache
    _failing_build(path, rec, trt, gpu, tmp_path)
    state = _config_state(calls)
    assert [c for c in state if c[0] == "set_flag"] == [("set_flag", f) for f in flags]


def test_tensorrt_11_builds_the_qdq_graph_strongly_typed_without_flags(tmp_path):
    path, rec = _qdq_onnx(tmp_path, "trt11")
    calls = []
    _failing_build(path, rec, fake_trt((11, 0), calls, input_shape=(1, 3, 32, 64)), A10, tmp_path)
    assert not any(c[0] == "set_flag" for c in _config_state(calls))


@pytest.mark.parametrize("version, expect", [("8.6.1", ["--int8"]), ("10.13.0", ["--int8", "--fp16"]),
                                             ("11.0.0", [])])
def test_trtexec_line_for_a_qdq_onnx_has_no_calibration(tmp_path, version, expect):
    from bisenet_deploy.portable.building import trtexec

    line = trtexec.build_command(version, "q.onnx", "q.engine", "int8-qdq",
                                 int8_fp16_fallback="--fp16" in expect)
    assert [a for a in line if a in ("--int8", "--fp16")] == expect
    assert not any(a.startswith("--calib") for a in line)


def test_implicit_int8_on_trt10_names_the_qdq_export_before_any_work(tmp_path):
    rec = make_record(target="trt10", precision="fp32", opset=17)
    path = save(preprocessing_graph(rec, dynamic_batch=False), tmp_path / "m.onnx")
    calls = []
    with pytest.raises(InputError, match="--precision int8 --calib-images"):
        build_engine(path, rec, BuildOptions(precision="int8", calib_images=str(tmp_path)),
                     trt=fake_trt((10, 13), calls, input_shape=(1, 3, 32, 64)), gpu=A10)
    assert not any(c[0] == "build" for c in calls)


@pytest.mark.parametrize("option", [dict(calib_images="calib"), dict(calib_cache="c.cache"),
                                    dict(calib_batch_size=2), dict(calib_max_images=3)])
def test_calibration_options_on_a_qdq_graph_are_refused_not_ignored(tmp_path, option):
    """A Q/DQ graph carries its scales: calibration options would silently do nothing, so they
    are one usage line before any work, on full TensorRT as on 11."""
    path, rec = _qdq_onnx(tmp_path, "trt10")
    for version in ((10, 13), (11, 0)):
        calls = []
        with pytest.raises(InputError, match="Q/DQ graph, calibrated when it was exported.*"
                                             "build it without them"):
            build_engine(path, rec, BuildOptions(output=str(tmp_path / "m.engine"),
                                                 precision="int8", **option),
                         trt=fake_trt(version, calls, input_shape=(1, 3, 32, 64)), gpu=A10)
        assert not any(c[0] == "build" for c in calls)
    assert sorted(os.listdir(str(tmp_path))) == ["q.onnx"]


def test_calib_count_without_int8_and_a_folder_as_the_engine_are_usage_errors(tmp_path):
    path, rec = _qdq_onnx(tmp_path, "trt10")
    trt = fake_trt((10, 13), [], input_shape=(1, 3, 32, 64))
    with pytest.raises(InputError, match="only apply to --int8"):
        build_engine(path, rec, BuildOptions(output=str(tmp_path / "m.engine"),
                                             precision="fp16", calib_max_images=3),
                     trt=trt, gpu=A10)
    with pytest.raises(InputError, match="is a folder; give the engine's file name"):
        build_engine(path, rec, BuildOptions(output=str(tmp_path)), trt=trt, gpu=A10)
