"""The one capabilities object every TensorRT rule reads: built from feature tests on the module
(and the flavour), never from version numbers, so TensorRT-RTX 1.7 is not "older than 8.2".

Fake modules stand for full TensorRT 8.2 ... 11 (support/fake_trt.py: exactly the
attributes each version's Python API has); the real TensorRT-RTX module is read where installed.
"""

import types

import numpy as np
import pytest
from support.fake_trt import fake_trt

from bisenet_deploy.errors import InputError
from bisenet_deploy.portable.trt import precision as P
from bisenet_deploy.portable.trt.capabilities import (RTX_PORTABLE_TARGETS, assumed_capabilities,
                                                  detect_capabilities)

VERSIONS = [(8, 2), (8, 4), (8, 5), (8, 6), (10, 0), (10, 13), (11, 0)]


@pytest.mark.parametrize("version", VERSIONS)
def test_detected_capabilities_agree_with_the_documented_api_history(version):
    detected = detect_capabilities(fake_trt(version)).as_dict()
    assumed = assumed_capabilities("%d.%d.0.1" % version).as_dict()
    assert detected.pop("source") == "detected" and assumed.pop("source") == "assumed"
    assert detected == assumed


def test_rules_per_full_tensorrt_generation():
    caps = {v: detect_capabilities(fake_trt(v)) for v in VERSIONS}
    assert [caps[v].export_target for v in VERSIONS] == [
        "trt8.2", "trt8.2", "trt8.6", "trt8.6", "trt10", "trt10", "trt11"]
    assert caps[(8, 2)].max_opset == 13 and caps[(8, 6)].max_opset is None
    assert [caps[v].strong_typing for v in VERSIONS] == [
        "never", "never", "never", "never", "optional", "optional", "always"]
    assert "uint8" not in caps[(8, 2)].io_dtypes and "uint8" in caps[(8, 5)].io_dtypes
    assert "int64" not in caps[(8, 6)].io_dtypes and "int64" in caps[(10, 0)].io_dtypes
    assert caps[(10, 13)].int8_calibration and not caps[(11, 0)].int8_calibration
    assert caps[(10, 13)].int8_calibration_deprecated and not caps[(10, 0)].int8_calibration_deprecated
    assert caps[(10, 0)].min_compute_capability == (7, 0) and caps[(8, 6)].min_compute_capability is None
    assert not any(c.builds_without_gpu for c in caps.values())
    assert all(c.timing_cache and c.flavour == "tensorrt" for c in caps.values())
    assert caps[(8, 2)].label == "TensorRT 8.2.0"


def _rtx_like_fake():
    """A module shaped like TensorRT-RTX: TensorRT 10's API without precision flags, with compute
    targets and runtime caches, named like the pip wheel's module."""
    trt = fake_trt((11, 0))
    trt.__name__ = "tensorrt_rtx_bindings"
    trt.__version__ = "1.7.1.116"
    trt.ComputeCapability = types.SimpleNamespace(__members__={
        n: None for n in ("NONE", "CURRENT", "SM75", "SM80", "SM86", "SM89", "SM120", "SM121")})
    trt.IBuilderConfig.set_compute_capability = None
    trt.ICudaEngine.create_runtime_config = None
    trt.IRuntimeConfig = type("IRuntimeConfig", (), {"create_runtime_cache": None})
    return trt


def _check_rtx(caps):
    assert caps.flavour == "tensorrt-rtx" and caps.label == "TensorRT-RTX 1.7.1"
    assert caps.export_target == "trt11" and caps.strong_typing == "always"
    assert caps.max_opset is None and "uint8" in caps.io_dtypes
    assert not caps.int8_calibration and caps.min_compute_capability is None
    assert caps.builds_without_gpu and caps.runtime_cache and not caps.timing_cache
    assert (7, 5) in caps.compute_targets and caps.portable_targets == RTX_PORTABLE_TARGETS


def test_tensorrt_rtx_capabilities_from_features():
    _check_rtx(detect_capabilities(_rtx_like_fake()))
    _check_rtx(assumed_capabilities("1.7.1.116", "tensorrt-rtx"))


def test_the_real_tensorrt_rtx_module():
    trt = pytest.importorskip("tensorrt_rtx_bindings", reason="TensorRT-RTX is not installed")
    caps = detect_capabilities(trt)
    _check_rtx(caps)
    # the real builder objects say the same as the classes (no GPU needed to create them)
    from bisenet_deploy.portable.trt.trt_logger import tensorrt_logger

    builder = trt.Builder(tensorrt_logger(trt))
    real = detect_capabilities(trt, builder, builder.create_builder_config())
    assert real.as_dict() == caps.as_dict()


def test_precision_policy_reads_the_capabilities_not_the_version_number():
    rtx = detect_capabilities(_rtx_like_fake())
    # no GPU here (None): TensorRT-RTX builds anyway, strongly typed, what the ONNX carries
    d = P.decide_precision("fp32", None, rtx, onnx_precision="fp32")
    assert d.strongly_typed and d.flags == [] and not d.needs_calibrator
    assert P.decide_precision("fp16", None, rtx, onnx_precision="fp16").precision == "fp16"
    with pytest.raises(InputError, match="TensorRT-RTX 1.7.1 has no FP16 flag.*--target trt11 "
                                         "--precision fp16"):
        P.decide_precision("fp16", "8.6", rtx, onnx_precision="fp32")
    with pytest.raises(InputError, match="no INT8 calibration.*Q/DQ"):  # exit 2, as FP16 above
        P.decide_precision("int8", "8.9", rtx, onnx_precision="fp32")
    # a Turing GPU is fine for TensorRT-RTX (full TensorRT 10's SM >= 7.0 rule is not its rule)
    assert P.decide_precision("fp32", "7.5", rtx, onnx_precision="fp32").precision == "fp32"
    rtx.check_io_dtype(np.uint8)
    with pytest.raises(InputError, match="TensorRT 8.2.0 cannot exchange uint8"):
        detect_capabilities(fake_trt((8, 2))).check_io_dtype(np.uint8)
