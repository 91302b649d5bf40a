"""bisenet-serve under load and faults: one real Triton server (PyTriton) for the whole module.

Loopback only, bounded in count and time: 8 concurrent clients x 25 requests, a handful of
malformed and abandoned requests, then SIGTERM. Every served answer must equal the local runner's
bit for bit (onnxruntime CPU gives identical results at every batch size, which the gathered
batches rely on). Speed is never asserted; the bound on shutdown is a correctness bound.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("pytriton", reason="bisenet-serve needs pip install -e '.[serve]'")
pytest.importorskip("tritonclient.grpc", reason="the clients need tritonclient[grpc,http]")

HOST = "127.0.0.1"
TOKEN = "test-token-123"
CLIENTS = 8
REQUESTS_PER_CLIENT = 25
START_TIMEOUT_S = 120


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Served(object):
    def __init__(self, proc, ports, log_path, onnx):
        self.proc = proc
        self.http_port, self.grpc_port, self.metrics_port = ports
        self.log_path = log_path
        self.onnx = onnx

    @property
    def grpc(self):
        return "%s:%d" % (HOST, self.grpc_port)

    @property
    def http(self):
        return "http://%s:%d" % (HOST, self.http_port)

    def log(self):
        with open(self.log_path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()

    def get(self, path, headers=None):
        conn = http.client.HTTPConnection(HOST, self.http_port, timeout=30)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def post(self, path, body, headers=None):
        conn = http.client.HTTPConnection(HOST, self.http_port, timeout=30)
        try:
            conn.request("POST", path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def ready(self):
        return self.get("/v2/health/ready")[0] == 200


@pytest.fixture(scope="module")
def served(tiny_dynamic_export, tmp_path_factory):
    """`bisenet-serve` in a subprocess on free loopback ports, started once for the module."""
    ports = free_ports(3)
    log_path = str(tmp_path_factory.mktemp("serve-log") / "serve.out")
    cmd = [sys.executable, "-m", "bisenet_deploy.cli.serve_main", "--onnx", tiny_dynamic_export,
           "--host", HOST, "--http-port", str(ports[0]), "--grpc-port", str(ports[1]),
           "--metrics-port", str(ports[2]), "--max-queue-delay-us", "2000",
           "--access-token", TOKEN, "--threads", "1"]
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    server = Served(proc, ports, log_path, tiny_dynamic_export)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while "ready:" not in server.log():
            if proc.poll() is not None:
                pytest.fail("bisenet-serve exited with %s:\n%s" % (proc.returncode, server.log()))
            if time.monotonic() > deadline:
                pytest.fail("bisenet-serve not ready after %d s:\n%s"
                            % (START_TIMEOUT_S, server.log()))
            time.sleep(0.2)
        yield server
    finally:
        stop(proc)


def stop(proc):
    """SIGTERM (bisenet-serve's clean stop), then SIGKILL after 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def local(tiny_dynamic_export):
    """The same ONNX on the local onnxruntime runner, and prepared inputs with its answers."""
    from bisenet_deploy.runtime.factory import open_runner
    from bisenet_deploy.synthetic import synthetic_image
    from bisenet_deploy.portable.running.preprocess import prepare_input

    runner = open_runner("onnxruntime", onnx=tiny_dynamic_export, threads=1).activate()
    inputs = [prepare_input(synthetic_image(128, 64, seed), runner.metadata) for seed in range(8)]
    inputs.append(np.concatenate(inputs[:3]))  # one request of 3 images
    expected = [runner.infer(x) for x in inputs]
    yield runner, inputs, expected
    runner.deactivate()


def _served_runner(served, protocol="grpc"):
    from bisenet_deploy.serve.client import ServedRunner

    address = served.grpc if protocol == "grpc" else served.http
    return ServedRunner(address).activate()


def _same(got, want):
    return sorted(got) == sorted(want) and all(
        got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k]) for k in want)


def listening_addresses(port):
    """Local addresses with a LISTEN socket on `port` (Linux /proc/net/tcp*), e.g. '127.0.0.1';
    an IPv4-mapped IPv6 socket (gRPC's) counts as its IPv4 address."""
    import ipaddress

    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state != "0A" or int(hex_port, 16) != port:  # 0A = LISTEN
                    continue
                raw = b"".join(bytes.fromhex(address[i:i + 8])[::-1]  # 32-bit words, host order
                               for i in range(0, len(address), 8))
                ip = ipaddress.ip_address(raw)
                found.append(str(getattr(ip, "ipv4_mapped", None) or ip))
    return found


def test_served_model_listens_only_where_told(served):
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("needs Linux /proc/net/tcp to see which address a port listens on")
    for port in (served.http_port, served.grpc_port, served.metrics_port):
        assert listening_addresses(port) == [HOST], port


def test_served_model_describes_itself(served):
    from bisenet_deploy.export.onnx_metadata import read_record

    assert served.ready()
    status, body = served.get("/v2/models/bisenet")
    meta = json.loads(body)
    assert status == 200
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 3, 64, 128]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
        ("labels", "INT32", [-1, 64, 128]), ("logits", "FP32", [-1, 19, 64, 128])]
    status, body = served.get("/v2/models/bisenet/config")
    config = json.loads(body)
    assert status == 200 and config["max_batch_size"] == 8
    assert config["dynamic_batching"]["preferred_batch_size"] == [4, 8]
    # no queue policy unless asked (--queue-timeout, --max-queue): it added tail latency
    policy = config["dynamic_batching"].get("default_queue_policy") or {}
    assert int(policy.get("default_timeout_microseconds", 0)) == 0
    assert "workspace-path" not in config["parameters"]  # an internal path (pytriton_model)
    params = {k: v["string_value"] for k, v in config["parameters"].items()}
    assert json.loads(params["bisenet_deploy"]) == read_record(served.onnx)
    assert json.loads(params["class_names"])[0] == "road" and params["input_size"] == "128x64"
    assert (params["serving_backend"], params["serving_instances"], params["serving_threads"]) \
        == ("onnxruntime", "1", "1")  # how it runs, for bisenet-bench --server to compare
    # the restricted endpoints want the access token; health, metadata and config do not
    assert served.get("/v2/models/stats")[0] == 403
    assert served.get("/v2/models/stats", {"triton-access-token": TOKEN})[0] == 200


def test_concurrent_clients_get_the_local_runners_answers_bit_for_bit(served, local):
    _, inputs, expected = local
    results = {}
    errors = []

    def client(index):
        protocol = "grpc" if index % 2 == 0 else "http"
        try:
            runner = _served_runner(served, protocol)
        except Exception as exc:  # reported below, never lost
            errors.append("client %d: %r" % (index, exc))
            return
        with runner:
            for k in range(REQUESTS_PER_CLIENT):
                which = (index * REQUESTS_PER_CLIENT + k) % len(inputs)
                try:
                    got = runner.infer(inputs[which])
                except Exception as exc:
                    errors.append("client %d request %d: %r" % (index, k, exc))
                    continue
                results[(index, k)] = _same(got, expected[which])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "clients still waiting after 120 s"
    assert errors == []
    assert len(results) == CLIENTS * REQUESTS_PER_CLIENT  # none lost
    assert all(results.values()), [key for key, ok in results.items() if not ok][:5]
    # Triton gathered concurrent requests into larger batches (dynamic batching at work)
    status, body = served.get("/v2/models/bisenet/stats", {"triton-access-token": TOKEN})
    stats = json.loads(body)["model_stats"][0]
    assert status == 200 and int(stats["inference_count"]) >= CLIENTS * REQUESTS_PER_CLIENT
    assert int(stats["execution_count"]) < int(stats["inference_count"])


def _infer_body(shape, datatype="FP32", name="image", data=None):
    count = int(np.prod(shape))
    data = [0.0] * count if data is None else data
    return json.dumps({"inputs": [{"name": name, "shape": list(shape), "datatype": datatype,
                                   "data": data}]}).encode()


@pytest.mark.parametrize("what, body", [
    ("wrong shape", _infer_body([1, 3, 32, 32])),
    ("wrong dtype", _infer_body([1, 3, 64, 128], datatype="INT32", data=[0] * (3 * 64 * 128))),
    ("missing input", json.dumps({"inputs": []}).encode()),
    ("wrong input name", _infer_body([1, 3, 64, 128], name="img")),
    ("batch over the maximum", _infer_body([9, 3, 64, 128])),
    ("garbage body", b"\x00\xffnot json at all{"),
])
def test_malformed_requests_get_an_error_and_the_server_stays_ready(served, local, what, body):
    status, text = served.post("/v2/models/bisenet/infer", body,
                               {"Content-Type": "application/json"})
    # an error status (Triton answers 400, or 500 for a body it cannot parse) with a message
    assert status >= 400, (what, status, text[:200])
    assert json.loads(text)["error"]
    assert served.ready()
    runner, inputs, expected = local
    with _served_runner(served) as client:
        assert _same(client.infer(inputs[0]), expected[0])


def test_malformed_grpc_request_is_an_error_line(served):
    from bisenet_deploy.errors import UserError

    with _served_runner(served) as client:
        client._input.shape = (-1, 3, 32, 32)  # a client that believes in another input size
        with pytest.raises(UserError, match="inference failed: .*(shape|dims)"):
            client.infer(np.zeros((1, 3, 32, 32), np.float32))
    assert served.ready()


def _abandon(served, inputs, mode):
    """A client that goes away mid-request: half a body, or a full one and no reading."""
    body = _infer_body(list(inputs[0].shape), data=inputs[0].ravel().tolist())
    head = ("POST /v2/models/bisenet/infer HTTP/1.1\r\nHost: %s\r\nContent-Type: "
            "application/json\r\nContent-Length: %d\r\n\r\n" % (HOST, len(body))).encode()
    with socket.create_connection((HOST, served.http_port), timeout=10) as sock:
        if mode == "half body":
            sock.sendall(head + body[:len(body) // 2])
        else:
            sock.sendall(head + body)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # closed with RST (linger 0): the server sees the peer vanish


def test_a_client_disconnecting_mid_request_does_not_hurt_the_others(served, local):
    _, inputs, expected = local
    outcomes = []
    errors = []

    def steady(index):
        try:
            with _served_runner(served) as client:
                for k in range(10):
                    which = (index + k) % len(inputs)
                    outcomes.append(_same(client.infer(inputs[which]), expected[which]))
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=steady, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for i in range(6):
        _abandon(served, inputs, "half body" if i % 2 else "no reading")
    for t in threads:
        t.join(120)
    assert errors == [] and len(outcomes) == 30 and all(outcomes)
    assert served.ready()


def test_bench_and_predict_talk_to_the_served_model(served, local, tmp_path, capsys):
    from PIL import Image

    from bisenet_deploy.cli import bench_main, predict_main
    from bisenet_deploy.synthetic import synthetic_image

    report_path = tmp_path / "served.json"
    code = bench_main.main(["--server", served.grpc, "--onnx", served.onnx, "--threads", "1",
                            "--concurrency", "1", "2", "--iters", "6", "--warmup", "1",
                            "--json", str(report_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "p50 ms" in out and "p99 ms" in out and "images/s" in out and "overhead" in out
    report = json.loads(report_path.read_text())
    levels = {(lv["target"], lv["concurrency"]): lv for lv in report["levels"]}
    assert sorted(levels) == [("direct", 1), ("direct", 2), ("served", 1), ("served", 2)]
    assert all(lv["ok"] == 6 and lv["failed"] == 0 and lv["images_per_s"] > 0
               for lv in levels.values())
    assert [row["concurrency"] for row in report["overhead"]] == [1, 2]
    # one instance, 1 thread, batching up to 8, like the direct runner: nothing to warn about
    assert report["serving"] == {"backend": "onnxruntime", "instances": 1, "threads": 1}
    assert report["notes"] == [] and "note:" not in out

    image = tmp_path / "street.png"
    Image.fromarray(synthetic_image(200, 90, 3)).save(str(image))
    for args, folder in ((["--server", served.http], "served"), (["--onnx", served.onnx],
                                                                 "local")):
        assert predict_main.main(args + [str(image), "-o", str(tmp_path / folder)]) == 0
    served_png = np.asarray(Image.open(str(tmp_path / "served" / "street_labels.png")))
    local_png = np.asarray(Image.open(str(tmp_path / "local" / "street_labels.png")))
    assert np.array_equal(served_png, local_png)


def test_an_http_runner_made_in_one_thread_answers_in_another(served, local):
    """bisenet-bench --server activates each client's runner in the main thread and infers in
    a client thread: tritonclient.http's sockets belong to their thread's gevent hub, and a
    request that had to wait for its socket from another thread waited forever."""
    from bisenet_deploy.serve.client import ServedRunner

    batch = np.random.default_rng(3).random((8, 3, 64, 128)).astype(np.float32)
    runner = ServedRunner(served.http).activate()
    answers = []
    try:
        worker = threading.Thread(target=lambda: answers.append(runner.infer(batch)),
                                  daemon=True)
        worker.start()
        worker.join(60)
        assert not worker.is_alive(), "the request from another thread never returned"
        assert np.array_equal(answers[0]["labels"], local[0].infer(batch)["labels"])
        assert np.array_equal(runner.infer(batch)["labels"], answers[0]["labels"])  # and back
    finally:
        runner.deactivate()


def test_the_smoke_test_script_finds_the_served_model_answers_like_onnxruntime(served):
    """scripts/compare_served.py: what scripts/triton_container_check.sh runs against NVIDIA's
    Triton container (which cannot run here), checked against bisenet-serve."""
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "scripts", "compare_served.py")
    run = subprocess.run([sys.executable, script, "--server", served.grpc, "--onnx", served.onnx,
                          "--images", "3"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "PASS" in run.stdout and "4 of 4 requests answered like onnxruntime" in run.stdout
    run = subprocess.run([sys.executable, script, "--server", served.grpc, "--onnx", served.onnx,
                          "--model-name", "absent", "--ready-wait", "0.5"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1 and "no ready model 'absent'" in run.stderr


def test_a_port_in_use_is_one_line_and_exit_2(served, capsys):
    from bisenet_deploy.cli import serve_main

    http_port, grpc_port, metrics_port = free_ports(3)
    code = serve_main.main(["--onnx", served.onnx, "--host", HOST, "--http-port",
                            str(served.http_port), "--grpc-port", str(grpc_port),
                            "--metrics-port", str(metrics_port)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "port %d on %s is in use" % (served.http_port, HOST) in err and "--http-port" in err


def test_stop_exits_within_10_s_and_frees_the_ports(served):
    """Runs last in this module: it stops the module's server."""
    start = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    try:
        code = served.proc.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail("bisenet-serve still running 10 s after SIGTERM:\n" + served.log())
    assert code == 0, served.log()
    assert "stopped" in served.log()
    assert time.monotonic() - start < 10
    for port in (served.http_port, served.grpc_port, served.metrics_port):
        with socket.socket() as sock:  # nobody listens there any more, so it binds again
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((HOST, port))
        with pytest.raises(OSError):
            socket.create_connection((HOST, port), timeout=2).close()
