"""The builder's TensorRT calls per API generation, recorded by small fake modules.

No engine is built here: the fake builder's `build_serialized_network` returns None, which is how
TensorRT reports a failed build, so these tests follow `build_engine` through its checks, parse and
configuration up to the build call, assert the exact calls each generation gets (explicit-batch
flag, workspace API, precision flags, profile, optimization level, timing cache), and that a failed
build leaves no file behind. Real builds are in test_engine_tensorrt.py (needs TensorRT + a GPU).
"""

import os
import types

import pytest
from support.onnx_graphs import preprocessing_graph, save
from support.records import engine_record as make_record

from bisenet_deploy.errors import EngineError, InputError
from bisenet_deploy.portable.builder import BuildOptions, build_engine
from bisenet_deploy.portable.gpu_info import GpuInfo


class _Enum(object):
    def __init__(self, name, value):
        self.name, self.value = name, value

    def __int__(self):
        return self.value

    def __repr__(self):
        return self.name


def _enum(**members):
    return type("E", (), {k: _Enum(k, v) for k, v in members.items()})


def fake_tensorrt(version, calls, input_shape=(-1, 3, 32, 64), parse_ok=True):
    """A module-like fake of TensorRT `version` (major, minor) that records calls into `calls`."""
    major, minor = version
    v = (major, minor)

    class Tensor(object):
        def __init__(self, name, shape, dtype):
            self.name, self.shape, self.dtype = name, list(shape), dtype

    data_type = _enum(FLOAT=0, HALF=1, INT8=2, INT32=3)

    class Network(object):
        num_inputs = 1
        num_outputs = 1

        def get_input(self, i):
            return Tensor("image", input_shape, data_type.FLOAT)

        def get_output(self, i):
            return Tensor("normalized", input_shape, data_type.FLOAT)

    class Profile(object):
        def set_shape(self, name, lo, opt, hi):
            calls.append(("set_shape", name, list(lo), list(opt), list(hi)))

    class TimingCache(object):
        def serialize(self):
            return b"cache"

    config_attrs = {
        "set_flag": lambda self, f: calls.append(("set_flag", f.name)),
        "clear_flag": lambda self, f: calls.append(("clear_flag", f.name)),
        "create_timing_cache": lambda self, blob: calls.append(("create_timing_cache", blob))
        or TimingCache(),
        "set_timing_cache": lambda self, c, ignore: calls.append(("set_timing_cache", ignore))
        or True,
        "get_timing_cache": lambda self: TimingCache(),
        "add_optimization_profile": lambda self, p: calls.append(("add_optimization_profile",)),
        "profiling_verbosity": None,
    }
    builder_attrs = {
        "create_builder_config": lambda self: Config(),
        "create_network": lambda self, flags: calls.append(("create_network", flags)) or Network(),
        "create_optimization_profile": lambda self: Profile(),
        "build_serialized_network": lambda self, n, c: calls.append(("build",)) or None,
    }
    module = {"__version__": "%d.%d.1.0" % v, "DataType": data_type,
              "ProfilingVerbosity": _enum(LAYER_NAMES_ONLY=0, NONE=1, DETAILED=2),
              "ICudaEngine": type("ICudaEngine", (), {"create_engine_inspector": None})}
    flags = {}
    if major < 11:
        module["BuilderFlag"] = _enum(FP16=0, INT8=1, TF32=7)
        builder_attrs["platform_has_fast_fp16"] = True
        builder_attrs["platform_has_fast_int8"] = True
        config_attrs["int8_calibrator"] = None
        config_attrs["set_calibration_profile"] = lambda self, p: None
        module["IInt8EntropyCalibrator2"] = object
        flags["EXPLICIT_BATCH"] = 0
    else:
        module["BuilderFlag"] = _enum(REFIT=3)
    if major == 8:
        builder_attrs["build_engine"] = lambda self, n, c: None
    if v < (10, 0):
        config_attrs["max_workspace_size"] = 0
    if v >= (8, 4):
        config_attrs["set_memory_pool_limit"] = lambda self, pool, n: calls.append(
            ("set_memory_pool_limit", pool.name, n))
        module["MemoryPoolType"] = _enum(WORKSPACE=0)
    if v >= (8, 5):
        module["TensorIOMode"] = _enum(INPUT=1, OUTPUT=2)
    if v >= (8, 6):
        config_attrs["builder_optimization_level"] = 3
    if v >= (10, 0):
        flags["STRONGLY_TYPED"] = 1
    module["NetworkDefinitionCreationFlag"] = _enum(**flags)

    Config = type("IBuilderConfig", (), config_attrs)
    Builder = type("Builder", (), dict(builder_attrs, __init__=lambda self, logger: calls.append(
        ("Builder",))))

    class ParserError(object):
        def __init__(self, i):
            self.i = i

        def desc(self):
            return "Resize scales must be an initializer!"

        def node(self):
            return 2

        def code(self):
            return "UNSUPPORTED_NODE"

    class OnnxParser(object):
        def __init__(self, network, logger):
            self.num_errors = 0 if parse_ok else 1

        def parse(self, data, path=None):
            calls.append(("parse", len(data)))
            return parse_ok

        def get_error(self, i):
            return ParserError(i)

    logger = type("Logger", (), {"WARNING": 2, "VERBOSE": 4, "__init__": lambda self, lvl: None})
    module.update(Builder=Builder, IBuilderConfig=Config, OnnxParser=OnnxParser, Logger=logger,
                  ParserError=ParserError)
    return types.SimpleNamespace(**module)


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
    with pytest.raises(EngineError, match="INT8 refused"):
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
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    path, rec = onnx_dynamic
    calls = []
    with pytest.raises(MissingDependencyError,
                       match=r"pycuda is not installed: .*pip install -e '\.\[trt\]'"):
        build_engine(path, rec, BuildOptions(precision="int8", calib_images=str(tmp_path)),
                     trt=fake_tensorrt((10, 3), calls), gpu=A10)
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
    import sys

    driver = types.ModuleType("pycuda.driver")
    driver.init = lambda flags=0: None  # no batch is ever read here, so nothing is allocated
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = driver
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)


def test_calibration_error_inside_tensorrt_is_raised_after_the_build(onnx_dynamic, tmp_path,
                                                                     monkeypatch):
    # TensorRT calls the calibrator through noexcept C++: an exception escaping get_batch would
    # abort the process, so the calibrator keeps it and the builder raises it after the build
    from bisenet_deploy.portable import builder

    _fake_pycuda(monkeypatch)
    monkeypatch.setattr(builder, "_cuda_scope", lambda needed, device: builder._NoScope())
    path, rec = onnx_dynamic
    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "broken.npy").write_bytes(b"not a numpy file")
    calls = []
    trt = fake_tensorrt((10, 3), calls)

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
