"""One fake TensorRT, built per version from the same feature list trt_api.py tests for.

`fake_trt(version)` is a module-like object with exactly the attributes `trt_api.detect_features`
looks for, as `trt_api.features_for_version(version)` says that full TensorRT version has them
(the documented API history, docs/tensorrt-versions.md section 2): so the fakes of 8.2, 8.5,
10.x and 11 differ where the real modules do, and nowhere else. It also carries the runtime side
the runner uses (Logger, Runtime, DataType, TensorIOMode from 8.5): `Runtime.deserialize_cuda_engine`
returns a fake engine of the generation's I/O surface (bindings before 8.5, named tensors
after) made by `trt._engine_factory`, for blobs that start with b"ENGINE", else None.

The fake engines compute logits[c] = image[c % 3] * (c + 1) / 255 and labels = argmax on the fake
GPU of fake_cuda.py.
"""

import types

import numpy as np

from bisenet_deploy.portable import trt_api

from . import fake_cuda

NUM_CLASSES = 4
H, W = 8, 12


class _Enum(object):
    """A pybind enum member: `.name`, and `int()` for flags."""

    def __init__(self, name, value=0, owner="DataType"):
        self.name, self.value, self.owner = name, value, owner

    def __int__(self):
        return self.value

    def __repr__(self):
        return "%s.%s" % (self.owner, self.name)


def _enum(owner, **members):
    return types.SimpleNamespace(**{k: _Enum(k, v, owner) for k, v in members.items()})


def _cls(name, **attrs):
    return type(name, (), attrs)


def fake_trt(version="10.3.0"):
    """Full TensorRT `version` ('10.3.0' or (major, minor)): its features, nothing more."""
    parts = trt_api.parse_version(version)
    f = trt_api.features_for_version(parts)
    text = version if isinstance(version, str) else "%d.%d.0.1" % tuple(parts[:2])
    builder = dict(build_serialized_network=None, create_network=None,
                   create_builder_config=None, create_optimization_profile=None)
    config = dict(set_flag=None, add_optimization_profile=None)
    net_flags = {}
    dtypes = ["FLOAT", "HALF", "INT8", "INT32", "BOOL"]
    mod = dict(__version__=text, OnnxParser=object,
               ParserError=_cls("ParserError", desc=None, node=None, code=None))
    if f.explicit_batch_flag or parts[0] < 11:  # 8.x needs it, 9/10 keep it deprecated
        net_flags["EXPLICIT_BATCH"] = 0
    if f.explicit_batch_flag:
        builder["build_engine"] = None
    if f.strongly_typed_flag:
        net_flags["STRONGLY_TYPED"] = 1
    if f.memory_pool_api:
        config["set_memory_pool_limit"] = None
        mod["MemoryPoolType"] = _enum("MemoryPoolType", WORKSPACE=0)
    if f.max_workspace_size:
        config["max_workspace_size"] = 0
    flags = dict(TF32=7) if f.tf32_flag else {}
    if f.tf32_flag:
        config["clear_flag"] = None
    if f.precision_flags:
        flags.update(FP16=0, INT8=1)
    else:
        flags.update(DEBUG=5, REFIT=3)
    mod["BuilderFlag"] = _enum("BuilderFlag", **flags)
    if f.int8_calibrator:
        mod["IInt8EntropyCalibrator2"] = object
        config["int8_calibrator"] = None
    if f.calibration_profile:
        config["set_calibration_profile"] = None
    if f.platform_fast_flags:
        builder["platform_has_fast_fp16"] = builder["platform_has_fast_int8"] = None
    if f.optimization_level:
        config["builder_optimization_level"] = 3
    if f.profiling_verbosity:
        config["profiling_verbosity"] = None
        mod["ProfilingVerbosity"] = _enum("ProfilingVerbosity", LAYER_NAMES_ONLY=0, NONE=1,
                                          DETAILED=2)
    if f.timing_cache:
        config.update(create_timing_cache=None, set_timing_cache=None, get_timing_cache=None)
    if f.engine_inspector:
        mod["ICudaEngine"] = _cls("ICudaEngine", create_engine_inspector=None)
    if f.parser_node_name:
        mod["ParserError"] = _cls("ParserError", desc=None, node=None, code=None, node_name=None)
    if f.uint8_io:
        dtypes.append("UINT8")
    if f.int64_io:
        dtypes += ["INT64", "BF16"]
    if f.generation != trt_api.GEN_8_2:
        mod["TensorIOMode"] = _enum("TensorIOMode", INPUT=1, OUTPUT=2)
    mod["DataType"] = _enum("DataType", **dict((n, i) for i, n in enumerate(dtypes)))
    mod["NetworkDefinitionCreationFlag"] = _enum("NetworkDefinitionCreationFlag", **net_flags)
    mod["Builder"] = _cls("Builder", **builder)
    mod["IBuilderConfig"] = _cls("IBuilderConfig", **config)
    trt = types.SimpleNamespace(**mod)
    _add_runtime(trt)
    return trt


def _add_runtime(trt):
    """Logger, plugin registration and a Runtime that deserializes fake engines."""
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level=0: None})
    trt.init_libnvinfer_plugins = lambda logger, ns: True
    generation = trt_api.api_generation(trt)

    def default_factory(t):
        cls = FakeBindingsEngine if generation == trt_api.GEN_8_2 else FakeTensorsEngine
        return cls(t)

    trt._engine_factory = default_factory

    class Runtime(object):
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, blob):
            return trt._engine_factory(trt) if bytes(blob).startswith(b"ENGINE") else None

    trt.Runtime = Runtime


def io_table(trt, dynamic):
    n = -1 if dynamic else 1
    return [("image", True, (n, 3, H, W), trt.DataType.FLOAT),
            ("labels", False, (n, H, W), trt.DataType.INT32),
            ("logits", False, (n, NUM_CLASSES, H, W), trt.DataType.FLOAT)]


PROFILE = ((1, 3, H, W), (2, 3, H, W), (4, 3, H, W))


def compute(image):
    """What the fake engine computes: logits[c] = image[c % 3] * (c + 1) / 255, labels = argmax."""
    logits = np.stack([image[:, c % 3] * (c + 1) / 255.0 for c in range(NUM_CLASSES)], axis=1)
    return np.argmax(logits, axis=1).astype(np.int32), logits.astype(np.float32)


class _FakeContextBase(object):
    def __init__(self, engine):
        self.engine = engine
        self.shape = None if engine.dynamic else (1, 3, H, W)
        self.executions = 0

    def _accept(self, shape):
        if not self.engine.dynamic:
            return False
        lo, _, hi = PROFILE
        if not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
            return False
        self.shape = tuple(shape)
        return True

    def _out_shape(self, name):
        n = self.shape[0] if self.shape else -1
        return (n, H, W) if name == "labels" else (n, NUM_CLASSES, H, W)

    def _run(self, addresses, stream_handle):
        assert fake_cuda.DRIVER.current_depth() > 0, "enqueue without a current CUDA context"

        def op():
            self.executions += 1
            fake_cuda.DRIVER.clock_ms += fake_cuda.ENGINE_MS
            n = self.shape[0]
            image = fake_cuda.DRIVER.read(addresses["image"], (n, 3, H, W), np.float32)
            labels, logits = compute(image)
            fake_cuda.DRIVER.write(addresses["labels"], labels)
            fake_cuda.DRIVER.write(addresses["logits"], logits)

        fake_cuda.DRIVER.streams[stream_handle]._submit(op)
        return True


class FakeTensorsContext(_FakeContextBase):
    def __init__(self, engine):
        super(FakeTensorsContext, self).__init__(engine)
        self.addresses = {}

    def set_input_shape(self, name, shape):
        assert name == "image"
        return self._accept(shape)

    def get_tensor_shape(self, name):
        return self.shape if name == "image" else self._out_shape(name)

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = int(ptr)
        return True

    def execute_async_v3(self, stream_handle):
        return self._run(self.addresses, stream_handle)


class FakeBindingsContext(_FakeContextBase):
    def set_binding_shape(self, index, shape):
        assert index == 0
        return self._accept(shape)

    def get_binding_shape(self, index):
        return self.shape if index == 0 else self._out_shape(self.engine.io[index][0])

    def execute_async_v2(self, bindings, stream_handle):
        names = [row[0] for row in self.engine.io]
        return self._run(dict(zip(names, bindings)), stream_handle)


class FakeTensorsEngine(object):
    """The 8.5+ surface: named I/O tensors."""

    def __init__(self, trt, dynamic=False):
        self.trt, self.dynamic = trt, dynamic
        self.io = io_table(trt, dynamic)
        self.num_io_tensors = len(self.io)

    def _row(self, name):
        return [r for r in self.io if r[0] == name][0]

    def get_tensor_name(self, i):
        return self.io[i][0]

    def get_tensor_mode(self, name):
        return self.trt.TensorIOMode.INPUT if self._row(name)[1] else self.trt.TensorIOMode.OUTPUT

    def get_tensor_shape(self, name):
        return self._row(name)[2]

    def get_tensor_dtype(self, name):
        return self._row(name)[3]

    def get_tensor_profile_shape(self, name, profile_index):
        assert name == "image" and profile_index == 0
        return PROFILE

    def create_execution_context(self):
        self.context = FakeTensorsContext(self)
        return self.context


class FakeBindingsEngine(object):
    """The 8.2-8.4 surface: binding indices (and no num_io_tensors)."""

    def __init__(self, trt, dynamic=False):
        self.trt, self.dynamic = trt, dynamic
        self.io = io_table(trt, dynamic)
        self.num_bindings = len(self.io)

    def get_binding_name(self, i):
        return self.io[i][0]

    def binding_is_input(self, i):
        return self.io[i][1]

    def get_binding_shape(self, i):
        return self.io[i][2]

    def get_binding_dtype(self, i):
        return self.io[i][3]

    def get_profile_shape(self, profile_index, name):
        assert profile_index == 0 and name == "image"
        return PROFILE

    def create_execution_context(self):
        self.context = FakeBindingsContext(self)
        return self.context
