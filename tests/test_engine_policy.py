"""TensorRT API-generation selection (feature tests on small fake modules) and the precision policy.

The fakes (support/fake_trt.py) expose exactly the attributes each TensorRT generation's Python API
has (docs/tensorrt-versions.md, section 2); they test our selection logic, nothing is built.
"""

import types

import numpy as np
import pytest

from bisenet_deploy.errors import EngineError, InputError, MissingDependencyError
from bisenet_deploy.portable.trt import flavours
from bisenet_deploy.portable.trt import precision as P
from bisenet_deploy.portable.trt import trt_api
from bisenet_deploy.portable.building.build_checks import network_creation_flags, workspace_setting
from bisenet_deploy.portable.trt.capabilities import assumed_capabilities
from support.fake_trt import fake_trt


@pytest.mark.parametrize("version, generation", [
    ((8, 2), "8.2-8.4"), ((8, 4), "8.2-8.4"), ((8, 5), "8.5-10"), ((8, 6), "8.5-10"),
    ((10, 0), "8.5-10"), ((10, 13), "8.5-10"), ((11, 0), "11")])
def test_api_generation_from_features(version, generation):
    assert trt_api.api_generation(fake_trt(version)) == generation
    # the version-number mapping (used for trtexec lines for other machines) agrees
    assert trt_api.generation_for_version(version) == generation


def test_features_per_generation():
    f82 = trt_api.detect_features(fake_trt((8, 2)))
    assert f82.explicit_batch_flag and f82.max_workspace_size and not f82.memory_pool_api
    assert f82.precision_flags and f82.int8_calibrator and not f82.optimization_level
    assert not f82.strongly_typed_flag and not f82.parser_node_name

    f84 = trt_api.detect_features(fake_trt((8, 4)))
    assert f84.memory_pool_api and f84.max_workspace_size and f84.generation == "8.2-8.4"

    f86 = trt_api.detect_features(fake_trt((8, 6)))
    assert f86.optimization_level and f86.explicit_batch_flag and f86.parser_node_name

    f10 = trt_api.detect_features(fake_trt((10, 13)))
    assert not f10.explicit_batch_flag  # deprecated and ignored: pass 0
    assert not f10.max_workspace_size and f10.memory_pool_api and f10.strongly_typed_flag
    assert f10.int8_calibrator and f10.platform_fast_flags

    f11 = trt_api.detect_features(fake_trt((11, 0)))
    assert f11.generation == "11"
    assert not (f11.precision_flags or f11.int8_calibrator or f11.platform_fast_flags
                or f11.explicit_batch_flag)
    assert f11.timing_cache and f11.profiling_verbosity and f11.engine_inspector


def test_features_test_the_given_objects_over_the_classes():
    trt = fake_trt((8, 4))
    config = types.SimpleNamespace(max_workspace_size=0)  # an object without the pool API
    f = trt_api.detect_features(trt, config=config)
    assert not f.memory_pool_api and f.max_workspace_size


def test_network_flags_per_generation():
    f82 = trt_api.detect_features(fake_trt((8, 2)))
    assert network_creation_flags(fake_trt((8, 2)), f82, strongly_typed=False) == 1 << 0
    f10 = trt_api.detect_features(fake_trt((10, 0)))
    assert network_creation_flags(fake_trt((10, 0)), f10, strongly_typed=False) == 0
    assert network_creation_flags(fake_trt((10, 0)), f10, strongly_typed=True) == 1 << 1
    f11 = trt_api.detect_features(fake_trt((11, 0)))
    assert network_creation_flags(fake_trt((11, 0)), f11, strongly_typed=True) == 0
    with pytest.raises(EngineError, match="strongly typed"):
        network_creation_flags(fake_trt((8, 6)), trt_api.detect_features(fake_trt((8, 6))), True)


def test_workspace_setting_per_api():
    f82 = trt_api.detect_features(fake_trt((8, 2)))
    assert workspace_setting(f82, None) == ("max_workspace_size", 1024 << 20)  # 8.2 default is 0
    assert workspace_setting(f82, 256) == ("max_workspace_size", 256 << 20)
    f10 = trt_api.detect_features(fake_trt((10, 0)))
    assert workspace_setting(f10, None) == (None, None)
    assert workspace_setting(f10, 2048) == ("pool", 2048 << 20)


def test_parse_version():
    assert trt_api.parse_version("8.2.1.8") == (8, 2, 1, 8)
    assert trt_api.parse_version("10.13") == (10, 13)
    assert trt_api.parse_version("trt8.6.1") == (8, 6, 1)
    assert trt_api.parse_version("10.0.0b6") == (10, 0, 0)
    assert trt_api.version_string("8.6.1.6") == "8.6.1"
    with pytest.raises(InputError):
        trt_api.parse_version("eight")
    with pytest.raises(InputError, match="older than 8.2"):
        trt_api.generation_for_version("7.1.3")
    # the export target follows from the version's features (8.5 has UINT8 but no INT64: trt8.6)
    for version, target in (("8.2.1", "trt8.2"), ("8.4.3", "trt8.2"), ("8.5.1", "trt8.6"),
                            ("8.6.1", "trt8.6"), ("10.3", "trt10"), ("11.0", "trt11")):
        assert assumed_capabilities(version).export_target == target, version


def test_dtypes_each_version_knows():
    assert "uint8" not in trt_api.dtype_names_for_version("8.2")
    assert "uint8" in trt_api.dtype_names_for_version("8.5")
    assert "int64" not in trt_api.dtype_names_for_version("8.6")
    assert "int64" in trt_api.dtype_names_for_version("10.0")
    with pytest.raises(InputError, match="TensorRT 8.2.1 cannot exchange uint8.*trt8.2"):
        assumed_capabilities("8.2.1").check_io_dtype(np.uint8)
    assumed_capabilities("10.3").check_io_dtype(np.uint8)
    with pytest.raises(InputError, match="int64"):
        assumed_capabilities("8.6.1").check_io_dtype(np.int64)
    assert trt_api.trt_dtype_to_numpy("HALF") == np.float16
    assert trt_api.trt_dtype_to_numpy(types.SimpleNamespace(name="INT32")) == np.int32
    with pytest.raises(InputError, match="no numpy"):
        trt_api.trt_dtype_to_numpy("BF16")
    assert trt_api.numpy_to_trt_dtype_name(np.float32) == "FLOAT"


def test_stub_only_tensorrt_is_not_tensorrt(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    with pytest.raises(MissingDependencyError, match=r"pip install -e '\.\[trt\]'"):
        flavours.import_flavour("tensorrt")
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(MissingDependencyError):
        flavours.import_flavour("tensorrt")


def test_default_flavour_is_full_tensorrt_else_tensorrt_rtx(monkeypatch):
    import sys
    full = types.SimpleNamespace(__name__="tensorrt", __version__="10.3.0", Builder=object)
    rtx = types.SimpleNamespace(__name__="tensorrt_rtx_bindings", __version__="1.7.1.116",
                                Builder=object)
    monkeypatch.setitem(sys.modules, "tensorrt", full)
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)
    monkeypatch.setitem(sys.modules, "tensorrt_rtx_bindings", rtx)
    assert flavours.import_tensorrt() is full
    assert flavours.import_tensorrt("tensorrt-rtx") is rtx
    assert flavours.flavour_of(rtx) == "tensorrt-rtx" and flavours.flavour_of(full) == "tensorrt"
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert flavours.import_tensorrt() is rtx
    assert flavours.available_flavours() == ["tensorrt-rtx"]
    monkeypatch.setitem(sys.modules, "tensorrt_rtx_bindings", None)
    with pytest.raises(MissingDependencyError, match=r"\[trt\].*\[rtx\]"):
        flavours.import_tensorrt()


# -- precision policy ------------------------------------------------------------------------------

CCS = ["6.1", "6.2", "7.5", "8.0", "8.9", "9.0"]


def test_compute_capability_parsing():
    assert P.parse_compute_capability("sm_86") == (8, 6)
    assert P.parse_compute_capability("61") == (6, 1)
    assert P.parse_compute_capability((7, 5)) == (7, 5)
    with pytest.raises(InputError):
        P.parse_compute_capability("fast")


@pytest.mark.parametrize("cc", CCS)
def test_fp32_is_always_plain(cc):
    version = "8.6.1" if cc.startswith("6") else "10.3"
    d = P.decide_precision("fp32", cc, version)
    assert d.flags == [] and not d.warnings and not d.needs_calibrator


def test_fp16_on_1080ti_warns_slower_but_builds():
    d = P.decide_precision("fp16", "6.1", "8.6.1")
    assert d.flags == ["FP16"]
    assert len(d.warnings) == 1 and "SLOWER than FP32" in d.warnings[0]


@pytest.mark.parametrize("cc, version", [("6.2", "8.2.1"), ("7.5", "8.6.1"), ("8.0", "10.3"),
                                         ("8.9", "10.13"), ("9.0", "10.13")])
def test_fp16_on_fast_fp16_gpus(cc, version):
    d = P.decide_precision("fp16", cc, version)
    assert d.flags == ["FP16"] and not d.warnings


def test_int8_refused_on_tx2():
    with pytest.raises(InputError, match="SM 6.2.*no fast INT8"):
        P.decide_precision("int8", "6.2", "8.2.1")


@pytest.mark.parametrize("cc, version, fp16_fallback", [
    ("6.1", "8.6.1", False), ("7.5", "8.2.1", True), ("8.9", "8.6.1", True)])
def test_int8_where_fast(cc, version, fp16_fallback):
    d = P.decide_precision("int8", cc, version)
    assert d.needs_calibrator and d.flags[0] == "INT8" and d.precision == "int8"
    assert ("FP16" in d.flags) == fp16_fallback


@pytest.mark.parametrize("version", ["10.0", "10.13"])
def test_implicit_int8_refused_from_trt10_naming_the_qdq_export(version):
    # implicit calibration is deprecated from 10.1 (gone in 11): INT8 comes from a Q/DQ ONNX
    with pytest.raises(InputError, match="bisenet-export onnx --precision int8"):
        P.decide_precision("int8", "8.0", version, onnx_precision="fp32")


@pytest.mark.parametrize("cc, version, flags", [
    ("6.1", "8.6.1", ["INT8"]), ("7.5", "8.6.1", ["INT8", "FP16"]),
    ("8.9", "10.13", ["INT8", "FP16"])])
def test_qdq_onnx_is_explicit_quantization_with_the_int8_flag(cc, version, flags):
    d = P.decide_precision("int8", cc, version, onnx_precision="int8")
    assert d.precision == "int8-qdq" and d.flags == flags
    assert not d.needs_calibrator and not d.strongly_typed


@pytest.mark.parametrize("version", ["11.0", "rtx:1.7.1"])
def test_qdq_onnx_strongly_typed_on_trt11_and_rtx(version):
    from bisenet_deploy.portable.trt.capabilities import assumed_capabilities

    caps = (assumed_capabilities(version[4:], "tensorrt-rtx") if version.startswith("rtx")
            else assumed_capabilities(version))
    d = P.decide_precision("int8", None if version.startswith("rtx") else "8.6", caps,
                           onnx_precision="int8")
    assert d.precision == "int8-qdq" and d.flags == [] and d.strongly_typed
    assert not d.needs_calibrator
    assert any("weight-only" in w for w in d.warnings) == version.startswith("rtx")


def test_qdq_onnx_refuses_other_precisions_and_slow_int8():
    with pytest.raises(InputError, match="INT8 Q/DQ graph.*--precision fp16"):
        P.decide_precision("fp16", "8.6", "10.3", onnx_precision="int8")
    with pytest.raises(InputError, match="SM 6.2.*no fast INT8"):
        P.decide_precision("int8", "6.2", "8.6.1", onnx_precision="int8")
    assert P.default_precision({"export": {"precision": "int8"}}) == "int8"
    assert P.onnx_graph_precision({"export": {"precision": "int8", "target": "trt10"}}) == "int8"


def test_builder_answer_overrides_the_table():
    # a builder that says it has no fast INT8 wins over the SM 7.5 table entry
    with pytest.raises(InputError, match="no fast INT8"):
        P.decide_precision("int8", "7.5", "8.6.1", platform_fast_int8=False)


@pytest.mark.parametrize("cc", ["6.1", "6.2"])
def test_trt10_refuses_pascal(cc):
    with pytest.raises(MissingDependencyError, match="TensorRT 8.6"):  # exit 4: not here
        P.decide_precision("fp32", cc, "10.3")


@pytest.mark.parametrize("cc", ["7.5", "8.0", "8.9", "9.0"])
def test_trt11_fp16_needs_the_fp16_onnx(cc):
    with pytest.raises(InputError) as info:
        P.decide_precision("fp16", cc, "11.0", onnx_precision="fp32")
    assert "bisenet-export onnx --target trt11 --precision fp16" in str(info.value)
    d = P.decide_precision("fp16", cc, "11.0", onnx_precision="fp16")
    assert d.flags == [] and d.strongly_typed
    with pytest.raises(InputError, match="this ONNX is FP16"):
        P.decide_precision("fp32", cc, "11.0", onnx_precision="fp16")
    assert P.decide_precision("fp32", cc, "11.0", onnx_precision="fp32").flags == []
    with pytest.raises(InputError, match="removed INT8.*--precision int8"):
        P.decide_precision("int8", cc, "11.0", onnx_precision="fp32")
    with pytest.raises(InputError, match="no bisenet_deploy metadata"):
        P.decide_precision("fp16", cc, "11.0", onnx_precision=None)


def test_fp16_onnx_before_11():
    # strongly typed on 10.x, the FP16 flag on 8.x, never silently FP32
    assert P.decide_precision("fp16", "8.6", "10.3", onnx_precision="fp16").strongly_typed
    d = P.decide_precision("fp16", "7.5", "8.6.1", onnx_precision="fp16")
    assert d.flags == ["FP16"] and not d.strongly_typed
    with pytest.raises(InputError, match="--fp16"):
        P.decide_precision("fp32", "8.6", "10.3", onnx_precision="fp16")


def test_graph_precision_and_default_from_record():
    rec = {"export": {"precision": "fp16", "target": "trt10"}}
    assert P.onnx_graph_precision(rec) == "fp32"  # FP16 is the builder flag's job there
    assert P.default_precision(rec) == "fp16"
    assert P.onnx_graph_precision({"export": {"precision": "fp16", "target": "trt11"}}) == "fp16"
    assert P.onnx_graph_precision(None) is None and P.default_precision(None) == "fp32"


def test_unknown_gpu_checks_only_tensorrt_rules():
    d = P.decide_precision("fp16", None, "8.2.1")
    assert d.flags == ["FP16"] and "GPU unknown" in d.notes[0]
    with pytest.raises(InputError):
        P.decide_precision("fp16", None, "11.0", onnx_precision="fp32")
