"""Run a serialized TensorRT engine with pycuda: host input -> host output, both API generations.

`TensorRTRunner` follows the `Runner` contract (activate / infer / deactivate, context manager);
its model is an engine path, engine bytes or an ICudaEngine (engine_source.py), read on activate.
- activate: check the engine's sidecar against this GPU and TensorRT, deserialize, create the
  execution context, pick the API generation by a feature test (`num_io_tensors` exists from 8.5:
  named tensors; before: bindings), allocate page-locked host buffers and device buffers sized from
  the engine (the optimization profile's max shape for a dynamic batch), one stream, four events
  (before/after the input copy, after the compute, after the output copy: phase_timing.py);
- infer: copy the batch into the page-locked input, async H2D -> execute (execute_async_v2 with
  bindings, or set_tensor_address + execute_async_v3) -> async D2H -> synchronize, and return
  copies of the outputs in the engine's own dtypes (INT32 labels stay int32);
- deactivate: free buffers, CUDA graphs, events, stream, execution context and engine, with the
  CUDA context current, then release the context.
Optional: CUDA-graph capture of the enqueue (one graph per input shape, through cuda-python's CUDA
runtime bindings: cuda_graphs.py; pycuda has no stream capture) and zero-copy host-mapped buffers
(`zero_copy=True`, for the Jetson's shared CPU/GPU memory: no H2D/D2H copies at all).

The TensorRT flavour comes from the sidecar (engine_load.py): a TensorRT-RTX engine is run by
TensorRT-RTX, its execution context created with the runtime cache beside the engine, so the
kernels it compiles on this GPU are compiled once and saved on deactivate.

The choices (API generation, buffer sizes, profile range, dtype mapping) are pure functions of the
engine object (engine_io.py). Python 3.6 / numpy 1.19 compatible; tensorrt and pycuda are imported
lazily; type comments name tensorrt-stubs types for tests/test_engine_typecheck.py's mypy check.
"""

import logging
from typing import Any, Dict, Set, Tuple  # noqa: F401 (type comments)

import numpy as np

from ..trt.cuda_context import CudaContext
from .cuda_graphs import capture_graph, import_cudart
from .engine_io import (BINDINGS, TENSORS, IOTensor, api_generation,  # noqa: F401 - re-exported
                        batch_range, buffer_nbytes, check_batch_in_profile, engine_io,
                        max_input_shape, numpy_dtype, resolved_output_shapes, set_input_shape,
                        volume)
from .engine_load import (RuntimeCache, check_engine_validity, check_sidecar,  # noqa: F401
                          engine_flavour, engine_from_bytes, import_for_engine, load_sidecar,
                          record_from_sidecar)
from .engine_source import PATH, EngineSource
from ..shared.errors import EngineError, IncompatibleEngineError, InputError
from ..trt.flavours import RTX, flavour_of
from ..shared.phase_timing import (COMPUTE_DONE, CUDA_EVENTS, D2H_DONE, H2D_DONE, START,
                           pycuda_phase_events)
from .runner_base import Runner, TensorSpec, specs_from_record  # noqa: F401 - re-exported
from ..trt.sidecar import REBUILD_HINT, check_engine_compatible

log = logging.getLogger(__name__)


# CU_STREAM_NON_BLOCKING: our stream does not synchronize with the legacy default stream, which
# PyTorch or other libraries in the process may use (and which would break CUDA-graph capture)
STREAM_NON_BLOCKING = 1


class _Buffer(object):
    """A host buffer (page-locked, max size) and its device address for one I/O tensor."""

    def __init__(self, tensor, max_shape, host, device_alloc, device_ptr):
        self.tensor = tensor
        self.max_shape = max_shape
        self.host = host                  # flat page-locked numpy array of max size
        self.device_alloc = device_alloc  # pycuda DeviceAllocation, None for zero-copy
        self.device_ptr = int(device_ptr)


class TensorRTRunner(Runner):
    """A TensorRT engine behind the `Runner` contract (see the module docstring)."""

    backend = "tensorrt"
    phase_clock = CUDA_EVENTS
    #: read from the engine on the first activation and kept (the sidecar is read on first use)
    model_facts = ("generation", "io")

    def __init__(self, model, sidecar_path=None, device=0, use_cuda_graph=False,
                 zero_copy=False, context_mode="primary"):
        """`model`: an engine path, serialized engine bytes or a deserialized ICudaEngine."""
        self.source = EngineSource(model)
        self.engine_path = self.source.path  # None for bytes or an engine object
        self.sidecar_path = sidecar_path
        self._sidecar = None  # type: Any
        self._sidecar_read = False
        self._metadata = None  # type: Any
        super(TensorRTRunner, self).__init__()
        self.device_index = int(device)
        self.use_cuda_graph = bool(use_cuda_graph)
        self.zero_copy = bool(zero_copy)
        if context_mode not in CudaContext.MODES:
            raise InputError("context_mode must be one of %s, got %r"
                             % (", ".join(CudaContext.MODES), context_mode))
        self.context_mode = context_mode
        self.generation = None  # type: Any
        self.io = None  # type: Any
        self._cuda_ctx = None  # type: Any
        self._reset_state()
        self.source.check_exists()

    # -- the sidecar and metadata, read on first use -------------------------------------------
    def _read_sidecar(self):
        if not self._sidecar_read:
            path, sidecar = self.source.sidecar(self.sidecar_path)
            self.sidecar_path, self._sidecar, self._sidecar_read = path, sidecar, True
            if sidecar is not None and self._metadata is None:
                self._metadata = record_from_sidecar(sidecar)

    @property
    def sidecar(self):
        """The engine's sidecar dict (None without one): read on first use."""
        self._read_sidecar()
        return self._sidecar

    @property
    def metadata(self):
        """The metadata record from the sidecar (None without one): read on first use."""
        self._read_sidecar()
        return self._metadata

    @metadata.setter
    def metadata(self, value):
        self._metadata = value

    def _reset_state(self):
        self._trt = None  # type: Any
        self._cudart = None  # type: Any
        self._runtime_cache = None  # type: Any
        self._runtime = None  # type: Any
        self._engine = None  # type: Any
        self._context = None  # type: Any
        self._stream = None  # type: Any
        self._events = None  # type: Any
        self._buffers = None  # type: Any
        self._binding_ptrs = None  # type: Any
        self._graphs = {}  # type: Dict[Tuple[int, ...], Any]
        self._graph_failed = set()  # type: Set[Tuple[int, ...]]
        self._shape = None  # type: Any
        self._out_shapes = None  # type: Any
        self._device_ms = None  # type: Any
        self._phases_ms = None  # type: Any

    # -- description ---------------------------------------------------------------------------
    def describe(self):
        parts = [self.source.flavour(self.sidecar)]
        if self.generation:
            parts.append("%s API" % self.generation)
        if self.zero_copy:
            parts.append("zero-copy")
        if self.use_cuda_graph:
            parts.append("cuda-graph" if not self._graph_failed else "cuda-graph (capture failed)")
        return ", ".join(parts)

    def _input_tensor(self):
        if self.io is None:
            raise EngineError("the engine's inputs are known after activate()")
        inputs = [t for t in self.io if t.is_input]
        if len(inputs) != 1:
            raise EngineError("the engine has %d inputs; bisenet-deploy engines have one image "
                              "input" % len(inputs))
        return inputs[0]

    def input_spec(self):
        if self.io is None and self.metadata is not None:
            return specs_from_record(self.metadata)[0]
        t = self._input_tensor()
        return TensorSpec(t.name, t.shape, t.dtype)

    def output_specs(self):
        if self.io is None and self.metadata is not None:
            return specs_from_record(self.metadata)[1]
        if self.io is None:
            raise EngineError("the engine's outputs are known after activate()")
        return [TensorSpec(t.name, t.shape, t.dtype) for t in self.io if not t.is_input]

    def _check_batch_size(self, n):
        check_batch_in_profile(n, self._input_tensor())

    def last_device_time_ms(self):
        return self._device_ms

    def last_phase_times_ms(self):
        return self._phases_ms

    # -- lifecycle -----------------------------------------------------------------------------
    def _activate(self):
        self.source.check_exists()
        trt = self.source.import_tensorrt(self.sidecar)
        # before any GPU work: a missing cuda-python is refused with nothing to undo
        cudart = import_cudart() if self.use_cuda_graph else None
        ctx = CudaContext(self.device_index, mode=self.context_mode, map_host=self.zero_copy)
        ctx.open()
        self._cuda_ctx = ctx
        try:
            with ctx:
                self._trt, self._cudart = trt, cudart
                self._load(trt, ctx)
        except BaseException:
            self._release()
            raise

    def _load(self, trt, ctx):
        cc = ctx.compute_capability()
        label = self.source.label()
        if self.sidecar is None:
            log.warning("engine %s has no sidecar: its GPU/TensorRT cannot be checked and the "
                        "runner has no metadata (class names, preprocessing)", label)
        elif self.source.kind == PATH:
            check_sidecar(self.engine_path, self.sidecar, trt.__version__, ctx.device_name(), cc,
                          flavour_of(trt))
        else:  # no file to compare with the sidecar's checksum
            check_engine_compatible(self.sidecar, trt.__version__, ctx.device_name(), cc,
                                    flavour_of(trt))
        self._engine = self.source.engine or self._deserialize(trt, ctx, cc, label)
        engine = self._engine  # type: tensorrt.ICudaEngine
        self.generation = api_generation(engine)
        self.io = engine_io(engine, trt)
        self._input_tensor()
        if flavour_of(trt) == RTX and hasattr(engine, "create_runtime_config"):
            # TensorRT-RTX compiles the kernels for this GPU here: from the runtime cache if it has
            # them (saved on deactivate)
            self._runtime_cache = RuntimeCache(self.engine_path, cc) if self.engine_path else None
            config = (self._runtime_cache.runtime_config(engine) if self._runtime_cache
                      else engine.create_runtime_config())
            context = engine.create_execution_context(config)  # type: tensorrt.IExecutionContext
        else:
            context = engine.create_execution_context()
        self._context = context
        if context is None:
            raise EngineError("TensorRT could not create an execution context for %s (out of "
                              "GPU memory?)" % label)
        cuda = ctx.cuda
        self._stream = cuda.Stream(flags=STREAM_NON_BLOCKING)
        self._events = pycuda_phase_events(cuda)
        self._allocate(cuda)
        log.info("loaded %s (%s API): %s", label, self.generation,
                 ", ".join(repr(t) for t in self.io))

    def _deserialize(self, trt, ctx, cc, label):
        """The engine from the file (read now) or the bytes, or IncompatibleEngineError quoting
        TensorRT's own words."""
        engine, self._runtime = engine_from_bytes(
            trt, self.source.blob(), label, error=IncompatibleEngineError,
            message="TensorRT %s could not load %s on %s (SM %d.%d): engines only run on the GPU "
                    "model and TensorRT version they were built with; %s"
                    % (trt.__version__, label, ctx.device_name(), cc[0], cc[1], REBUILD_HINT))
        return engine

    def _allocate(self, cuda):
        """Buffers sized for the largest shapes: set every input to its max, read the outputs."""
        context = self._context  # type: tensorrt.IExecutionContext
        max_shapes = {}
        for t in self.io:
            if t.is_input:
                max_shapes[t.name] = max_input_shape(t)
                set_input_shape(self._context, t, max_shapes[t.name], self.generation)
        max_shapes.update(resolved_output_shapes(self._context, self.io, self.generation))
        self._buffers = {}
        for t in self.io:
            shape = max_shapes[t.name]
            count = max(1, volume(shape))
            if self.zero_copy:
                host = cuda.pagelocked_empty(count, t.dtype,
                                             mem_flags=cuda.host_alloc_flags.DEVICEMAP)
                alloc, ptr = None, int(host.base.get_device_pointer())
            else:
                host = cuda.pagelocked_empty(count, t.dtype)
                alloc = cuda.mem_alloc(count * t.dtype.itemsize)
                ptr = int(alloc)
            self._buffers[t.name] = _Buffer(t, shape, host, alloc, ptr)
            if self.generation == TENSORS:
                context.set_tensor_address(t.name, ptr)
        self._shape = None  # input shapes must be set again for the first batch

    def _deactivate(self):
        self._release()

    def _release(self):
        """Free everything with the CUDA context current, then release the context."""
        ctx = self._cuda_ctx
        if ctx is None or not ctx.is_open:
            self._reset_state()
            return
        try:
            with ctx:
                if self._stream is not None:
                    self._stream.synchronize()
                for graph in self._graphs.values():
                    graph.destroy()
                self._graphs.clear()
                for buf in (self._buffers or {}).values():
                    if buf.device_alloc is not None:
                        buf.device_alloc.free()
                    buf.host.base.free()
                if self._runtime_cache is not None:
                    self._runtime_cache.save()
                # TensorRT frees its device memory in these destructors: context current
                self._buffers = None
                self._context = None
                self._engine = None
                self._runtime = None
                self._events = None
                self._stream = None
        finally:
            self._reset_state()
            ctx.close()
            self._cuda_ctx = None

    # -- inference -----------------------------------------------------------------------------
    def _bindings(self):
        """Device addresses in binding order (bindings API), built once per activation."""
        if self._binding_ptrs is None:
            ptrs = [0] * len(self.io)
            for t in self.io:
                ptrs[t.index] = self._buffers[t.name].device_ptr
            self._binding_ptrs = ptrs
        return self._binding_ptrs

    def _enqueue(self):
        handle = self._stream.handle
        context = self._context  # type: tensorrt.IExecutionContext
        if self.generation == TENSORS:
            ok = context.execute_async_v3(handle)
        else:  # 8.2-8.4 only (the stubs are 10.x)
            ok = context.execute_async_v2(  # type: ignore[attr-defined]
                bindings=self._bindings(), stream_handle=handle)
        if ok is False:
            raise EngineError("TensorRT failed to enqueue the engine (see the TensorRT log above)")

    def _set_shape(self, shape):
        if shape == self._shape:
            return
        inp = self._input_tensor()
        set_input_shape(self._context, inp, shape, self.generation)
        self._out_shapes = resolved_output_shapes(self._context, self.io, self.generation)
        self._shape = shape

    def _graph_for(self, shape):
        """The CUDA graph of the enqueue for this input shape, captured on first use."""
        if shape in self._graphs:
            return self._graphs[shape]
        if shape in self._graph_failed:
            return None
        # one plain enqueue first: TensorRT finishes its lazy per-shape setup outside the capture
        self._enqueue()
        self._stream.synchronize()
        try:
            graph = capture_graph(self._cudart, self._stream.handle, self._enqueue)
        except EngineError as exc:  # CUDA's or TensorRT's refusal: no capture for this engine
            log.warning("CUDA-graph capture failed for input shape %s (%s); running this shape "
                        "without a graph", shape, exc)
            self._graph_failed.add(shape)
            return None
        self._graphs[shape] = graph
        return graph

    def _execute(self, graph):
        self._events.record(H2D_DONE, self._stream)
        if graph is not None:
            graph.launch(self._stream.handle)
        else:
            self._enqueue()
        self._events.record(COMPUTE_DONE, self._stream)

    def _infer(self, batch):
        cuda = self._cuda_ctx.cuda
        shape = tuple(int(d) for d in batch.shape)
        with self._cuda_ctx:
            self._set_shape(shape)
            # captured before the timed marks: a first capture's warm-up enqueue is not a copy
            graph = self._graph_for(shape) if self.use_cuda_graph else None
            inp = self._buffers[self._input_tensor().name]
            n_in = volume(shape)
            np.copyto(inp.host[:n_in].reshape(shape), batch, casting="no")
            self._events.record(START, self._stream)
            if not self.zero_copy:
                cuda.memcpy_htod_async(inp.device_alloc, inp.host[:n_in], self._stream)
            self._execute(graph)
            outputs = []
            for t in self.io:
                if t.is_input:
                    continue
                buf = self._buffers[t.name]
                out_shape = self._out_shapes[t.name]
                view = buf.host[:volume(out_shape)]
                if not self.zero_copy:
                    cuda.memcpy_dtoh_async(view, buf.device_alloc, self._stream)
                outputs.append((t.name, view, out_shape))
            self._events.record(D2H_DONE, self._stream)
            self._stream.synchronize()
            self._phases_ms = self._events.times_ms()
            self._device_ms = self._phases_ms["compute"]
            # copies: the page-locked buffers are reused by the next call and freed on deactivate
            return dict((name, view.reshape(out_shape).copy())
                        for name, view, out_shape in outputs)
