"""The builder's TensorRT calls per API generation, recorded by small fake modules.

No engine is built here: the fake builder's `build_serialized_network` returns None, which is how
TensorRT reports a failed build, so these tests follow `build_engine` through its checks, parse and
configuration up to the build call, assert the exact calls each generation gets (explicit-batch
flag, workspace API, precision flags, profile, optimization level, timing cache), and that a failed
build leaves no file behind. Real builds are in test_engine_tensorrt.py (needs TensorRT + a GPU).
"""

import os

import pytest
from support import fake_cuda
from support.fake_trt import fake_trt
from support.onnx_graphs import preprocessing_graph, save
from support.records import engine_record as make_record

from bisenet_deploy.errors import EngineError, InputError
from bisenet_deploy.portable.building.builder import BuildOptions, build_engine
from bisenet_deploy.portable.trt.gpu_info import GpuInfo


def fake_tensorrt(version, calls, input_shape=(-1, 3, 32, 64), parse_ok=True):
    """The shared fake of TensorRT `version` (support/fake_trt.py), recording into `calls`."""
    return fake_trt(version, calls, input_shape=input_shape, parse_ok=parse_ok)


def _config_state(calls):
    return [c for c in calls if c[0] not in ("parse", "Builder")]


A10 = GpuInfo("NVIDIA A10", (8, 6), driver="550")
TX2 = GpuInfo("NVIDIA Tegra X2", (6, 2), driver="L4T R32.7.1", jetson=True)


@pytest.fixture()
def onnx_dynamic(tmp_path):
    rec = make_record(batch={"dynamic": True, "min": 1, "opt": 2, "max": 4}, target="trt8.2")
    return save(preprocessing_graph(rec), tmp_path / "m.onnx"), rec


def _build(path, record, trt, gpu, tmp_path, **kw):
    out = str(tmp_path / "out" / "m.engine")
    with pytest.raises(EngineError, match="could not build the engine"):
        build_engine(path, record, BuildOptions(output=out, **kw), trt=trt, gpu=gpu)
    # a failed build leaves nothing behind: no engine, no sidecar, no timing cache
    assert not os.path.exists(os.path.join(str(tmp_path), "out")) or \
        os.listdir(os.path.join(str(tmp_path), "out")) == []


def test_tensorrt_8_2_path(onnx_dynamic, tmp_path):
    path, rec = onnx_dynamic
    calls = []
    trt = fake_tensorrt((8, 2), calls)
    _build(path, rec, trt, TX2, tmp_path, precision="fp16")
    state = _config_state(calls)
    assert ("create_network", 1) in state  # 1 << EXPLICIT_BATCH
    assert ("set_flag", "FP16") in state
    assert ("set_shape", "image", [1, 3, 32, 64], [2, 3, 32, 64], [4, 3, 32, 64]) in state
    assert ("create_timing_cache", b"") in state and ("set_timing_cache", False) in state
    assert not any(c[0] == "set_memory_pool_limit" for c in state)
    assert state[-1] == ("build",)


def test_tensorrt_8_2_workspace_default_and_opt_level_refused(onnx_dynamic, tmp_path):
    path, rec = onnx_dynamic
    calls = []
    trt = fake_tensorrt((8, 2), calls)
    seen = {}
    original = trt.Builder.create_builder_config

    def remember(self):
        seen["config"] = original(self)
        return seen["config"]
    trt.Builder.create_builder_config = remember
    _build(path, rec, trt, TX2, tmp_path, precision="fp32")
    assert seen["config"].max_workspace_size == 1024 << 20  # 8.2's default 0 would starve it
    with pytest.raises(InputError, match="--opt-level needs TensorRT 8.6"):
        build_engine(path, rec, BuildOptions(opt_level=2), trt=fake_tensorrt((8, 2), []), gpu=TX2)


def test_tensorrt_10_path(onnx_dynamic, tmp_path):
    path, rec = onnx_dynamic
    calls = []
    trt = fake_tensorrt((10, 13), calls)
    _build(path, rec, trt, A10, tmp_path, precision="fp16", workspace_mib=512, opt_level=5,
           batch=(1, 4, 8))
    state = _config_state(calls)
    assert ("create_network", 0) in state
    assert ("set_memory_pool_limit", "WORKSPACE", 512 << 20) in state
    assert ("set_shape", "image", [1, 3, 32, 64], [4, 3, 32, 64], [8, 3, 32, 64]) in state
    assert ("set_flag", "FP16") in state
    assert ("clear_flag", "TF32") in state  # FP32 layers really FP32 unless --tf32


def test_tf32_stays_on_only_when_asked_for(onnx_dynamic, tmp_path):
    path, rec = onnx_dynamic
    calls = []
    _build(path, rec, fake_tensorrt((10, 13), calls), A10, tmp_path, precision="fp32",
           allow_tf32=True)
    assert not any(c[0] == "clear_flag" for c in _config_state(calls))


def test_tensorrt_11_fp16_onnx_has_no_flags(tmp_path):
    rec = make_record(target="trt11", precision="fp16", opset=17)
    path = save(preprocessing_graph(rec, dynamic_batch=False), tmp_path / "m.onnx")
    calls = []
    trt = fake_tensorrt((11, 0), calls, input_shape=(1, 3, 32, 64))
    _build(path, rec, trt, A10, tmp_path)  # precision defaults to the export's fp16
    state = _config_state(calls)
    assert ("create_network", 0) in state
    assert not any(c[0] in ("set_flag", "set_shape") for c in state)


def test_tensorrt_11_refuses_fp16_from_fp32_onnx_before_any_work(onnx_dynamic):
    path, rec = onnx_dynamic
    calls = []
    with pytest.raises(InputError, match="--target trt11 --precision fp16"):
        build_engine(path, rec, BuildOptions(precision="fp16"), trt=fake_tensorrt((11, 0), calls),
                     gpu=A10)
    assert calls == []  # no builder was even created


def test_int8_on_tx2_refused_before_any_work(onnx_dynamic, tmp_path):
    path, rec = onnx_dynamic
    calls = []
    with pytest.raises(InputError, match="INT8 refused"):  # exit 2, as every precision refusal
        build_engine(path, rec, BuildOptions(precision="int8", calib_images=str(tmp_path)),
                     trt=fake_tensorrt((8, 2), calls), gpu=TX2)
    assert calls == []


def test_parse_failure_names_node_and_fix(onnx_dynamic, tmp_path):
    path, rec = onnx_dynamic
    rec10 = make_record(batch={"dynamic": True, "min": 1, "opt": 2, "max": 4}, target="trt10")
    with pytest.raises(EngineError) as info:
        build_engine(path, rec10, BuildOptions(output=str(tmp_path / "o" / "m.engine")),
                     trt=fake_tensorrt((8, 2), [], parse_ok=False), gpu=TX2)
    msg = str(info.value)
    # node 2 of the graph (cast, sub_mean, div_std: see support/onnx_graphs.py) is the Div
    assert "node 2 'div_std' (Div): Resize scales must be an initializer!" in msg
    assert "--target trt8.2" in msg
    assert not os.path.exists(str(tmp_path / "o"))


def test_int8_without_pycuda_refused_before_any_work(onnx_dynamic, tmp_path, monkeypatch):
    import sys

    from bisenet_deploy.errors import MissingDependencyError
    from bisenet_deploy.portable.shared import install_hints

    monkeypatch.setattr(install_hints, "gpu_absent", lambda: False)  # a GPU machine, no pycuda
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    path, rec = onnx_dynamic
    calls = []
    with pytest.raises(MissingDependencyError,
                       match=r"pycuda is not installed: .*pip install -e '\.\[trt\]'"):
        build_engine(path, rec, BuildOptions(precision="int8", calib_images=str(tmp_path)),
                     trt=fake_tensorrt((8, 6), calls), gpu=A10)
    assert calls == []


def test_unusable_timing_cache_is_replaced_not_a_traceback(onnx_dynamic, tmp_path):
    # TensorRT's create_timing_cache answers None for a damaged cache or one from another version
    path, rec = onnx_dynamic
    calls = []
    trt = fake_tensorrt((10, 3), calls)
    create = trt.IBuilderConfig.create_timing_cache
    trt.IBuilderConfig.create_timing_cache = lambda self, blob: None if blob else create(self, blob)
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"written by another TensorRT")
    _build(path, rec, trt, A10, tmp_path, timing_cache=str(cache))
    state = _config_state(calls)
    assert ("create_timing_cache", b"") in state and ("set_timing_cache", False) in state
    assert state[-1] == ("build",)
    assert cache.read_bytes() == b"written by another TensorRT"  # untouched by a failed build


def test_damaged_timing_cache_turned_into_an_empty_one_is_replaced(onnx_dynamic, tmp_path, caplog):
    # what TensorRT 10/11 and TensorRT-RTX really do with a damaged cache: not None, but an EMPTY
    # cache (and a warning of their own); the builder must see that and say so
    path, rec = onnx_dynamic
    calls = []
    trt = fake_tensorrt((10, 13), calls)

    class Cache(object):
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return self.data

    def create(self, blob):
        calls.append(("create_timing_cache", blob))
        return Cache(blob if blob.startswith(b"TRTCACHE") else b"TRTCACHE-empty")
    trt.IBuilderConfig.create_timing_cache = create
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"\x00garbage from a crashed write")
    with caplog.at_level("WARNING"):
        _build(path, rec, trt, A10, tmp_path, timing_cache=str(cache))
    assert any("timing cache %s is unreadable" % cache in r.getMessage() for r in caplog.records)
    assert ("create_timing_cache", b"") in calls  # a fresh one was set in its place
    # a good cache is used as it is, without the warning
    caplog.clear()
    cache.write_bytes(b"TRTCACHE with timings")
    with caplog.at_level("WARNING"):
        _build(path, rec, trt, A10, tmp_path, timing_cache=str(cache))
    assert not any("unreadable" in r.getMessage() for r in caplog.records)


def _fake_pycuda(monkeypatch):
    driver = fake_cuda.install(monkeypatch)
    return driver


def test_calibration_error_inside_tensorrt_is_raised_after_the_build(onnx_dynamic, tmp_path,
                                                                     monkeypatch):
    # TensorRT calls the calibrator through noexcept C++: an exception escaping get_batch would
    # abort the process, so the calibrator keeps it and the builder raises it after the build
    from bisenet_deploy.portable.building import builder

    driver = _fake_pycuda(monkeypatch)
    monkeypatch.setattr(builder, "_cuda_scope", lambda needed, device: builder._NoScope())
    path, rec = onnx_dynamic
    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "broken.npy").write_bytes(b"not a numpy file")
    calls = []
    trt = fake_tensorrt((8, 6), calls)  # implicit calibration: TensorRT 8.2-8.6 only

    def build(self, network, config):
        calls.append(("get_batch", config.int8_calibrator.get_batch(["image"])))
        return None  # TensorRT fails a calibration that got no data
    trt.Builder.build_serialized_network = build
    out = tmp_path / "out" / "m.engine"
    with pytest.raises(InputError, match="cannot read .*broken.npy"):
        build_engine(path, rec, BuildOptions(precision="int8", calib_images=str(calib),
                                             calib_batch_size=1, output=str(out)),
                     trt=trt, gpu=A10)
    assert ("get_batch", None) in calls  # answered "no more data" instead of raising
    assert not out.parent.exists() or os.listdir(str(out.parent)) == []
    assert driver.allocated == []  # no batch was ever read, so nothing was allocated


def test_unwritable_output_refused_before_any_work(onnx_dynamic, tmp_path):
    path, rec = onnx_dynamic
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    calls = []
    with pytest.raises(InputError, match="cannot write the engine .*a-file is a file, not a folder"):
        build_engine(path, rec, BuildOptions(output=str(blocker / "sub" / "m.engine")),
                     trt=fake_tensorrt((10, 3), calls), gpu=A10)
    with pytest.raises(InputError, match="cannot write the timing cache"):
        build_engine(path, rec, BuildOptions(output=str(tmp_path / "o" / "m.engine"),
                                             timing_cache=str(blocker / "t.cache")),
                     trt=fake_tensorrt((10, 3), calls), gpu=A10)
    assert calls == [] and not (tmp_path / "o").exists()


def test_builder_answer_on_fast_fp16_is_logged(onnx_dynamic, tmp_path, caplog):
    # the SM table says the A10 has fast FP16; a builder that says otherwise is believed and heard
    path, rec = onnx_dynamic
    trt = fake_tensorrt((10, 3), [])
    trt.Builder.platform_has_fast_fp16 = False
    with caplog.at_level("WARNING"):
        _build(path, rec, trt, A10, tmp_path, precision="fp16")
    assert any("will be SLOWER than FP32" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("version, gpu, precision", [((8, 2), TX2, "fp16"), ((8, 6), A10, "fp32"),
                                                     ((10, 3), A10, "fp16")])
def test_trtexec_command_follows_the_builders_plan(onnx_dynamic, tmp_path, monkeypatch, version,
                                                   gpu, precision):
    """`bisenet-build-engine --trtexec` spells the plan the builder itself follows (plan_for):
    the same engine path, precision, profile and timing cache."""
    from bisenet_deploy.portable.building import trtexec
    from bisenet_deploy.portable.building.build_plan import plan_build, plan_for
    from bisenet_deploy.portable.trt.capabilities import assumed_capabilities

    path, rec = onnx_dynamic
    monkeypatch.chdir(tmp_path)
    trt = fake_tensorrt(version, [])
    options = BuildOptions(precision=precision, batch=(1, 2, 4), workspace_mib=512)
    ours = plan_build(path, rec, options, trt=trt, gpu=gpu)
    theirs = plan_for(assumed_capabilities(trt.__version__), path, rec, options, gpu, here=False)
    assert os.path.abspath(theirs.engine_path) == ours.engine_path
    assert os.path.abspath(theirs.cache_path) == ours.cache_path
    assert theirs.profile == ours.profile
    assert theirs.decision.as_dict() == ours.decision.as_dict()
    line = trtexec.plan_command(theirs, binary="trtexec")
    assert "--saveEngine=%s" % theirs.engine_path in line
    assert "--timingCacheFile=%s" % theirs.cache_path in line
    assert "--minShapes=image:1x3x32x64" in line and "--maxShapes=image:4x3x32x64" in line
    assert ("--fp16" in line) == (precision == "fp16") and "--noTF32" in line
