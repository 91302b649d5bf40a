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

from bisenet_deploy.portable.trt import trt_api

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


def fake_trt(version="10.3.0", calls=None, input_shape=(-1, 3, 32, 64), parse_ok=True):
    """Full TensorRT `version` ('10.3.0' or (major, minor)): its features, nothing more.

    The builder side records what the builder does into `calls` (a list): ("Builder",),
    ("parse", nbytes), ("create_network", flags), ("set_flag", name), ("clear_flag", name),
    ("set_memory_pool_limit", pool, bytes), ("set_shape", name, lo, opt, hi),
    ("add_optimization_profile",), ("create_timing_cache", blob), ("set_timing_cache", ignore),
    ("build",); its network has one input `input_shape` and the build returns None (no engine is
    ever faked). The parser fails with one error when `parse_ok` is False.
    """
    calls = [] if calls is None else calls
    parts = trt_api.parse_version(version)
    f = trt_api.features_for_version(parts)
    text = version if isinstance(version, str) else "%d.%d.0.1" % tuple(parts[:2])
    timing_cache = _cls("ITimingCache", serialize=lambda self: b"cache")
    network = _network(input_shape)
    profile = _cls("IOptimizationProfile", set_shape=lambda self, name, lo, opt, hi: calls.append(
        ("set_shape", name, list(lo), list(opt), list(hi))))
    builder = dict(
        __init__=lambda self, logger: calls.append(("Builder",)),
        create_builder_config=lambda self: trt.IBuilderConfig(),
        create_network=lambda self, flags: calls.append(("create_network", flags)) or network(),
        create_optimization_profile=lambda self: profile(),
        build_serialized_network=lambda self, n, c: calls.append(("build",)) or None)
    config = dict(
        set_flag=lambda self, flag: calls.append(("set_flag", flag.name)),
        add_optimization_profile=lambda self, p: calls.append(("add_optimization_profile",)))
    net_flags = {}
    dtypes = ["FLOAT", "HALF", "INT8", "INT32", "BOOL"]
    mod = dict(__version__=text)
    if f.explicit_batch_flag or parts[0] < 11:  # 8.x needs it, 9/10 keep it deprecated
        net_flags["EXPLICIT_BATCH"] = 0
    if f.explicit_batch_flag:
        builder["build_engine"] = lambda self, n, c: None
    if f.strongly_typed_flag:
        net_flags["STRONGLY_TYPED"] = 1
    if f.memory_pool_api:
        config["set_memory_pool_limit"] = lambda self, pool, n: calls.append(
            ("set_memory_pool_limit", pool.name, n))
        mod["MemoryPoolType"] = _enum("MemoryPoolType", WORKSPACE=0)
    if f.max_workspace_size:
        config["max_workspace_size"] = 0
    flags = dict(TF32=7) if f.tf32_flag else {}
    if f.tf32_flag:
        config["clear_flag"] = lambda self, flag: calls.append(("clear_flag", flag.name))
    if f.precision_flags:
        flags.update(FP16=0, INT8=1)
    else:
        flags.update(DEBUG=5, REFIT=3)
    mod["BuilderFlag"] = _enum("BuilderFlag", **flags)
    if f.int8_calibrator:
        mod["IInt8EntropyCalibrator2"] = object
        config["int8_calibrator"] = None
    if f.calibration_profile:
        config["set_calibration_profile"] = lambda self, p: None
    if f.platform_fast_flags:
        builder["platform_has_fast_fp16"] = builder["platform_has_fast_int8"] = True
    if f.optimization_level:
        config["builder_optimization_level"] = 3
    if f.profiling_verbosity:
        config["profiling_verbosity"] = None
        mod["ProfilingVerbosity"] = _enum("ProfilingVerbosity", LAYER_NAMES_ONLY=0, NONE=1,
                                          DETAILED=2)
    if f.timing_cache:
        config.update(
            create_timing_cache=lambda self, blob: calls.append(("create_timing_cache", blob))
            or timing_cache(),
            set_timing_cache=lambda self, c, ignore: calls.append(("set_timing_cache", ignore))
            or True,
            get_timing_cache=lambda self: timing_cache())
    if f.engine_inspector:
        mod["ICudaEngine"] = _cls("ICudaEngine", create_engine_inspector=None)
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
    mod["ParserError"] = _parser_error(f.parser_node_name)
    mod["OnnxParser"] = _parser(calls, parse_ok, mod["ParserError"])
    trt = types.SimpleNamespace(**mod)
    _add_runtime(trt)
    return trt


def _network(input_shape):
    class ITensor(object):
        def __init__(self, name, shape):
            self.name, self.shape, self.dtype = name, list(shape), _Enum("FLOAT")

    class INetworkDefinition(object):
        num_inputs = 1
        num_outputs = 1

        def get_input(self, i):
            return ITensor("image", input_shape)

        def get_output(self, i):
            return ITensor("normalized", input_shape)

    return INetworkDefinition


def _parser_error(with_node_name):
    """One parser error: node 2 of support/onnx_graphs.py's graph (its Div) is unsupported."""
    methods = dict(__init__=lambda self, i: None,
                   desc=lambda self: "Resize scales must be an initializer!",
                   node=lambda self: 2, code=lambda self: "UNSUPPORTED_NODE")
    if with_node_name:
        methods["node_name"] = lambda self: "div_std"
    return _cls("ParserError", **methods)


def _parser(calls, parse_ok, error):
    class OnnxParser(object):
        def __init__(self, network, logger):
            self.num_errors = 0 if parse_ok else 1

        def parse(self, data, path=None):
            calls.append(("parse", len(data)))
            return parse_ok

        def get_error(self, i):
            return error(i)

    return OnnxParser


def _add_runtime(trt):
    """Logger, plugin registration and a Runtime that deserializes fake engines: blobs starting
    with `trt._engine_magic` (b"ENGINE") become `trt._engine_factory(trt)`, others None."""
    trt.Logger = type("Logger", (), {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3,
                                     "VERBOSE": 4, "__init__": lambda self, level=0: None})
    trt.init_libnvinfer_plugins = lambda logger, ns: True
    generation = trt_api.api_generation(trt)

    def default_factory(t):
        cls = FakeBindingsEngine if generation == trt_api.GEN_8_2 else FakeTensorsEngine
        return cls(t)

    trt._engine_factory = default_factory
    trt._engine_magic = b"ENGINE"

    class Runtime(object):
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, blob):
            if bytes(blob).startswith(trt._engine_magic):
                return trt._engine_factory(trt)
            return None

    trt.Runtime = Runtime


def io_table(trt, dynamic, height=H, width=W, classes=NUM_CLASSES):
    """(name, is_input, shape, DataType) of the engine's image input and labels/logits outputs
    (only the default sizes can run: the fake contexts compute on H x W)."""
    n = -1 if dynamic else 1
    return [("image", True, (n, 3, height, width), trt.DataType.FLOAT),
            ("labels", False, (n, height, width), trt.DataType.INT32),
            ("logits", False, (n, classes, height, width), trt.DataType.FLOAT)]


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

    def __init__(self, trt, dynamic=False, io=None):
        self.trt, self.dynamic = trt, dynamic
        self.io = io or io_table(trt, dynamic)
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

    def __init__(self, trt, dynamic=False, io=None):
        self.trt, self.dynamic = trt, dynamic
        self.io = io or io_table(trt, dynamic)
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
