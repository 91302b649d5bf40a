"""`bisenet-serve`'s engine: a real Triton Inference Server (through PyTriton) running our runners.

PyTriton starts the `tritonserver` binary it ships and binds a Python callable to a model through
Triton's Python backend: Triton does the networking (KServe v2 HTTP and gRPC, health, metrics) and
the dynamic batching, and hands each gathered batch of requests to one of our instance functions,
which runs it through a `Runner` (onnxruntime, PyTorch, TensorRT) exactly as the local tools do.

- one runner per instance (`instances`), each with its own session/context;
- a gathered batch larger than the runner takes (a static batch-1 export) runs in chunks, the
  last one padded like `Segmenter.segment_batch`; results are split back per request;
- the model's configuration carries the export's metadata record as parameters (the same keys
  as `bisenet-export triton` writes), so a client prepares images from the server alone;
- ports are checked before starting (a port in use is one line, not a server log), the Python
  backend gets this interpreter's libpython (`libpython`), and Triton's exit timeout is short so
  stopping takes seconds, not Triton's default 30 s.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pathlib
import shutil
import socket
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..errors import InputError, MissingDependencyError, UserError
from ..portable.install_hints import pip_extra
from ..portable.runner_base import Runner
from ..runtime.api import batch_range, pad_batch
from .model_config import DEFAULT_QUEUE_DELAY_US
from .model_io import DEFAULT_MODEL_NAME, check_model_name, metadata_parameters

log = logging.getLogger(__name__)

#: the header PyTriton checks on the endpoints it restricts (model repository, statistics...)
ACCESS_HEADER = "triton-access-token"
SERVE_HINT = pip_extra("serve") + " (nvidia-pytriton, tritonclient)"


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    model_name: str = DEFAULT_MODEL_NAME
    #: largest batch Triton gathers (None: the runner's own maximum)
    max_batch: Optional[int] = None
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    #: seconds Triton waits for in-flight requests when stopping
    exit_timeout_s: int = 5
    #: None: a random token (PyTriton's default) guards model-repository, statistics, trace...
    access_token: Optional[str] = None
    #: print tritonserver's own log
    server_log: bool = False


def import_pytriton():
    try:
        import pytriton  # noqa: F401
    except ImportError:
        raise MissingDependencyError(f"bisenet-serve needs PyTriton: {SERVE_HINT}") from None
    except Exception as exc:  # e.g. built against numpy 1 while numpy 2 is installed
        raise MissingDependencyError(f"PyTriton cannot be imported here ({type(exc).__name__}: "
                                     f"{exc}); it needs numpy<2: {SERVE_HINT}") from None


def run_in_chunks(runner: Runner, batch: np.ndarray) -> Dict[str, np.ndarray]:
    """One gathered N x ... batch through `runner`, in pieces of the sizes it takes."""
    lo, hi = batch_range(runner)
    if lo <= batch.shape[0] <= hi:
        return runner.infer(np.ascontiguousarray(batch))
    parts: Dict[str, List[np.ndarray]] = {}
    for start in range(0, batch.shape[0], hi):
        piece = np.ascontiguousarray(batch[start:start + hi])
        outputs = runner.infer(pad_batch(runner, piece))
        for name, value in outputs.items():
            parts.setdefault(name, []).append(value[:piece.shape[0]])
    return {name: np.concatenate(values) for name, values in parts.items()}


class InstanceFunction(object):
    """The callable bound to one model instance: PyTriton requests in, one result per request."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self.input_name = runner.input_spec().name

    def __call__(self, requests: Sequence[Any]) -> List[Dict[str, np.ndarray]]:
        arrays = [request[self.input_name] for request in requests]
        batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        outputs = run_in_chunks(self.runner, batch)
        results, start = [], 0
        for array in arrays:
            end = start + array.shape[0]
            results.append({name: value[start:end] for name, value in outputs.items()})
            start = end
        return results


def check_port_free(host: str, port: int, option: str) -> None:
    """Refuse a port something already listens on, naming the option that chose it."""
    if not 0 < int(port) < 65536:
        raise InputError(f"{option} {port} is not a port number (1..65535)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with contextlib.closing(socket.socket(family, socket.SOCK_STREAM)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InputError(f"port {port} on {host} is in use (another server?): choose "
                                f"another with {option}") from None
            raise InputError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): check "
                            f"--host and {option}") from None


class ModelServer(object):
    """A started-on-demand tritonserver serving `runners` (active, one per instance) as one model.

        server = ModelServer(runners, ServeOptions(http_port=8000))
        server.start()          # returns once the model is ready
        ...
        server.stop()           # returns once tritonserver has exited
    """

    def __init__(self, runners: Sequence[Runner], options: ServeOptions):
        if not runners:
            raise InputError("nothing to serve: no runner given")
        check_model_name(options.model_name)
        self.runners = list(runners)
        self.options = options
        self.record = self.runners[0].metadata
        if not self.record or "export" not in self.record:
            raise UserError("the model carries no bisenet_deploy metadata (input size, "
                            "preprocessing, classes): export it with `bisenet-export onnx`")
        self.max_batch = int(options.max_batch or batch_range(self.runners[0])[1])
        if self.max_batch < 1:
            raise InputError(f"--max-batch must be >= 1, got {options.max_batch}")
        if options.exit_timeout_s < 1:
            raise InputError("the exit timeout must be >= 1 s")
        self._triton: Any = None
        self._log_dir: Optional[str] = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "ModelServer":
        import_pytriton()
        from .libpython import server_environment

        opts = self.options
        for port, option in ((opts.http_port, "--http-port"), (opts.grpc_port, "--grpc-port"),
                             (opts.metrics_port, "--metrics-port")):
            check_port_free(opts.host, port, option)
        env = server_environment()
        saved = os.environ.get("LD_LIBRARY_PATH")
        os.environ["LD_LIBRARY_PATH"] = env.get("LD_LIBRARY_PATH", "")
        try:
            self._triton = self._create()
            self._bind()
            self._triton.run()
        except (UserError, KeyboardInterrupt):  # KeyboardInterrupt: Ctrl-C/SIGTERM while starting
            self.stop()
            raise
        except Exception as exc:
            detail = self.server_log_tail()
            self.stop()
            raise UserError(f"the Triton server did not start ({type(exc).__name__}: {exc})"
                            + (f"; its log ends: {detail}" if detail else "")) from None
        finally:
            if saved is None:
                os.environ.pop("LD_LIBRARY_PATH", None)
            else:
                os.environ["LD_LIBRARY_PATH"] = saved
        log.debug("serving %r on %s", opts.model_name, ", ".join(
            f"{k} {v}" for k, v in self.endpoints().items()))
        return self

    def _create(self) -> Any:
        from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

        opts = self.options
        if not opts.server_log:  # tritonserver's own log goes to a file, read for errors
            self._log_dir = tempfile.mkdtemp(prefix="bisenet-serve-")
        config = TritonConfig(
            http_address=opts.host, http_port=opts.http_port, grpc_address=opts.host,
            grpc_port=opts.grpc_port, metrics_address=opts.host, metrics_port=opts.metrics_port,
            exit_timeout_secs=opts.exit_timeout_s, allow_gpu_metrics=False,
            log_file=self._log_path())
        return Triton(config=config,
                      security_config=TritonSecurityConfig(access_token=opts.access_token))

    def _log_path(self) -> Optional[pathlib.Path]:
        return pathlib.Path(self._log_dir, "tritonserver.log") if self._log_dir else None

    def _bind(self) -> None:
        from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

        runner = self.runners[0]
        inp = runner.input_spec()
        inputs = [Tensor(name=inp.name, dtype=inp.dtype.type, shape=tuple(inp.shape[1:]))]
        outputs = [Tensor(name=o.name, dtype=o.dtype.type, shape=tuple(o.shape[1:]))
                   for o in runner.output_specs()]
        batch = self.record["export"].get("batch") or {}
        opt = int(batch["opt"]) if batch.get("dynamic") else self.max_batch
        preferred = sorted({v for v in (min(opt, self.max_batch), self.max_batch) if v > 1})
        config = ModelConfig(batching=True, max_batch_size=self.max_batch, batcher=DynamicBatcher(
            max_queue_delay_microseconds=int(self.options.max_queue_delay_us),
            preferred_batch_size=preferred or None))
        self._triton.bind(model_name=self.options.model_name,
                          infer_func=[InstanceFunction(r) for r in self.runners],
                          inputs=inputs, outputs=outputs, config=config, strict=False)
        self._add_parameters(metadata_parameters(self.record))

    def _add_parameters(self, parameters: Dict[str, str]) -> None:
        """Put the metadata into the generated config.pbtxt's parameters (PyTriton 0.7 builds the
        config from this model object and offers no public hook for extra parameters)."""
        try:
            model = list(self._triton._model_manager.models)[0]
            model._get_triton_model_config().backend_parameters.update(parameters)
        except (AttributeError, IndexError, TypeError):
            import pytriton

            raise MissingDependencyError(
                f"this PyTriton ({getattr(pytriton, '__version__', '?')}) does not let "
                f"bisenet-serve put the model's metadata into its configuration: install the "
                f"tested nvidia-pytriton==0.7.0 ({SERVE_HINT})") from None

    def stop(self) -> None:
        """Stop tritonserver (bounded by the exit timeout) and free the ports; idempotent."""
        triton, self._triton = self._triton, None
        if triton is not None:
            triton.stop()
        if self._log_dir:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None

    def is_alive(self) -> bool:
        return self._triton is not None and self._triton.is_alive()

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- what to tell users --------------------------------------------------------------------
    def endpoints(self) -> Dict[str, str]:
        o = self.options
        host = f"[{o.host}]" if ":" in o.host else o.host
        return {"http": f"http://{host}:{o.http_port}", "grpc": f"{host}:{o.grpc_port}",
                "metrics": f"http://{host}:{o.metrics_port}/metrics"}

    @property
    def access_token(self) -> Optional[str]:
        return None if self._triton is None else self._triton.get_access_token()

    def server_log_tail(self, lines: int = 3) -> str:
        """The last error lines of tritonserver's log (for a one-line error), or ''."""
        path = self._log_path()
        try:
            with open(str(path), "r", encoding="utf-8", errors="replace") as f:
                text = f.read()
        except (OSError, TypeError):
            return ""
        errors = [ln.strip() for ln in text.splitlines() if ln.startswith("E")]
        return " | ".join(errors[-lines:])
