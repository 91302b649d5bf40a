"""`bisenet-serve`'s engine: a real Triton Inference Server (through PyTriton) running our runners.

PyTriton starts the `tritonserver` binary it ships and binds a Python callable to a model through
Triton's Python backend: Triton does the networking (KServe v2 HTTP and gRPC, health, metrics) and
the dynamic batching, and hands each gathered batch of requests to one of our instance functions,
which runs it through a `Runner` (onnxruntime, PyTorch, TensorRT) exactly as the local tools do.

- one runner per instance (`instances`), each with its own session/context (`instance`);
- supervised: a tritonserver that dies (an abort on a hostile request, a crash) is reaped (its
  process group, shared memory, workspace) and started again with the same runners, at most
  `max_restarts` times a minute (`poll`); beyond, ServerDiedError (exit 1, one line);
- the public HTTP port is a validating front (`http_front`): tritonserver's own HTTP port, on
  loopback behind it, aborts on a request declaring a huge shape;
- nothing outlives us: tritonserver runs in a process group of its own, and a `watchdog`
  process kills it and removes its files when we end, even by kill -9;
- the model's configuration carries the export's metadata record as parameters (the same keys
  as `bisenet-export triton` writes), so a client prepares images from the server alone, and no
  internal path; with `execute_timeout_s`, a frozen runner's batch fails then (`pytriton_model`);
- ports are checked before starting (a port in use is one line, not a server log), the Python
  backend gets this interpreter's libpython (`libpython`), and Triton's exit timeout is short so
  stopping takes seconds, not Triton's default 30 s.
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from ..errors import InputError, MissingDependencyError, UserError
from ..portable.shared.install_hints import pip_extra
from ..portable.running.runner_base import Runner
from ..runtime.api import batch_range
from .instance import (InstanceFunction, run_in_chunks, stuck_instance,  # noqa: F401
                       warm_up)
from .model_config import DEFAULT_QUEUE_DELAY_US
from .model_io import (DEFAULT_MODEL_NAME, check_model_name, metadata_parameters,
                       serving_parameters)
from .ports import check_port_free, free_loopback_port
from .pytriton_model import prepare_model, restrict_http_inference
from .triton_process import (death_reason, group_members, localized_folders, own_process_group,
                             quiet, server_pid, shm_prefix)
from .watchdog import kill_group, remove_shm, shared_memory_of

log = logging.getLogger(__name__)

#: the header PyTriton checks on the endpoints it restricts (model repository, statistics...)
SERVE_HINT = pip_extra("serve") + " (nvidia-pytriton, tritonclient)"
#: deaths of tritonserver are counted over this window (seconds) against max_restarts
RESTART_WINDOW_S = 60
#: PyTriton's sockets live in its workspace (in our scratch folder): a longer TMPDIR would make
#: their paths outgrow AF_UNIX's 108 bytes, so the scratch folder goes to /tmp then
MAX_TMPDIR_CHARS = 40


def scratch_parent() -> Optional[str]:
    """Where the server's scratch folder goes: the temp folder, unless its path is too long."""
    if len(tempfile.gettempdir()) > MAX_TMPDIR_CHARS and os.access("/tmp", os.W_OK):
        return "/tmp"
    return None


class ServerDiedError(UserError):
    """tritonserver died and may not (or could not) be restarted: exit 1."""


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
    #: restarts of a dead tritonserver allowed within RESTART_WINDOW_S (0: none)
    max_restarts: int = 3
    #: seconds a request may wait in Triton's queue before it is refused (0: no limit, and no
    #: queue policy: with one, PyTriton's Triton showed ~0.5 s tail latencies; docs/serving.md)
    queue_timeout_s: float = 0.0
    #: requests Triton's queue holds at most (0: no limit)
    max_queue: int = 0
    #: seconds the stub waits for a batch's answer before it answers with an error (0: no limit)
    execute_timeout_s: float = 0.0
    #: /v2/health/live (HTTP) says 503 once a runner ran one batch this long (hung)
    stuck_after_s: float = 60.0


def import_pytriton():
    try:
        import pytriton  # noqa: F401
    except ImportError:
        raise MissingDependencyError(f"bisenet-serve needs PyTriton: {SERVE_HINT}") from None
    except Exception as exc:  # e.g. built against numpy 1 while numpy 2 is installed
        raise MissingDependencyError(f"PyTriton cannot be imported here ({type(exc).__name__}: "
                                     f"{exc}); it needs numpy<2: {SERVE_HINT}") from None


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
        if min(options.queue_timeout_s, options.max_queue, options.execute_timeout_s) < 0:
            raise InputError("--queue-timeout, --max-queue and --execute-timeout must be >= 0")
        if options.max_restarts < 0:
            raise InputError(f"--max-restarts must be >= 0, got {options.max_restarts}")
        self._triton: Any = None
        self._scratch: Optional[str] = None
        self._watchdog: Any = None
        self._pgid: Optional[int] = None
        self._shm: Optional[str] = None
        self._localized: List[str] = []
        self._front: Any = None
        self._instances = [InstanceFunction(r) for r in self.runners]
        self._upstream_port = 0
        self._launches = 0
        self._deaths: List[float] = []
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "ModelServer":
        import_pytriton()
        from .watchdog import Watchdog

        opts = self.options
        for port, option in ((opts.http_port, "--http-port"), (opts.grpc_port, "--grpc-port"),
                             (opts.metrics_port, "--metrics-port")):
            check_port_free(opts.host, port, option)
        self._stopping = False
        # one private folder for what the server writes: its log and PyTriton's workspace (not
        # its TMPDIR: the stubs' socket paths would outgrow AF_UNIX's 108 bytes)
        self._scratch = tempfile.mkdtemp(prefix="bisenet-serve-", dir=scratch_parent())
        self._watchdog = Watchdog().start()  # cleans up even after kill -9 of this process
        self._watchdog.own("path", self._scratch)
        try:
            warm_up(self.runners, sorted({1, *self._preferred()}))
            self._start_front()
            self._launch()
        except BaseException:
            self.stop()
            raise
        log.debug("serving %r on %s", opts.model_name, ", ".join(
            f"{k} {v}" for k, v in self.endpoints().items()))
        return self

    def _start_front(self) -> None:
        """The public HTTP port: a validating front (`http_front`); tritonserver's own HTTP
        port listens on a free loopback port behind it."""
        from .http_front import HttpFront, ModelLimits
        from .model_io import triton_datatype

        inp = self.runners[0].input_spec()
        limits = ModelLimits(self.options.model_name, inp.name, triton_datatype(inp.dtype),
                             tuple(int(d) for d in inp.shape[1:]), self.max_batch)
        self._upstream_port = free_loopback_port()
        self._front = HttpFront(
            self.options.host, self.options.http_port, self._upstream_port, limits,
            live_check=lambda: stuck_instance(self._instances, self.options.stuck_after_s),
            infer_token=lambda: self.options.access_token).start()

    def _launch(self) -> None:
        """Start tritonserver and load the model; returns once the model is ready."""
        from .libpython import server_environment

        self._launches += 1
        env = server_environment()
        saved = {k: os.environ.get(k) for k in ("LD_LIBRARY_PATH",)}
        os.environ["LD_LIBRARY_PATH"] = env.get("LD_LIBRARY_PATH", "")
        try:
            self._triton = self._create()
            self._bind()
            if not self.options.server_log:
                self._triton._initialize_server()
                quiet(self._triton)
            with own_process_group():
                self._triton._run_server()
            self._pgid = server_pid(self._triton)
            self._shm = shm_prefix(self._triton)
            if self._pgid:
                self._watchdog.own("group", self._pgid)
            if self._shm:
                self._watchdog.own("shm", self._shm)
            self._triton.connect()
            for folder in localized_folders(self._pgid) if self._pgid else ():
                self._watchdog.own("path", folder)
                self._localized.append(folder)
            if not self._triton.is_alive():
                raise RuntimeError("tritonserver " + death_reason(self._triton))
        except (UserError, KeyboardInterrupt):  # KeyboardInterrupt: Ctrl-C/SIGTERM while starting
            raise
        except Exception as exc:
            detail = self.server_log_tail()
            raise UserError(f"the Triton server did not start ({type(exc).__name__}: {exc})"
                            + (f"; its log ends: {detail}" if detail else "")) from None
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _create(self) -> Any:
        from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

        opts = self.options
        config = TritonConfig(
            http_address="127.0.0.1", http_port=self._upstream_port, grpc_address=opts.host,
            grpc_port=opts.grpc_port, metrics_address=opts.host, metrics_port=opts.metrics_port,
            exit_timeout_secs=opts.exit_timeout_s, allow_gpu_metrics=False,
            log_file=self._log_path())
        workspace = pathlib.Path(self._scratch, f"workspace-{self._launches}")
        # one access token for every launch: a restart must not lock its clients out
        if opts.access_token is None:
            import secrets

            opts.access_token = secrets.token_urlsafe(32)
        triton = Triton(config=config, workspace=workspace,
                        security_config=TritonSecurityConfig(access_token=opts.access_token))
        restrict_http_inference(triton)  # only the front, which adds the token, infers there
        return triton

    def _log_path(self) -> Optional[pathlib.Path]:
        if self.options.server_log or not self._scratch:
            return None  # tritonserver's own log goes to our terminal
        return pathlib.Path(self._scratch, f"tritonserver-{self._launches}.log")

    def _bind(self) -> None:
        from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

        runner = self.runners[0]
        inp = runner.input_spec()
        inputs = [Tensor(name=inp.name, dtype=inp.dtype.type, shape=tuple(inp.shape[1:]))]
        outputs = [Tensor(name=o.name, dtype=o.dtype.type, shape=tuple(o.shape[1:]))
                   for o in runner.output_specs()]
        preferred = self._preferred()
        config = ModelConfig(batching=True, max_batch_size=self.max_batch, batcher=DynamicBatcher(
            max_queue_delay_microseconds=int(self.options.max_queue_delay_us),
            preferred_batch_size=preferred or None, default_queue_policy=self._queue_policy()))
        self._triton.bind(model_name=self.options.model_name,
                          infer_func=self._instances,
                          inputs=inputs, outputs=outputs, config=config, strict=False)
        parameters = dict(metadata_parameters(self.record), **serving_parameters(
            runner.backend, len(self.runners), getattr(runner, "threads", None)))
        prepare_model(self._triton, parameters, self.options.execute_timeout_s)

    def _preferred(self) -> List[int]:
        batch = self.record["export"].get("batch") or {}
        opt = int(batch["opt"]) if batch.get("dynamic") else self.max_batch
        return sorted({v for v in (min(opt, self.max_batch), self.max_batch) if v > 1})

    def _queue_policy(self) -> Any:
        """A request that waited `queue_timeout_s` in Triton's queue (a stuck or overloaded
        runner) is refused, so its client fails then instead of at its own timeout; the queue
        holds at most `max_queue` requests (0: unbounded), the rest are refused at once."""
        from pytriton.model_config.common import QueuePolicy, TimeoutAction

        if not self.options.queue_timeout_s and not self.options.max_queue:
            return None
        return QueuePolicy(timeout_action=TimeoutAction.REJECT,
                           default_timeout_microseconds=int(self.options.queue_timeout_s * 1e6),
                           allow_timeout_override=True, max_queue_size=int(self.options.max_queue))

    def _reap(self) -> None:
        """Stop this launch's tritonserver and remove what it leaves: its process group (stubs
        included), its shared memory, its workspace (PyTriton's stop)."""
        segments = []
        if self._pgid:  # a server stopped while loading never told us its model copies
            self._localized = sorted(set(self._localized) | set(localized_folders(self._pgid)))
            segments = shared_memory_of(group_members(self._pgid))
        triton, self._triton = self._triton, None
        if triton is not None:
            triton.stop()
        if self._pgid:
            if kill_group(self._pgid) and self._watchdog is not None:
                self._watchdog.disown("group", self._pgid)
            self._pgid = None
        for path in segments:  # left by helpers the group kill stopped before they cleaned up
            if os.path.exists(path):
                os.unlink(path)
        if self._shm:
            remove_shm(self._shm)
            if self._watchdog is not None:
                self._watchdog.disown("shm", self._shm)
            self._shm = None
        for folder in self._localized:
            shutil.rmtree(folder, ignore_errors=True)
            if self._watchdog is not None:
                self._watchdog.disown("path", folder)
        self._localized = []

    def poll(self) -> Optional[str]:
        """Called periodically while serving: None while the server is alive; after it died,
        restarts it (at most `max_restarts` times a minute) and returns why it died.

        Raises ServerDiedError when it died once too often or cannot be started again.
        """
        if self._stopping or self.is_alive():
            return None
        reason = death_reason(self._triton)
        self._reap()
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < RESTART_WINDOW_S] + [now]
        if len(self._deaths) > self.options.max_restarts:
            raise ServerDiedError(
                f"the Triton server {reason}"
                + (f", {len(self._deaths)} times in {RESTART_WINDOW_S} s" if self._deaths[1:]
                   else "") + ": bisenet-serve stops (see --server-log for its own log)")
        log.warning("the Triton server %s: restarting it (in-flight requests failed)", reason)
        try:
            self._launch()
        except UserError as exc:
            raise ServerDiedError(f"the Triton server {reason}, and restarting it failed: "
                                  f"{exc}") from None
        log.warning("the Triton server was restarted and serves %r again",
                    self.options.model_name)
        return reason

    def stop(self) -> None:
        """Stop tritonserver (bounded by the exit timeout), free the ports and remove every
        file it wrote; idempotent."""
        self._stopping = True
        try:
            self._reap()
        finally:
            front, self._front = self._front, None
            if front is not None:
                front.stop()
            if self._scratch:
                shutil.rmtree(self._scratch, ignore_errors=True)
                if self._watchdog is not None:
                    self._watchdog.disown("path", self._scratch)
                self._scratch = None
            watchdog, self._watchdog = self._watchdog, None
            if watchdog is not None:
                watchdog.close()

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
