"""CUDA graphs of a TensorRT enqueue, through the CUDA runtime's stream capture (cuda-python).

No released pycuda (up to 2026.1) can capture a stream, so the capture, instantiation and launch
go through cuda-python's runtime bindings (`cuda.bindings.runtime`; `cuda.cudart` in cuda-python
before 12.6) on the stream pycuda created: its handle is a `cudaStream_t`, and the runtime works
in whichever context pycuda made current. Every binding returns a tuple that starts with a
`cudaError_t`; anything but `cudaSuccess` becomes an EngineError naming the call and CUDA's words.

The capture is thread-local (`cudaStreamCaptureModeThreadLocal`, as trtexec does): other threads
of the process may keep calling CUDA while a graph is being captured.

Python 3.6 compatible syntax; cuda-python (Python 3.8+) is imported lazily, only when a runner
asks for CUDA graphs.
"""

import logging

from ..shared.errors import EngineError, MissingDependencyError

log = logging.getLogger(__name__)

CUDA_PYTHON_HINT = ("CUDA graphs need cuda-python's runtime bindings: pip install cuda-python "
                    "(the major version of the machine's CUDA driver, e.g. 'cuda-python<13' for "
                    "CUDA 12), or run without --cuda-graph")


def import_cudart():
    """cuda-python's CUDA runtime module, or a one-line MissingDependencyError."""
    try:
        from cuda.bindings import runtime  # noqa: WPS433 (lazy on purpose)
        return runtime
    except ImportError:
        pass
    try:
        from cuda import cudart  # cuda-python < 12.6
        return cudart
    except ImportError:
        raise MissingDependencyError(CUDA_PYTHON_HINT) from None


def _checked(cudart, result, call):
    """The values after the cudaError_t of a binding's result, or EngineError naming the call."""
    err = result[0]
    if err != cudart.cudaError_t.cudaSuccess:
        text = getattr(err, "name", str(err))
        described = cudart.cudaGetErrorString(err)
        if described[0] == cudart.cudaError_t.cudaSuccess:
            words = described[1]
            text = "%s: %s" % (text, words.decode("utf-8", "replace")
                               if isinstance(words, bytes) else words)
        raise EngineError("%s failed (%s)" % (call, text))
    return result[1] if len(result) > 1 else None


class CudaGraph(object):
    """One captured graph and its executable instance; `destroy()` frees both."""

    def __init__(self, cudart, graph, graph_exec):
        self._cudart = cudart
        self.graph = graph
        self.graph_exec = graph_exec

    def launch(self, stream_handle):
        _checked(self._cudart, self._cudart.cudaGraphLaunch(self.graph_exec, stream_handle),
                 "cudaGraphLaunch")

    def destroy(self):
        """Free the instance and the graph (a failure is logged: it only leaks)."""
        cudart = self._cudart
        for call, handle in (("cudaGraphExecDestroy", self.graph_exec),
                             ("cudaGraphDestroy", self.graph)):
            if handle is None:
                continue
            try:
                _checked(cudart, getattr(cudart, call)(handle), call)
            except EngineError as exc:
                log.warning("%s", exc)
        self.graph = self.graph_exec = None


def capture_graph(cudart, stream_handle, enqueue):
    """Capture what `enqueue()` puts on the stream into an instantiated CudaGraph.

    The capture is always ended, also when `enqueue` fails, so the stream stays usable.
    """
    mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
    _checked(cudart, cudart.cudaStreamBeginCapture(stream_handle, mode), "cudaStreamBeginCapture")
    try:
        enqueue()
    finally:
        graph = _checked(cudart, cudart.cudaStreamEndCapture(stream_handle),
                         "cudaStreamEndCapture")
    try:
        graph_exec = _checked(cudart, cudart.cudaGraphInstantiateWithFlags(graph, 0),
                              "cudaGraphInstantiateWithFlags")
    except EngineError:
        CudaGraph(cudart, graph, None).destroy()
        raise
    return CudaGraph(cudart, graph, graph_exec)
