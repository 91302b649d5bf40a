"""A `Runner` whose model lives on a Triton Inference Server, so predict and bench use it unchanged.

`ServedRunner("localhost:8001")` talks KServe v2 through tritonclient: over gRPC or HTTP as the
address says (`grpc://`, `http://`), or, for a bare HOST:PORT, whichever the port answers (gRPC
tried first). Activating it checks that the server answers, waits (bounded) until the model is
ready, and reads the model's tensors (`/v2/models/<name>`) and its bisenet_deploy record from the
configuration's parameters (`/v2/models/<name>/config`), both open on every Triton. `infer`
sends the host batch and returns host arrays, like every runner: its latency is the served round
trip.

One client per runner: use one runner per thread (an HTTP runner used from another thread than
the one that connected it reconnects there: tritonclient.http's sockets belong to their thread).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import InputError, MissingDependencyError, UserError
from ..portable.shared.install_hints import pip_extra
from ..portable.running.runner_base import Runner, TensorSpec
from .model_io import (DEFAULT_MODEL_NAME, numpy_dtype, record_from_parameters,
                       serving_from_parameters, triton_datatype)

log = logging.getLogger(__name__)

PROTOCOLS = ("grpc", "http")
#: how long activate() waits for a server's model to become ready (a server starting or being
#: restarted by bisenet-serve answers before its model is loaded)
DEFAULT_READY_WAIT_S = 60.0
READY_POLL_S = 0.25
CLIENT_HINT = pip_extra("serve") + " (tritonclient[http,grpc])"


def parse_server(text: str) -> Tuple[Optional[str], str, int]:
    """'[grpc://|http://]HOST:PORT' -> (protocol or None, host, port)."""
    raw = str(text).strip()
    protocol = None
    if "://" in raw:
        protocol, raw = raw.split("://", 1)
        protocol = protocol.lower()
        if protocol not in PROTOCOLS:
            raise InputError(f"--server {text!r}: the protocol must be grpc:// or http://")
    raw = raw.rstrip("/")
    host, sep, port = raw.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--server {text!r} is not HOST:PORT (e.g. localhost:8001 for gRPC, "
                         f"http://localhost:8000 for HTTP)")
    return protocol, host, int(port)


def import_client(protocol: str) -> Any:
    try:
        if protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
    except ImportError:
        raise MissingDependencyError(f"talking to a Triton server needs tritonclient: "
                                     f"{CLIENT_HINT}") from None
    return module


def _one_line(exc: Exception) -> str:
    """The useful last line of a tritonclient error (server tracebacks included)."""
    text = str(getattr(exc, "message", lambda: None)() or exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


class ServedRunner(Runner):
    """Runner contract over a model served by Triton (bisenet-serve or `bisenet-export triton`)."""

    backend = "triton"

    def __init__(self, server: str, model_name: str = DEFAULT_MODEL_NAME,
                 timeout_s: float = 60.0, ready_wait_s: float = DEFAULT_READY_WAIT_S):
        super().__init__()
        self.ready_wait_s = max(0.0, float(ready_wait_s))
        self.protocol, self.host, self.port = parse_server(server)
        self.model_name = model_name
        self.timeout_s = float(timeout_s)
        self._client: Any = None
        self._module: Any = None
        self._input: Optional[TensorSpec] = None
        self._outputs: List[TensorSpec] = []
        self._max_batch = 0
        self.serving: Optional[Dict[str, Any]] = None
        self._client_thread = 0  # threading.get_ident() of the thread that made the client

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def describe(self) -> str:
        return f"triton {self.protocol or '?'}://{self.url} model {self.model_name}"

    # -- lifecycle -----------------------------------------------------------------------------
    def _connect(self, protocol: str) -> Any:
        module = import_client(protocol)
        if protocol == "grpc":
            client = module.InferenceServerClient(self.url)
            client.is_server_live(client_timeout=min(5.0, self.timeout_s))
        else:
            client = module.InferenceServerClient(self.url, connection_timeout=self.timeout_s,
                                                  network_timeout=self.timeout_s)
            client.is_server_live()
        self._client_thread = threading.get_ident()
        return module, client

    def _activate(self) -> None:
        tried = [self.protocol] if self.protocol else list(PROTOCOLS)
        problems = []
        for protocol in tried:
            try:
                self._module, self._client = self._connect(protocol)
                self.protocol = protocol
                break
            except MissingDependencyError:
                raise
            except Exception as exc:  # refused, timed out, or the other protocol's port
                problems.append(f"{protocol}: {_one_line(exc)}")
        else:
            raise UserError(f"no Triton server answers at {self.url} ({'; '.join(problems)}): "
                            f"start one with `bisenet-serve`, or check --server")
        try:
            self._read_model()
        except Exception:
            self._close()
            raise

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            raise UserError(f"{self.describe()}: {what} failed: {_one_line(exc)}") from None

    def _wait_until_model_ready(self) -> None:
        """A server answers before its model is loaded (the server's own /v2/health/ready says
        200 then): wait up to `ready_wait_s` for the model itself."""
        deadline = time.monotonic() + self.ready_wait_s
        waited = False
        while not self._call("the readiness check", self._client.is_model_ready,
                             self.model_name):
            if time.monotonic() >= deadline:
                raise UserError(
                    f"the server at {self.url} has no ready model {self.model_name!r}"
                    + (f" after {self.ready_wait_s:g} s" if self.ready_wait_s > 0 else "")
                    + f": check --model-name (bisenet-serve's default is {DEFAULT_MODEL_NAME})")
            if not waited:
                log.info("waiting for model %r at %s to be ready...", self.model_name, self.url)
                waited = True
            time.sleep(READY_POLL_S)

    def _read_model(self) -> None:
        self._wait_until_model_ready()
        as_json = {"as_json": True} if self.protocol == "grpc" else {}
        meta = self._call("reading the model metadata", self._client.get_model_metadata,
                          self.model_name, **as_json)
        config = self._call("reading the model config", self._client.get_model_config,
                            self.model_name, **as_json)
        config = config.get("config", config)  # gRPC wraps the config in {"config": ...}
        self.metadata = record_from_parameters(config.get("parameters") or {},
                                               f"model {self.model_name!r} at {self.url}")
        self._max_batch = int(config.get("max_batch_size") or 0)
        #: how bisenet-serve runs the model ({"backend", "instances", "threads"}), or None
        self.serving = serving_from_parameters(config.get("parameters") or {})
        inputs = meta.get("inputs") or []
        if len(inputs) != 1:
            raise UserError(f"model {self.model_name!r} has {len(inputs)} inputs; bisenet-deploy "
                            f"models have one image input")

        def spec(t: Dict[str, Any]) -> TensorSpec:
            return TensorSpec(t["name"], [int(d) for d in t["shape"]], numpy_dtype(t["datatype"]))

        self._input = spec(inputs[0])
        self._outputs = [spec(t) for t in meta.get("outputs") or []]

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a broken connection must not hide the real error
                log.debug("closing the Triton client failed", exc_info=True)

    def _deactivate(self) -> None:
        self._close()

    # -- specs and inference -------------------------------------------------------------------
    def input_spec(self) -> TensorSpec:
        if self._input is None:
            raise UserError("the served model's input is known after activate()")
        return self._input

    def output_specs(self) -> List[TensorSpec]:
        return list(self._outputs)

    @property
    def max_batch_size(self) -> int:
        """The largest batch the server gathers (Triton's max_batch_size; 0: it cannot batch)."""
        return self._max_batch

    def _check_batch_size(self, n: int) -> None:
        if self._max_batch and n > self._max_batch:
            raise InputError(f"the served model takes batches of up to {self._max_batch} "
                             f"images, got {n}")

    def _infer(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        if self.protocol == "http" and threading.get_ident() != self._client_thread:
            # tritonclient.http's sockets (geventhttpclient) belong to the gevent hub of the
            # thread that made them: a request from another thread that had to wait for its
            # socket waited forever (bisenet-bench --server http:// activates each client's
            # runner in the main thread and infers in a client thread). Reconnect here.
            self._close()
            self._module, self._client = self._connect("http")
        module = self._module
        spec = self.input_spec()
        inp = module.InferInput(spec.name, list(batch.shape), triton_datatype(spec.dtype))
        inp.set_data_from_numpy(batch)
        outputs = [module.InferRequestedOutput(o.name) for o in self._outputs]
        kwargs = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        result = self._call("inference", self._client.infer, self.model_name, [inp],
                            outputs=outputs, **kwargs)
        # copies: tritonclient's arrays are read-only views of the response buffer
        return {o.name: np.array(result.as_numpy(o.name)) for o in self._outputs}
