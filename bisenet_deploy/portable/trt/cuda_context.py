"""Explicit CUDA context handling for pycuda, without `pycuda.autoinit`'s import-time side effect.

`import pycuda.autoinit` creates a context and makes it current on the importing thread when the
module is imported: a library must not do that (it breaks worker threads and fights PyTorch for
the GPU). `CudaContext` instead opens a context on request and makes it current only around the
calls that need it (`with ctx: ...` pushes on entry and pops on exit, on whatever thread runs the
block), so a runner can be created on one thread and used from another, next to PyTorch.

Two modes:
- "primary" (default): the device's primary context, the one the CUDA runtime (PyTorch, TensorRT)
  uses, so buffers and streams are shared and no second context costs memory (this matters on an
  8 GB Jetson). It is retained once per process and device and kept until the process exits, as
  the CUDA runtime itself does: pycuda cannot release a primary context without leaving it on the
  thread's driver stack. Everything a runner allocates in it is freed by the runner.
- "own": a context of our own (`Device.make_context`), destroyed by `close()`.

Python 3.6 / numpy 1.19 compatible; pycuda is imported lazily.
"""

import logging
import threading
from typing import Any, Dict  # noqa: F401 (type comments)

from ..shared.errors import EngineError, MissingDependencyError
from ..shared.install_hints import pycuda_hint

log = logging.getLogger(__name__)


_PRIMARY_LOCK = threading.Lock()
# device index -> retained pycuda primary Context, shared by every CudaContext of the process
_PRIMARY = {}  # type: Dict[int, Any]


def import_pycuda_driver():
    """`pycuda.driver`, initialised, or MissingDependencyError saying what to install."""
    try:
        import pycuda.driver as cuda  # noqa: WPS433 (lazy on purpose)
    except ImportError:
        raise MissingDependencyError("pycuda is not installed: " + pycuda_hint()) from None
    try:
        cuda.init()
    except Exception as exc:  # pycuda raises its own error types (no GPU, no driver)
        raise EngineError("CUDA could not be initialised (%s): is an NVIDIA GPU and driver "
                          "present?" % (exc,)) from None
    return cuda


class CudaContext(object):
    """A CUDA context on one device, made current only inside `with` blocks.

    `open()` creates/retains it (no context is left current afterwards); `with ctx:` pushes it on
    the calling thread and pops it on exit, nesting is allowed; `close()` releases it.
    """

    MODES = ("primary", "own")

    def __init__(self, device=0, mode="primary", map_host=False):
        if mode not in self.MODES:
            raise ValueError("mode must be one of %s" % (self.MODES,))
        self.device_index = int(device)
        self.mode = mode
        #: ask for host-mapped (zero-copy) memory support; an "own" context gets CU_CTX_MAP_HOST,
        #: a primary context relies on unified addressing (always on for 64-bit Linux/Jetson)
        self.map_host = bool(map_host)
        self.cuda = None  # type: Any
        self.device = None  # type: Any
        self._ctx = None  # type: Any
        self._depth = threading.local()

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self):
        if self._ctx is not None:
            return self
        cuda = import_pycuda_driver()
        count = cuda.Device.count()
        if self.device_index < 0 or self.device_index >= count:
            raise EngineError("CUDA device %d does not exist (this machine has %d)"
                              % (self.device_index, count))
        device = cuda.Device(self.device_index)
        if self.map_host and not device.get_attribute(
                cuda.device_attribute.CAN_MAP_HOST_MEMORY):
            raise EngineError("%s cannot map host memory: run without zero-copy buffers"
                              % device.name())
        if self.mode == "primary":
            with _PRIMARY_LOCK:
                ctx = _PRIMARY.get(self.device_index)
                if ctx is None:
                    ctx = device.retain_primary_context()
                    _PRIMARY[self.device_index] = ctx
        else:
            flags = cuda.ctx_flags.SCHED_AUTO
            if self.map_host:
                flags |= cuda.ctx_flags.MAP_HOST
            ctx = device.make_context(flags)  # created current on this thread ...
            cuda.Context.pop()                # ... and made current only inside `with` blocks
        self.cuda, self.device, self._ctx = cuda, device, ctx
        log.debug("CUDA %s context on device %d (%s)", self.mode, self.device_index,
                  device.name())
        return self

    def close(self):
        """Release the context: an "own" one is destroyed; the primary one stays retained."""
        ctx, self._ctx = self._ctx, None
        if ctx is None or self.mode == "primary":
            return
        # push first so pycuda's detach runs on the current context from any thread (an
        # out-of-thread detach of a non-current context would silently leak it)
        ctx.push()
        ctx.detach()

    @property
    def is_open(self):
        return self._ctx is not None

    # -- current-context scope -----------------------------------------------------------------
    def push(self):
        if self._ctx is None:
            raise EngineError("the CUDA context is not open")
        self._ctx.push()
        self._depth.value = getattr(self._depth, "value", 0) + 1

    def pop(self):
        depth = getattr(self._depth, "value", 0)
        if depth <= 0:
            raise EngineError("CUDA context pop without a matching push on this thread")
        self.cuda.Context.pop()
        self._depth.value = depth - 1

    def __enter__(self):
        self.push()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.pop()
        return False

    # -- facts ---------------------------------------------------------------------------------
    def device_name(self):
        return self.device.name() if self.device is not None else None

    def compute_capability(self):
        """(major, minor) of the device."""
        return tuple(self.device.compute_capability()) if self.device is not None else None
