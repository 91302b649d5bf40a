"""The HTTP front of bisenet-serve adds no avoidable latency: what it forwards is answered on a
connection without Nagle's algorithm (a reply is written as headers, then body: with Nagle the
body of every small reply waited for the client's delayed ACK, 40 ms on Linux)."""

import http.client
import http.server
import json
import socket
import threading

from bisenet_deploy.serve import http_front
from bisenet_deploy.serve.http_front import HttpFront, ModelLimits
from bisenet_deploy.serve.ports import free_loopback_port

METADATA = {"name": "bisenet", "inputs": [{"name": "image", "datatype": "FP32",
                                          "shape": [-1, 3, 64, 128]}]}


class _FakeTriton(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - the base's naming
        body = json.dumps(METADATA).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_forwarded_replies_go_out_on_a_connection_without_nagle(monkeypatch):
    nodelay = []
    setup = http_front._Handler.setup

    def recording_setup(handler):
        setup(handler)
        nodelay.append(handler.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(http_front._Handler, "setup", recording_setup)
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeTriton)
    worker = threading.Thread(target=upstream.serve_forever, daemon=True)
    worker.start()
    port = free_loopback_port()
    front = HttpFront("127.0.0.1", port, upstream.server_address[1],
                      ModelLimits("bisenet", "image", "FP32", (3, 64, 128), 8),
                      timeout_s=10).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(2):  # kept alive: both on one connection
            conn.request("GET", "/v2/models/bisenet")
            resp = conn.getresponse()
            assert resp.status == 200 and json.loads(resp.read()) == METADATA
        conn.close()
    finally:
        front.stop()
        upstream.shutdown()
        upstream.server_close()
    assert len(nodelay) == 1 and nodelay[0], "the front's client connection keeps Nagle on"
