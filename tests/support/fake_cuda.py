"""A fake pycuda.driver and a fake CUDA runtime (cuda-python), offering only what the real ones do.

`FakeDriver.module()` is a `pycuda.driver` with the calls the runner and the calibrator use
(pycuda 2026.1's API: contexts, devices, page-locked and device memory, streams, events, async
copies; no stream capture, which no released pycuda has). `FakeDriver.cudart()` is a
`cuda.bindings.runtime` with the stream-capture and graph calls of cuda-python's real module
(names and tuple results as `cuda.bindings.runtime` 13.x has them; tests/test_support_fakes.py
compares the names with the real module where it is installed).

"Device memory" is host bytes; a stream's ops run at synchronize; a device clock (ms) advances
as the ops run: copies by their size, engine runs by ENGINE_MS.
"""

import enum
import sys
import threading
import types

import numpy as np

#: what pycuda 2026.1 offers on the classes the fakes stand in for (its src/wrapper/wrap_cudadrv.cpp
#: and doc/driver.rst): the fakes' public names must stay within these (tests/test_support_fakes.py)
PYCUDA_API = {
    "Stream": {"synchronize", "is_done", "wait_for_event", "handle"},
    "Event": {"record", "synchronize", "query", "time_since", "time_till", "ipc_handle",
              "from_ipc_handle"},
    "Context": {"attach", "detach", "push", "pop", "get_device", "synchronize", "get_current",
                "set_limit", "get_limit", "set_cache_config", "get_cache_config",
                "set_shared_config", "get_shared_config", "get_api_version", "handle"},
    "Device": {"count", "name", "pci_bus_id", "compute_capability", "total_memory",
               "get_attribute", "get_attributes", "make_context", "retain_primary_context",
               "can_access_peer", "handle", "from_pci_bus_id"},
}

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
        self.graphs = []         # cudart graphs and graph execs made
        self.destroyed = []      # ... and destroyed
        self.capture_modes = []  # the mode of each cudaStreamBeginCapture
        self.fail_capture = False

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
            _released = []

            def push(self):
                drv.local.depth = drv.current_depth() + 1

            @staticmethod
            def pop():
                assert drv.current_depth() > 0
                drv.local.depth = drv.current_depth() - 1

            def detach(self):
                Context._released.append(self)
                Context.pop()

        class Device(object):
            def __init__(self, index):
                self._index = index

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

        class Stream(object):
            def __init__(self, flags=0):
                drv._need_context()
                self.handle = 0x5000 + len(drv.streams)
                drv.streams[self.handle] = self
                self._pending, self._capture = [], None

            def _submit(self, op):
                (self._capture if self._capture is not None else self._pending).append(op)

            def synchronize(self):
                drv._need_context()
                ops, self._pending = self._pending, []
                for op in ops:
                    op()

        class Event(object):
            def __init__(self, flags=0):
                drv._need_context()
                drv.events.append(self)
                self.at_ms = None

            def record(self, stream=None):
                stream._submit(lambda: setattr(self, "at_ms", drv.clock_ms))

            def time_since(self, other):  # pycuda: later.time_since(earlier), in ms
                assert self.at_ms is not None and other.at_ms is not None, "event not reached"
                return self.at_ms - other.at_ms

        def memcpy_htod_async(dest, src, stream=None):
            data = np.ascontiguousarray(src).tobytes()

            def op():
                drv.memory[int(dest)][:len(data)] = data
                drv.clock_ms += len(data) / BYTES_PER_MS
            stream._submit(op)

        def memcpy_dtoh_async(dest, src, stream=None):
            def op():
                n = dest.nbytes
                dest[...] = np.frombuffer(bytes(drv.memory[int(src)][:n]), dtype=dest.dtype)
                drv.clock_ms += n / BYTES_PER_MS
            stream._submit(op)

        def mem_alloc(nbytes):
            return DeviceAllocation(nbytes)

        mod.Context, mod.Device, mod.Stream, mod.Event = Context, Device, Stream, Event
        mod.pagelocked_empty, mod.mem_alloc = pagelocked_empty, mem_alloc
        mod.memcpy_htod_async, mod.memcpy_dtoh_async = memcpy_htod_async, memcpy_dtoh_async
        return mod


    # -- cuda-python's runtime bindings -------------------------------------------------------
    def cudart(self):
        """A `cuda.bindings.runtime` with the calls cuda_graphs.py makes, as the real one has them:
        each returns a tuple starting with a cudaError_t; streams are given by handle (int)."""
        drv = self
        mod = types.ModuleType("cuda.bindings.runtime")

        class cudaError_t(enum.IntEnum):  # noqa: N801 - the real module's spelling
            cudaSuccess = 0
            cudaErrorInvalidValue = 1
            cudaErrorInvalidResourceHandle = 400
            cudaErrorIllegalState = 401
            cudaErrorStreamCaptureUnsupported = 900

        class cudaStreamCaptureMode(enum.IntEnum):  # noqa: N801
            cudaStreamCaptureModeGlobal = 0
            cudaStreamCaptureModeThreadLocal = 1
            cudaStreamCaptureModeRelaxed = 2

        class cudaGraph_t(object):  # noqa: N801
            def __init__(self, ops):
                self.ops = ops

        class cudaGraphExec_t(object):  # noqa: N801
            def __init__(self, graph):
                self.ops = list(graph.ops)

        def _stream(handle):
            return drv.streams.get(int(handle))

        def cudaStreamBeginCapture(stream, mode):  # noqa: N802
            s = _stream(stream)
            if s is None:
                return (cudaError_t.cudaErrorInvalidResourceHandle,)
            if s._capture is not None:
                return (cudaError_t.cudaErrorIllegalState,)
            drv.capture_modes.append(cudaStreamCaptureMode(mode))
            s._capture = []
            return (cudaError_t.cudaSuccess,)

        def cudaStreamEndCapture(stream):  # noqa: N802
            s = _stream(stream)
            if s is None or s._capture is None:
                return (cudaError_t.cudaErrorIllegalState, None)
            ops, s._capture = s._capture, None
            if drv.fail_capture:
                return (cudaError_t.cudaErrorStreamCaptureUnsupported, None)
            graph = cudaGraph_t(ops)
            drv.graphs.append(graph)
            return (cudaError_t.cudaSuccess, graph)

        def cudaGraphInstantiateWithFlags(graph, flags):  # noqa: N802
            exe = cudaGraphExec_t(graph)
            drv.graphs.append(exe)
            return (cudaError_t.cudaSuccess, exe)

        def cudaGraphLaunch(graphExec, stream):  # noqa: N802, N803
            s = _stream(stream)
            if s is None or graphExec in drv.destroyed:
                return (cudaError_t.cudaErrorInvalidResourceHandle,)
            for op in graphExec.ops:
                s._submit(op)
            return (cudaError_t.cudaSuccess,)

        def _destroy(handle):
            drv.destroyed.append(handle)
            return (cudaError_t.cudaSuccess,)

        def cudaGetErrorString(error):  # noqa: N802
            return (cudaError_t.cudaSuccess, ("fake CUDA error %s" % error.name).encode())

        for name, value in list(locals().items()):
            if name.startswith("cuda"):
                setattr(mod, name, value)
        mod.cudaGraphExecDestroy = _destroy
        mod.cudaGraphDestroy = _destroy
        return mod


def install(monkeypatch, with_cudart=True):
    """A new FakeDriver behind `pycuda.driver` (and `cuda.bindings.runtime`); returns it."""
    from bisenet_deploy.portable.trt import cuda_context

    global DRIVER
    DRIVER = FakeDriver()
    driver_mod = DRIVER.module()
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = driver_mod
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver_mod)
    if with_cudart:
        runtime = DRIVER.cudart()
        bindings = types.ModuleType("cuda.bindings")
        bindings.runtime = runtime
        cuda = types.ModuleType("cuda")
        cuda.bindings = bindings
        for name, mod in (("cuda", cuda), ("cuda.bindings", bindings),
                          ("cuda.bindings.runtime", runtime)):
            monkeypatch.setitem(sys.modules, name, mod)
    else:  # cuda-python not installed
        for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
            monkeypatch.setitem(sys.modules, name, None)
    # the retained primary contexts are per process (per pycuda module): start empty
    monkeypatch.setattr(cuda_context, "_PRIMARY", {})
    return DRIVER


#: the driver the fake engines run on (set by `install`)
DRIVER = None
