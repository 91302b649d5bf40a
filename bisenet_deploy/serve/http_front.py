"""The HTTP port of `bisenet-serve`: a small validating front in front of tritonserver's own.

tritonserver 2.51 (PyTriton's) converts an HTTP JSON infer request into a buffer of the size the
request *declares* before it compares the declaration with the model or with the data carried:
a 60-byte request declaring [2147483648, 3, 128, 256] floats aborts it (std::bad_alloc). Its gRPC
port checks shapes first and is safe. So the public HTTP port is this front, and tritonserver's
HTTP port listens on a loopback port of its own (`upstream_port`):

- an infer request is refused with 400 (one JSON error, like Triton's own) when a declared shape
  is not the model's (dims, batch 1..max), or when the elements or bytes it declares are not the
  ones it carries; 413 when the body is larger than the largest valid request; 411/415 for
  bodies it cannot see through (no Content-Length, compressed); only then is it forwarded;
- `/v2/health/ready` says 200 only when the model is ready too (tritonserver's says 200 before);
- `/v2/health/live` says 503 when a runner has been stuck in one batch too long (`live_check`);
- an inference request it accepts goes on with the access token (`infer_token`): tritonserver's
  own port takes inference only with it, so a local user who finds that port cannot send it
  what the front refuses (`pytriton_model.restrict_http_inference`);
- everything else (health, metadata, statistics with the access token...) passes unchanged.

Threads, one per client connection, each with its own connection to tritonserver; the standard
library only.
"""

from __future__ import annotations

import http.client
import http.server
import json
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

log = logging.getLogger(__name__)

_INFER = re.compile(r"^/v2/models/([^/?]+)(?:/versions/[^/?]+)?/(infer|generate|generate_stream)"
                    r"(?:\?.*)?$")
#: bytes per element of each KServe v2 datatype (BYTES: variable, bounded by the body instead)
ITEMSIZE = {"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2, "BF16": 2,
            "UINT32": 4, "INT32": 4, "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8}
#: a JSON number takes at most this many bytes on average in a valid request (generous)
JSON_BYTES_PER_VALUE = 32
#: the header tritonserver's restricted endpoints ask for (PyTriton's name)
ACCESS_HEADER = "triton-access-token"
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te",
               "upgrade", "host", "content-length"}


@dataclass
class ModelLimits:
    """What a valid request to the served model may declare."""

    name: str
    input_name: str
    datatype: str
    dims: Tuple[int, ...]  # without the batch
    max_batch: int

    def max_body_bytes(self) -> int:
        values = self.max_batch * _product(self.dims)
        return values * max(ITEMSIZE.get(self.datatype, 4), JSON_BYTES_PER_VALUE) + (1 << 20)


def _product(values: Sequence[int]) -> int:
    n = 1
    for v in values:
        n *= int(v)
    return n


def _count_values(data: Any, limit: int) -> Optional[int]:
    """Scalars in a (nested) JSON list, or None once more than `limit` were seen."""
    count, stack = 0, [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        else:
            count += 1
            if count > limit:
                return None
    return count


def check_infer_request(header: Any, binary_bytes: int, limits: ModelLimits) -> Optional[str]:
    """Why this infer request must not reach tritonserver, or None when it may."""
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        return "the request needs an 'inputs' list"
    binary_total = 0
    for tensor in header["inputs"]:
        if not isinstance(tensor, dict):
            return "every input must be an object"
        name, shape = tensor.get("name"), tensor.get("shape")
        if not isinstance(shape, list) or not 0 < len(shape) <= 8 or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            return f"input {name!r}: 'shape' must be a list of 1 to 8 non-negative integers"
        if name != limits.input_name:
            return f"unexpected input {name!r}: model {limits.name!r} takes {limits.input_name!r}"
        if tuple(shape[1:]) != tuple(limits.dims) or not 1 <= shape[0] <= limits.max_batch:
            return (f"unexpected shape for input {name!r}: model {limits.name!r} takes "
                    f"[1..{limits.max_batch}, {', '.join(str(d) for d in limits.dims)}], got "
                    f"{shape}")
        if tensor.get("datatype") != limits.datatype:
            return (f"input {name!r}: datatype {tensor.get('datatype')!r}, the model takes "
                    f"{limits.datatype}")
        declared = _product(shape)
        params = tensor.get("parameters") or {}
        if not isinstance(params, dict):
            return f"input {name!r}: 'parameters' must be an object"
        if "binary_data_size" in params:
            size = params["binary_data_size"]
            if not isinstance(size, int) or size != declared * ITEMSIZE[limits.datatype]:
                return (f"input {name!r}: binary_data_size {size!r} is not the "
                        f"{declared * ITEMSIZE[limits.datatype]} bytes its shape {shape} declares")
            binary_total += size
        elif "data" in tensor:
            carried = _count_values(tensor["data"], declared)
            if carried != declared:
                return (f"input {name!r}: its shape {shape} declares {declared} values, its "
                        f"'data' holds {'more' if carried is None else carried}")
        elif "shared_memory_region" not in params:
            return f"input {name!r} carries no data"
    if binary_total > binary_bytes:
        return (f"the inputs declare {binary_total} bytes of binary data, the request carries "
                f"{binary_bytes}")
    return None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: TCP_NODELAY on each client connection: a reply is written as headers, then body; with
    #: Nagle's algorithm the body waited for the client's delayed ACK of the headers (40 ms on
    #: Linux for every small forwarded reply, e.g. model metadata: 44 ms through the front,
    #: 0.1 ms from tritonserver directly)
    disable_nagle_algorithm = True
    server: "_FrontServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("http front: " + format, *args)

    # -- replies --------------------------------------------------------------------------------
    def _reply(self, status: int, body: bytes, headers: Sequence[Tuple[str, str]] = ()) -> None:
        self.send_response(status)
        for key, value in headers:
            if key.lower() not in HOP_HEADERS:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._reply(status, json.dumps({"error": message}).encode(),
                    [("Content-Type", "application/json")])

    # -- upstream -------------------------------------------------------------------------------
    def _upstream(self, method: str, path: str, body: Optional[bytes],
                  headers: List[Tuple[str, str]]) -> Tuple[int, List[Tuple[str, str]], bytes]:
        for attempt in (0, 1):  # a kept-alive connection may have been closed by a restart
            conn = getattr(self, "_conn", None)
            if conn is None:
                conn = self._conn = http.client.HTTPConnection(
                    "127.0.0.1", self.server.upstream_port, timeout=self.server.timeout_s)
            try:
                conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", f"127.0.0.1:{self.server.upstream_port}")
                for key, value in headers:
                    conn.putheader(key, value)
                conn.putheader("Content-Length", str(len(body or b"")))
                conn.endheaders(body or None)
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _forward(self, body: Optional[bytes] = None, token: Optional[str] = None) -> None:
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_HEADERS
                   and not (token and k.lower() == ACCESS_HEADER)]
        if token:
            headers.append((ACCESS_HEADER, token))
        try:
            status, resp_headers, resp_body = self._upstream(self.command, self.path, body,
                                                             headers)
        except (OSError, http.client.HTTPException):
            self._error(503, "the Triton server is not available (starting or restarting): "
                             "retry in a few seconds")
            return
        if self.path.split("?")[0] == "/v2/health/ready" and status == 200:
            status = self._model_ready_status()
            resp_body = b""
        self._reply(status, resp_body, resp_headers)

    def _model_ready_status(self) -> int:
        try:
            status, _, _ = self._upstream(
                "GET", f"/v2/models/{self.server.limits.name}/ready", None, [])
        except (OSError, http.client.HTTPException):
            return 503
        return 200 if status == 200 else 503

    # -- methods --------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - the base's naming
        if self.path.split("?")[0] == "/v2/health/live" and self.server.live_check is not None:
            problem = self.server.live_check()
            if problem:
                self._error(503, problem)
                return
        self._forward()

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() or \
                self.headers.get("Content-Length") is None:
            self.close_connection = True
            self._error(411, "send the request with a Content-Length")
            return
        try:
            length = int(self.headers["Content-Length"])
        except ValueError:
            length = -1
        limit = self.server.limits.max_body_bytes()
        if not 0 <= length <= limit:
            self.close_connection = True
            self._error(413, f"request body of {self.headers['Content-Length']} bytes: the "
                             f"largest valid request to this model is {limit} bytes")
            return
        body = self.rfile.read(length)
        match = _INFER.match(self.path)
        if match:
            problem = self._check_infer(match, body)
            if problem:
                self._error(400, problem)
                return
        self._forward(body, self.server.infer_token() if match and self.server.infer_token
                      else None)

    def _check_infer(self, match: Any, body: bytes) -> Optional[str]:
        if match.group(2) != "infer":
            return f"{match.group(2)} is not served here: use /infer"
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            return f"compressed requests (Content-Encoding {encoding}) are not accepted"
        header_length = self.headers.get("Inference-Header-Content-Length")
        try:
            split = len(body) if header_length is None else int(header_length)
        except ValueError:
            return "Inference-Header-Content-Length must be an integer"
        if not 0 <= split <= len(body):
            return "Inference-Header-Content-Length exceeds the request body"
        try:
            header = json.loads(body[:split])
        except (ValueError, UnicodeDecodeError):
            return "the request's JSON cannot be parsed"
        return check_infer_request(header, len(body) - split, self.server.limits)


class _FrontServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: Tuple[str, int], upstream_port: int, limits: ModelLimits,
                 timeout_s: float, live_check: Optional[Callable[[], Optional[str]]] = None,
                 infer_token: Optional[Callable[[], Optional[str]]] = None):
        import socket

        self.live_check = live_check
        self.infer_token = infer_token
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.upstream_port = upstream_port
        self.limits = limits
        self.timeout_s = timeout_s
        super().__init__(address, _Handler)


class HttpFront(object):
    """`HttpFront(host, port, upstream_port, limits).start()` ... `.stop()`."""

    def __init__(self, host: str, port: int, upstream_port: int, limits: ModelLimits,
                 timeout_s: float = 120.0,
                 live_check: Optional[Callable[[], Optional[str]]] = None,
                 infer_token: Optional[Callable[[], Optional[str]]] = None):
        self._server = _FrontServer((host, int(port)), int(upstream_port), limits, timeout_s,
                                    live_check, infer_token)
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "HttpFront":
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-front",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()
