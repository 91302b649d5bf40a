"""The TensorRT runner's own logic, without TensorRT or a GPU.

Small fake engines expose exactly the attributes of each API generation (8.2-8.4 bindings, 8.5+
named tensors), and a fake `pycuda.driver` keeps "device memory" in host bytes, so these tests
check our branching, buffer sizing, copies, dynamic-batch and CUDA-graph handling, the context
push/pop discipline and the cleanup; they do not pretend to build or run a real engine (the test
marked `tensorrt` at the end does that where TensorRT and a GPU exist).
"""

import json
import subprocess
import sys
import threading
import types

import numpy as np
import pytest

from bisenet_deploy.errors import (EngineError, IncompatibleEngineError, InputError,
                                   MissingDependencyError, UserError)
from bisenet_deploy.portable import cuda_context
from bisenet_deploy.portable import trt_runner as tr

NUM_CLASSES = 4
H, W = 8, 12


# -- fake tensorrt ---------------------------------------------------------------------------------
class _Enum(object):
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "DataType.%s" % self.name


def fake_trt(version="10.3.0", uint8=True):
    names = ["FLOAT", "HALF", "INT8", "INT32", "BOOL"] + (["UINT8", "INT64", "BF16"] if uint8
                                                          else [])
    trt = types.SimpleNamespace(__version__=version)
    trt.DataType = types.SimpleNamespace(**{n: _Enum(n) for n in names})
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level=0: None})
    trt.init_libnvinfer_plugins = lambda logger, ns: True

    class Runtime(object):
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, blob):
            return trt._engine_factory(trt) if blob.startswith(b"ENGINE") else None

    trt.Runtime = Runtime
    trt.Builder = object  # what trt_api.is_real_tensorrt looks for besides __version__
    return trt


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
        assert DRIVER.current_depth() > 0, "enqueue without a current CUDA context"

        def op():
            self.executions += 1
            DRIVER.clock_ms += ENGINE_MS
            n = self.shape[0]
            image = DRIVER.read(addresses["image"], (n, 3, H, W), np.float32)
            labels, logits = compute(image)
            DRIVER.write(addresses["labels"], labels)
            DRIVER.write(addresses["logits"], logits)

        DRIVER.streams[stream_handle].submit(op)
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


# -- fake pycuda.driver ----------------------------------------------------------------------------
#: the fake device's speed: copies move this many bytes per ms, one engine run takes ENGINE_MS
BYTES_PER_MS = 1000.0
ENGINE_MS = 2.0


class FakeDriver(object):
    """Device memory in host bytes; streams run ops at synchronize; contexts are counted.

    A device clock (ms) advances as the stream's ops run: copies by their size, engine runs by
    ENGINE_MS; events take the clock's reading when the stream reaches them, as CUDA's do.
    """

    def __init__(self):
        self.clock_ms = 0.0
        self.memory = {}
        self.next_ptr = 0x1000
        self.freed = []
        self.allocated = []
        self.streams = {}
        self.local = threading.local()
        self.events = []

    # bookkeeping
    def current_depth(self):
        return getattr(self.local, "depth", 0)

    def _need_context(self):
        assert self.current_depth() > 0, "CUDA call without a current context"

    def _new_ptr(self, backing):
        ptr = self.next_ptr
        self.next_ptr += 0x1000 + len(backing)
        self.memory[ptr] = backing
        return ptr

    def read(self, ptr, shape, dtype):
        count = int(np.prod(shape))
        return np.frombuffer(self.memory[ptr], dtype=dtype, count=count).reshape(shape).copy()

    def write(self, ptr, array):
        data = np.ascontiguousarray(array).tobytes()
        self.memory[ptr][:len(data)] = data

    def module(self):
        drv = self
        mod = types.ModuleType("pycuda.driver")
        mod.init = lambda flags=0: None
        mod.ctx_flags = types.SimpleNamespace(SCHED_AUTO=0, MAP_HOST=8)
        mod.host_alloc_flags = types.SimpleNamespace(DEVICEMAP=2, PORTABLE=1)
        mod.device_attribute = types.SimpleNamespace(CAN_MAP_HOST_MEMORY="map")

        class Context(object):
            released = []

            def push(self):
                drv.local.depth = drv.current_depth() + 1

            @staticmethod
            def pop():
                assert drv.current_depth() > 0
                drv.local.depth = drv.current_depth() - 1

            def detach(self):
                Context.released.append(self)
                Context.pop()

        class Device(object):
            def __init__(self, index):
                self.index = index

            @staticmethod
            def count():
                return 1

            def name(self):
                return "NVIDIA Fake GPU"

            def compute_capability(self):
                return (8, 6)

            def get_attribute(self, attr):
                return 1

            def retain_primary_context(self):
                return Context()

            def make_context(self, flags=0):
                ctx = Context()
                ctx.push()
                return ctx

        class DeviceAllocation(object):
            def __init__(self, nbytes):
                drv._need_context()
                self.ptr = drv._new_ptr(bytearray(nbytes))
                drv.allocated.append(self)

            def __int__(self):
                return self.ptr

            def free(self):
                drv._need_context()
                drv.freed.append(self)

        class HostAllocation(bytearray):
            def free(self):
                drv._need_context()
                drv.freed.append(self)

            def get_device_pointer(self):
                return drv._new_ptr(self)  # mapped: the "device" sees the same bytes

        def pagelocked_empty(count, dtype, mem_flags=0):
            drv._need_context()
            dtype = np.dtype(dtype)
            alloc = HostAllocation(int(count) * dtype.itemsize)
            alloc.flags = mem_flags
            drv.allocated.append(alloc)
            return np.ndarray((int(count),), dtype, buffer=alloc)

        class Graph(object):
            def __init__(self, ops):
                self.ops = ops

            def instantiate(self):  # pycuda's Graph -> GraphExec
                return self

            def launch(self, stream=None):
                for op in self.ops:
                    stream.submit(op)

        class Stream(object):
            def __init__(self, flags=0):
                drv._need_context()
                self.handle = 0x5000 + len(drv.streams)
                drv.streams[self.handle] = self
                self.pending, self.capture = [], None

            def submit(self, op):
                (self.capture if self.capture is not None else self.pending).append(op)

            def synchronize(self):
                drv._need_context()
                ops, self.pending = self.pending, []
                for op in ops:
                    op()

            def begin_capture(self, mode=None):
                self.capture = []

            def end_capture(self):
                ops, self.capture = self.capture, None
                return Graph(ops)

        class Event(object):
            def __init__(self, flags=0):
                drv._need_context()
                drv.events.append(self)
                self.at_ms = None

            def record(self, stream=None):
                stream.submit(lambda: setattr(self, "at_ms", drv.clock_ms))

            def time_since(self, other):  # pycuda: later.time_since(earlier), in ms
                assert self.at_ms is not None and other.at_ms is not None, "event not reached"
                return self.at_ms - other.at_ms

        def memcpy_htod_async(dest, src, stream=None):
            data = np.ascontiguousarray(src).tobytes()

            def op():
                drv.memory[int(dest)][:len(data)] = data
                drv.clock_ms += len(data) / BYTES_PER_MS
            stream.submit(op)

        def memcpy_dtoh_async(dest, src, stream=None):
            def op():
                n = dest.nbytes
                dest[...] = np.frombuffer(bytes(drv.memory[int(src)][:n]), dtype=dest.dtype)
                drv.clock_ms += n / BYTES_PER_MS
            stream.submit(op)

        def mem_alloc(nbytes):
            return DeviceAllocation(nbytes)

        mod.Context, mod.Device, mod.Stream, mod.Event = Context, Device, Stream, Event
        mod.pagelocked_empty, mod.mem_alloc = pagelocked_empty, mem_alloc
        mod.memcpy_htod_async, mod.memcpy_dtoh_async = memcpy_htod_async, memcpy_dtoh_async
        return mod


DRIVER = None


@pytest.fixture
def fake_gpu(monkeypatch, tmp_path):
    """Installs fake tensorrt + pycuda modules; returns a function making an engine file."""
    global DRIVER
    DRIVER = FakeDriver()
    driver_mod = DRIVER.module()
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = driver_mod
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver_mod)
    # the retained primary contexts are per process (per pycuda module): start empty
    monkeypatch.setattr(cuda_context, "_PRIMARY", {})
    state = {}

    def make(generation="tensors", dynamic=False, version="10.3.0", sidecar=None, blob=b"ENGINE"):
        trt = fake_trt(version)
        cls = FakeTensorsEngine if generation == "tensors" else FakeBindingsEngine

        def factory(t):
            state["engine"] = cls(t, dynamic=dynamic)
            return state["engine"]

        trt._engine_factory = factory
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        engine_path = tmp_path / ("model-%s-%s.engine" % (generation, dynamic))
        engine_path.write_bytes(blob)
        if sidecar is not None:
            (tmp_path / ("model-%s-%s.json" % (generation, dynamic))).write_text(
                json.dumps(sidecar))
        return str(engine_path)

    make.state = state
    return make


def image_batch(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 3, H, W)).astype(np.float32)


# -- pure logic ------------------------------------------------------------------------------------
def test_api_generation_is_a_feature_test():
    trt = fake_trt()
    assert tr.api_generation(FakeTensorsEngine(trt)) == tr.TENSORS
    assert tr.api_generation(FakeBindingsEngine(trt)) == tr.BINDINGS


def test_dtype_mapping_keeps_int32_labels_and_knows_each_version():
    trt = fake_trt()
    assert tr.numpy_dtype(trt.DataType.INT32, trt) == np.int32
    assert tr.numpy_dtype(trt.DataType.FLOAT, trt) == np.float32
    assert tr.numpy_dtype(trt.DataType.HALF, trt) == np.float16
    assert tr.numpy_dtype(trt.DataType.UINT8, trt) == np.uint8
    assert tr.numpy_dtype(trt.DataType.INT64, trt) == np.int64
    assert tr.numpy_dtype(trt.DataType.BOOL, trt) == np.bool_
    with pytest.raises(EngineError, match="BF16"):
        tr.numpy_dtype(trt.DataType.BF16, trt)
    old = fake_trt("8.2.1", uint8=False)  # 8.2 has no UINT8/INT64 members: still maps the rest
    assert tr.numpy_dtype(old.DataType.INT8, old) == np.int8
    with pytest.raises(EngineError):
        tr.numpy_dtype(trt.DataType.UINT8, old)


@pytest.mark.parametrize("cls", [FakeTensorsEngine, FakeBindingsEngine])
def test_engine_io_reads_both_generations_alike(cls):
    trt = fake_trt()
    io = tr.engine_io(cls(trt, dynamic=True), trt)
    assert [(t.name, t.is_input, t.shape, t.dtype) for t in io] == [
        ("image", True, (-1, 3, H, W), np.float32),
        ("labels", False, (-1, H, W), np.int32),
        ("logits", False, (-1, NUM_CLASSES, H, W), np.float32)]
    assert io[0].profile == PROFILE and io[1].profile is None
    assert tr.max_input_shape(io[0]) == (4, 3, H, W)
    assert tr.batch_range(io[0]) == (1, 4)
    static = tr.engine_io(cls(trt, dynamic=False), trt)
    assert tr.max_input_shape(static[0]) == (1, 3, H, W) and tr.batch_range(static[0]) == (1, 1)
    if cls is FakeBindingsEngine:
        assert [t.index for t in io] == [0, 1, 2]


@pytest.mark.parametrize("cls", [FakeTensorsEngine, FakeBindingsEngine])
def test_output_buffers_sized_from_the_profile_max(cls):
    trt = fake_trt()
    engine = cls(trt, dynamic=True)
    io = tr.engine_io(engine, trt)
    context = engine.create_execution_context()
    gen = tr.api_generation(engine)
    tr.set_input_shape(context, io[0], tr.max_input_shape(io[0]), gen)
    shapes = tr.resolved_output_shapes(context, io, gen)
    assert shapes == {"labels": (4, H, W), "logits": (4, NUM_CLASSES, H, W)}
    assert tr.buffer_nbytes(shapes["labels"], np.int32) == 4 * H * W * 4
    assert tr.buffer_nbytes(shapes["logits"], np.float32) == 4 * NUM_CLASSES * H * W * 4
    with pytest.raises(EngineError, match="unresolved"):
        tr.volume((-1, 3))


def test_unresolved_output_shape_is_an_engine_error():
    trt = fake_trt()
    engine = FakeTensorsEngine(trt, dynamic=True)
    io = tr.engine_io(engine, trt)
    with pytest.raises(EngineError, match="not all set"):
        tr.resolved_output_shapes(engine.create_execution_context(), io, tr.TENSORS)


def test_profile_range_check_names_the_range():
    trt = fake_trt()
    dyn = tr.engine_io(FakeTensorsEngine(trt, dynamic=True), trt)[0]
    for n in (1, 2, 4):
        tr.check_batch_in_profile(n, dyn)
    with pytest.raises(InputError, match=r"batch 5 is outside .*batch 1\.\.4"):
        tr.check_batch_in_profile(5, dyn)
    with pytest.raises(InputError, match="batch 0"):
        tr.check_batch_in_profile(0, dyn)
    static = tr.engine_io(FakeTensorsEngine(trt, dynamic=False), trt)[0]
    with pytest.raises(InputError, match="built for batch 1, got a batch of 2"):
        tr.check_batch_in_profile(2, static)


def test_refused_shape_is_an_input_error():
    trt = fake_trt()
    engine = FakeBindingsEngine(trt, dynamic=True)
    io = tr.engine_io(engine, trt)
    with pytest.raises(InputError, match="refused the input shape"):
        tr.set_input_shape(engine.create_execution_context(), io[0], (9, 3, H, W), tr.BINDINGS)


def test_specs_from_record():
    record = {"model": {"num_classes": 19},
              "export": {"input_name": "image", "input_size": [2048, 1024], "input_dtype": "uint8",
                         "output_names": ["labels", "logits"],
                         "batch": {"dynamic": True, "min": 1, "opt": 2, "max": 4}}}
    inp, outs = tr.specs_from_record(record)
    assert inp.shape == (-1, 3, 1024, 2048) and inp.dtype == np.uint8
    assert [(o.name, o.shape, o.dtype) for o in outs] == [
        ("labels", (-1, 1024, 2048), np.int32), ("logits", (-1, 19, 1024, 2048), np.float32)]


# -- the runner on the fakes -----------------------------------------------------------------------
@pytest.mark.parametrize("generation", ["tensors", "bindings"])
@pytest.mark.parametrize("zero_copy", [False, True])
def test_runner_end_to_end_on_fakes(fake_gpu, generation, zero_copy):
    path = fake_gpu(generation, dynamic=False)
    runner = tr.TensorRTRunner(path, zero_copy=zero_copy)
    with runner:
        assert runner.generation == generation
        assert runner.input_spec().shape == (1, 3, H, W)
        assert [s.dtype for s in runner.output_specs()] == [np.int32, np.float32]
        batch = image_batch(1)
        out = runner.infer(batch)
        labels, logits = compute(batch)
        assert out["labels"].dtype == np.int32 and np.array_equal(out["labels"], labels)
        np.testing.assert_allclose(out["logits"], logits, rtol=1e-6)
        # the four events split the call: input copy, engine, output copies (labels + logits)
        in_bytes, out_bytes = batch.nbytes, out["labels"].nbytes + out["logits"].nbytes
        copies = {"h2d": in_bytes / BYTES_PER_MS, "d2h": out_bytes / BYTES_PER_MS}
        if zero_copy:  # mapped memory: nothing is copied
            copies = {"h2d": 0.0, "d2h": 0.0}
        assert runner.last_phase_times_ms() == pytest.approx(dict(compute=ENGINE_MS, **copies))
        assert runner.last_device_time_ms() == ENGINE_MS and runner.phase_clock == "cuda-events"
        # results are copies: the next call does not change them
        keep = out["logits"].copy()
        runner.infer(image_batch(1, seed=1))
        assert np.array_equal(out["logits"], keep)
        with pytest.raises(InputError, match="must be float32"):
            runner.infer(batch.astype(np.float16))
        with pytest.raises(InputError, match="must have shape 1x3x8x12, got 2x3x8x12"):
            runner.infer(image_batch(2))
        assert DRIVER.current_depth() == 0  # the context is current only inside calls
    assert not runner.is_active
    assert DRIVER.current_depth() == 0
    # everything allocated was freed
    assert len(DRIVER.freed) == len(DRIVER.allocated) and DRIVER.allocated
    if zero_copy:  # mapped host memory, no device allocations
        assert all(isinstance(a, bytearray) and a.flags == 2 for a in DRIVER.allocated)


@pytest.mark.parametrize("generation", ["tensors", "bindings"])
def test_runner_dynamic_batch_on_fakes(fake_gpu, generation):
    path = fake_gpu(generation, dynamic=True)
    with tr.TensorRTRunner(path) as runner:
        assert runner.input_spec().shape == (-1, 3, H, W)
        # buffers are sized for the profile max
        assert runner._buffers["logits"].host.size == 4 * NUM_CLASSES * H * W
        for n in (1, 3, 4, 2):
            batch = image_batch(n, seed=n)
            out = runner.infer(batch)
            assert out["labels"].shape == (n, H, W)
            assert np.array_equal(out["labels"], compute(batch)[0])
        with pytest.raises(InputError, match=r"batch 1\.\.4"):
            runner.infer(image_batch(5))


@pytest.mark.parametrize("generation", ["tensors", "bindings"])
def test_runner_cuda_graph_per_shape(fake_gpu, generation):
    path = fake_gpu(generation, dynamic=True)
    with tr.TensorRTRunner(path, use_cuda_graph=True) as runner:
        engine = fake_gpu.state["engine"]
        for n in (2, 2, 3, 2):
            batch = image_batch(n, seed=10 + n)
            assert np.array_equal(runner.infer(batch)["labels"], compute(batch)[0])
            # a graph launch is timed like a plain enqueue: one engine run between the copies
            assert runner.last_phase_times_ms()["compute"] == pytest.approx(ENGINE_MS)
            assert runner.last_phase_times_ms()["h2d"] == pytest.approx(batch.nbytes / BYTES_PER_MS)
        assert sorted(runner._graphs) == [(2, 3, H, W), (3, 3, H, W)]
        # per shape: one plain warm-up enqueue, then graph launches
        assert engine.context.executions == 2 + 4
        assert "cuda-graph" in runner.describe()
    assert runner._graphs == {}


def test_cuda_graph_without_pycuda_stream_capture_refused_at_activate(fake_gpu, monkeypatch):
    path = fake_gpu("tensors", dynamic=False)
    monkeypatch.delattr(sys.modules["pycuda.driver"].Stream, "begin_capture")
    runner = tr.TensorRTRunner(path, use_cuda_graph=True)
    with pytest.raises(EngineError, match="Stream.begin_capture"):
        runner.activate()
    assert not runner.is_active and DRIVER.current_depth() == 0
    assert len(DRIVER.freed) == len(DRIVER.allocated)  # nothing left allocated


def test_runner_usable_from_a_worker_thread(fake_gpu):
    path = fake_gpu("tensors", dynamic=False)
    runner = tr.TensorRTRunner(path).activate()
    result = {}

    def work():
        result["labels"] = runner.infer(image_batch(1, seed=3))["labels"]
        result["depth"] = DRIVER.current_depth()

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert np.array_equal(result["labels"], compute(image_batch(1, seed=3))[0])
    assert result["depth"] == 0
    runner.deactivate()
    assert len(DRIVER.freed) == len(DRIVER.allocated)


def test_own_context_is_destroyed(fake_gpu):
    path = fake_gpu("tensors")
    with tr.TensorRTRunner(path, context_mode="own"):
        pass
    assert len(sys.modules["pycuda.driver"].Context.released) == 1
    assert DRIVER.current_depth() == 0


def test_undeserializable_engine_is_an_incompatible_engine_error(fake_gpu):
    path = fake_gpu("tensors", blob=b"garbage")
    runner = tr.TensorRTRunner(path)
    with pytest.raises(IncompatibleEngineError, match="could not load") as err:
        runner.activate()
    # the fix works on the desktop and inside the Jetson bundle (which has no bisenet-* commands)
    assert "bisenet-build-engine" in str(err.value) and "./build_engine.sh" in str(err.value)
    assert not runner.is_active and DRIVER.current_depth() == 0


def _sidecar(version, gpu_name="NVIDIA Fake GPU", cc="8.6"):
    return {"schema": 1, "kind": "bisenet_deploy.engine", "tensorrt_version": version,
            "gpu": {"name": gpu_name, "compute_capability": cc}, "precision": "fp16",
            "io": [], "onnx_metadata": {"model": {"num_classes": NUM_CLASSES},
                                        "export": {"input_size": [W, H]}}}


def test_sidecar_metadata_and_compatibility(fake_gpu):
    good = fake_gpu("tensors", sidecar=_sidecar("10.3.0"))
    runner = tr.TensorRTRunner(good)
    assert runner.metadata["model"]["num_classes"] == NUM_CLASSES
    with runner:
        pass
    other_trt = fake_gpu("bindings", sidecar=_sidecar("8.6.1"))
    with pytest.raises(IncompatibleEngineError) as err:
        tr.TensorRTRunner(other_trt).activate()
    # both sides named: the engine's TensorRT and this machine's
    assert "TensorRT 8.6.1" in str(err.value) and "TensorRT 10.3.0" in str(err.value)
    assert "./build_engine.sh --force" in str(err.value)
    other_gpu = fake_gpu("tensors", dynamic=True, sidecar=_sidecar("10.3.0", "Orin", "8.7"))
    with pytest.raises(IncompatibleEngineError) as err:
        tr.TensorRTRunner(other_gpu).activate()
    assert "Orin (SM 8.7)" in str(err.value) and "NVIDIA Fake GPU (SM 8.6)" in str(err.value)
    assert DRIVER.current_depth() == 0


def test_missing_engine_and_sidecar_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):  # a missing path: exit code 2
        tr.TensorRTRunner(str(tmp_path / "none.engine"))
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ENGINE")
    with pytest.raises(EngineError, match="sidecar"):
        tr.TensorRTRunner(str(engine), sidecar_path=str(tmp_path / "nope.json"))


def test_specs_before_activate_need_metadata(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ENGINE")
    runner = tr.TensorRTRunner(str(engine))
    with pytest.raises(EngineError, match="after activate"):
        runner.input_spec()
    with pytest.raises(UserError, match="not active"):
        runner.infer(image_batch(1))


# -- no tensorrt / pycuda here -----------------------------------------------------------------------
_BLOCK = (
    "import sys, importlib.abc\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('tensorrt', 'pycuda'):\n"
    "            raise ImportError('blocked ' + name)\n"
    "sys.meta_path.insert(0, Block())\n")


def test_import_needs_neither_tensorrt_nor_pycuda():
    code = _BLOCK + (
        "import bisenet_deploy.portable.trt_runner, bisenet_deploy.portable.cuda_context\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in "
        "('tensorrt', 'pycuda', 'torch', 'onnxruntime')]\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_tensorrt_or_pycuda_is_one_clear_line(tmp_path, monkeypatch):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ENGINE")
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install -e '\.\[trt\]'"):
        tr.TensorRTRunner(str(engine)).activate()
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt())
    monkeypatch.setitem(sys.modules, "pycuda", None)
    with pytest.raises(MissingDependencyError,
                       match=r"pycuda is not installed: .*pip install -e '\.\[trt\]'"):
        tr.TensorRTRunner(str(engine)).activate()


def test_portable_files_stay_python36_compatible():
    import os
    import shutil

    import bisenet_deploy.portable.cuda_context as cc

    exe = shutil.which("vermin", path=os.path.dirname(sys.executable)) or shutil.which("vermin")
    if exe is None:
        pytest.skip("vermin is not installed (pip install vermin)")
    out = subprocess.run([exe, "--target=3.6-", "--no-tips",
                          "--violations", tr.__file__, cc.__file__],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# -- the real thing ----------------------------------------------------------------------------------
@pytest.mark.tensorrt
def test_real_engine_matches_onnxruntime(tmp_path):
    """Build a small engine from a tiny export and compare the runner with onnxruntime."""
    import tensorrt as trt

    from bisenet_deploy.runtime.ort_runner import OnnxRuntimeRunner
    from test_runtime import TinySegNet, export_onnx, make_record  # tests/ is on sys.path

    record = make_record(output="both", dynamic=True)
    onnx_path = export_onnx(tmp_path / "tiny.onnx", TinySegNet().eval(), record)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) \
        if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH") else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as fh:
        assert parser.parse(fh.read()), [parser.get_error(i) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    shape = (3, record["export"]["input_size"][1], record["export"]["input_size"][0])
    profile.set_shape("image", (1,) + shape, (2,) + shape, (4,) + shape)
    config.add_optimization_profile(profile)
    blob = builder.build_serialized_network(network, config)
    engine_path = tmp_path / "tiny.engine"
    engine_path.write_bytes(bytes(blob))
    batch = np.random.default_rng(0).uniform(0, 255, (3,) + shape).astype(np.float32)
    for graph in (False, True):
        with tr.TensorRTRunner(str(engine_path), use_cuda_graph=graph) as trt_run, \
                OnnxRuntimeRunner(onnx_path) as ort:
            got, want = trt_run.infer(batch), ort.infer(batch)
            assert got["labels"].dtype == np.int32
            assert np.mean(got["labels"] == want["labels"]) > 0.999
            np.testing.assert_allclose(got["logits"], want["logits"], atol=1e-3)
            assert trt_run.last_device_time_ms() > 0
            phases = trt_run.last_phase_times_ms()
            assert all(phases[k] > 0 for k in ("h2d", "compute", "d2h"))
            assert phases["compute"] == trt_run.last_device_time_ms()


def test_type_stubs_are_not_mistaken_for_tensorrt(tmp_path, monkeypatch):
    """tensorrt-stubs installs a bare `tensorrt/` folder: importable, but no TensorRT."""
    from bisenet_deploy.runtime.factory import backend_problem

    (tmp_path / "tensorrt").mkdir()
    (tmp_path / "tensorrt" / "__init__.pyi").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    assert "tensorrt" in backend_problem("tensorrt")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ENGINE")
    with pytest.raises(MissingDependencyError, match=r"pip install -e '\.\[trt\]'"):
        tr.TensorRTRunner(str(engine)).activate()


def test_cuda_context_scopes(fake_gpu):
    fake_gpu("tensors")  # installs the fake driver
    ctx = cuda_context.CudaContext(0, mode="own").open()
    assert DRIVER.current_depth() == 0  # open() leaves nothing current
    with ctx:
        with ctx:
            assert DRIVER.current_depth() == 2
        assert DRIVER.current_depth() == 1
    assert DRIVER.current_depth() == 0
    with pytest.raises(EngineError, match="without a matching push"):
        ctx.pop()
    assert ctx.device_name() == "NVIDIA Fake GPU" and ctx.compute_capability() == (8, 6)
    ctx.close()
    assert not ctx.is_open and DRIVER.current_depth() == 0
    with pytest.raises(EngineError, match="not open"):
        ctx.push()
    with pytest.raises(EngineError, match="does not exist"):
        cuda_context.CudaContext(3).open()
    # the primary context is retained once per device and shared
    a = cuda_context.CudaContext(0).open()
    b = cuda_context.CudaContext(0).open()
    assert a._ctx is b._ctx


def test_bindings_of_several_profiles_list_each_tensor_once():
    trt = fake_trt("8.2.1", uint8=False)
    engine = FakeBindingsEngine(trt, dynamic=True)
    engine.io = engine.io + [(n + " [profile 1]", i, s, d) for n, i, s, d in engine.io]
    engine.num_bindings = len(engine.io)
    engine.num_optimization_profiles = 2
    assert [t.name for t in tr.engine_io(engine, trt)] == ["image", "labels", "logits"]


def test_unknown_context_mode_is_refused(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ENGINE")
    with pytest.raises(InputError, match="context_mode"):
        tr.TensorRTRunner(str(engine), context_mode="shared")
