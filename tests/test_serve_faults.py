"""bisenet-serve's fault paths against a real Triton (PyTriton) on loopback, with the tiny model.

- a request that makes the bundled tritonserver abort (std::bad_alloc) is refused with 400 by
  bisenet-serve's HTTP front; sent to tritonserver's own port behind it, the server is restarted
  within seconds, the reason logged, and it answers correctly afterwards;
- a server that dies more often than --max-restarts allows ends bisenet-serve with exit 1 and
  one line;
- `kill -9` of bisenet-serve leaves no process, shared memory or folder behind, and a client
  without a deadline fails within seconds;
- Ctrl-C/SIGTERM to the whole process group (what a terminal's Ctrl-C does) while the model
  loads is one line and exit 130/143.
- with bisenet-serve frozen (SIGSTOP), the executing request fails after --execute-timeout and
  the queued one after --queue-timeout, not at the client's own timeout;
- the model configuration shows no internal path, over HTTP nor gRPC.

One server for the module (it is killed by the last test); every wait is bounded.
"""

import json
import os
import re
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest

pytest.importorskip("pytriton", reason="bisenet-serve needs pip install -e '.[serve]'")
pytest.importorskip("tritonclient.grpc", reason="the clients need tritonclient[grpc,http]")

from bisenet_deploy.serve.server import MAX_TMPDIR_CHARS  # noqa: E402
from test_serve_load import HOST, Served, _same, free_ports, stop  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"),
                                reason="checks processes through Linux /proc")

START_TIMEOUT_S = 120
#: the served fixture's --execute-timeout: far above a tiny model's batch, far below 60 s
EXECUTE_TIMEOUT_S = 5
#: a JSON request declaring 2**31 x 3 x 128 x 256 floats and carrying 4
KILLER = json.dumps({"inputs": [{"name": "image", "shape": [2147483648, 3, 128, 256],
                                 "datatype": "FP32", "data": [0, 0, 0, 0]}]}).encode()


def _default_signals():
    # the suite may run in a script's background, where SIGINT is ignored and inherited
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_serve(onnx, scratch, *extra, wait=True):
    ports = free_ports(3)
    log_path = os.path.join(str(scratch), "serve.out")
    err_path = os.path.join(str(scratch), "serve.err")
    cmd = [sys.executable, "-m", "bisenet_deploy.cli.serve_main", "--onnx", onnx, "--host", HOST,
           "--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--metrics-port",
           str(ports[2]), "--threads", "1"] + list(extra)
    env = dict(os.environ, TMPDIR=str(scratch))  # its scratch folder goes there (if short)
    with open(log_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True,
                                preexec_fn=_default_signals)
    served = Served(proc, ports, log_path, onnx)
    served.err_path = err_path
    if wait:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "ready:" not in served.log():
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                pytest.fail("bisenet-serve did not start (%s):\n%s%s" % (
                    proc.returncode, served.log(), _read(err_path)))
            time.sleep(0.2)
    return served


def _read(path):
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        return f.read()


# -- what a server owns, seen from outside (/proc) -----------------------------------------------
def _stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        text = f.read()
    fields = text[text.rfind(")") + 2:].split()
    return int(fields[1]), int(fields[2])  # ppid, pgid


def _cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().decode("utf-8", "replace").split("\0")


def _pids():
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def descendants(root):
    """pids below `root` (children, grandchildren...) now."""
    parents = {}
    for pid in _pids():
        try:
            parents[pid] = _stat(pid)[0]
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def owned_files(pids):
    """(shm prefix, /tmp/folderXXXXXX copies) named on the server's command lines."""
    shm, folders = set(), set()
    for pid in pids:
        try:
            argv = _cmdline(pid)
        except OSError:
            continue
        for arg in argv:
            m = re.search(r"shm-region-prefix-name=(\S+)", arg)
            if m:
                shm.add(m.group(1))
            m = re.match(r"^(/tmp/folder[A-Za-z0-9]{6})/", arg)
            if m:
                folders.add(m.group(1))
    return shm, folders


def mapped_shm(pids):
    """/dev/shm files the processes map (the Python-backend helpers' psm_* segments)."""
    from bisenet_deploy.serve.watchdog import shared_memory_of

    return set(shared_memory_of(sorted(pids)))


def shm_files(prefixes):
    return [n for n in os.listdir("/dev/shm") for p in prefixes if n.startswith(p)]


def wait_until(predicate, timeout_s, step=0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def model_ready(served):
    try:
        return served.get("/v2/models/bisenet/ready")[0] == 200
    except OSError:  # not listening (being restarted)
        return False


def _tritonserver_option(served, option):
    for pid in descendants(served.proc.pid):
        try:
            argv = _cmdline(pid)
        except OSError:
            continue
        if argv and argv[0].endswith("/tritonserver") and option in argv:
            return argv[argv.index(option) + 1]
    raise AssertionError("no tritonserver below bisenet-serve")


def internal_http_port(served):
    """tritonserver's own HTTP port, behind bisenet-serve's validating front."""
    return int(_tritonserver_option(served, "--http-port"))


def internal_token(served):
    """The access token tritonserver's own HTTP port asks for to infer (the front adds it)."""
    apis, _, header = _tritonserver_option(served, "--http-restricted-api").partition(":")
    assert "inference" in apis.split(","), apis
    name, _, token = header.partition("=")
    assert name == "triton-access-token" and token
    return token


def send_killer(served, port=None, body=KILLER, token=None):
    import http.client

    conn = http.client.HTTPConnection(HOST, port or served.http_port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["triton-access-token"] = token
    try:
        conn.request("POST", "/v2/models/bisenet/infer", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException):  # dropped: tritonserver aborted under it
        return None, b""
    finally:
        conn.close()


# -- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scratch(short_dir):
    return short_dir()


@pytest.fixture(scope="module")
def short_dir():
    """Factory: a new short folder the server's scratch folder goes into (bisenet-serve puts it
    in /tmp when TMPDIR's path is long, as pytest's are under pytest-xdist), removed afterwards."""
    made = []

    def make():
        made.append(tempfile.mkdtemp(prefix="sf-", dir="/tmp" if os.path.isdir("/tmp") else None))
        assert len(made[-1]) <= MAX_TMPDIR_CHARS, made[-1]
        return made[-1]

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def served(tiny_dynamic_export, scratch):
    server = start_serve(tiny_dynamic_export, scratch, "--queue-timeout", "2",
                         "--execute-timeout", str(EXECUTE_TIMEOUT_S))
    yield server
    stop(server.proc)


@pytest.fixture(scope="module")
def local(tiny_dynamic_export):
    from bisenet_deploy.portable.running.preprocess import prepare_input
    from bisenet_deploy.runtime.factory import open_runner
    from bisenet_deploy.synthetic import synthetic_image

    runner = open_runner("onnxruntime", onnx=tiny_dynamic_export, threads=1).activate()
    x = prepare_input(synthetic_image(128, 64, 5), runner.metadata)
    yield x, runner.infer(x)
    runner.deactivate()


# -- tests ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, data", [
    ([2147483648, 3, 128, 256], [0, 0, 0, 0]),  # beyond the batch and the dims
    ([1, 3, 65536, 65536], [0, 0, 0, 0]),       # beyond the dims
    ([8, 3, 64, 128], [0, 0, 0, 0]),            # valid shape, 4 values carried
    ([8, 3, 64, 128], None),                    # binary data declared, none carried
])
def test_requests_declaring_an_impossible_size_are_refused_with_400(served, local, shape, data):
    from bisenet_deploy.serve.client import ServedRunner

    tensor = {"name": "image", "shape": shape, "datatype": "FP32"}
    if data is None:
        tensor["parameters"] = {"binary_data_size": 8 * 3 * 64 * 128 * 4}
    else:
        tensor["data"] = data
    status, body = send_killer(served, body=json.dumps({"inputs": [tensor]}).encode())
    assert status == 400, (status, body[:200])
    assert json.loads(body)["error"]
    x, expected = local
    assert model_ready(served)
    with ServedRunner(served.http) as client:
        assert _same(client.infer(x), expected)
    assert "restarting" not in _read(served.err_path)  # the server never saw it


def test_the_configuration_shows_no_internal_path_over_http_or_grpc(served, scratch):
    """PyTriton's `workspace-path` (a folder in our scratch) is not in the configuration that
    Triton serves to anyone, on bisenet-serve's HTTP port nor over gRPC; the record is."""
    import tritonclient.grpc as grpcclient

    status, body = served.get("/v2/models/bisenet/config")
    assert status == 200
    client = grpcclient.InferenceServerClient("%s:%d" % (HOST, served.grpc_port))
    try:
        grpc_config = client.get_model_config("bisenet", as_json=True)["config"]
    finally:
        client.close()
    for config in (json.loads(body), grpc_config):
        text = json.dumps(config)
        assert "workspace-path" not in text and os.path.basename(scratch) not in text, text
        assert json.loads(config["parameters"]["bisenet_deploy"]["string_value"])["export"]
    assert served.get("/v2/health/ready")[0] == 200


def test_tritonserver_s_own_port_takes_inference_only_from_the_front(served, local):
    """A local user who finds tritonserver's loopback port cannot send it what the front refuses:
    without the access token it is refused, and the server keeps answering."""
    from bisenet_deploy.serve.client import ServedRunner

    x, expected = local
    status, body = send_killer(served, internal_http_port(served))
    assert status is not None and 400 <= status < 500, (status, body)
    assert served.proc.poll() is None and model_ready(served)
    with ServedRunner(served.http) as client:  # through the front, which adds the token
        assert _same(client.infer(x), expected)


def test_a_dead_tritonserver_is_restarted_within_seconds(served, local):
    """The same request sent to tritonserver's own (loopback) port with the access token aborts
    it: supervision."""
    from bisenet_deploy.serve.client import ServedRunner

    x, expected = local
    status, _ = send_killer(served, internal_http_port(served), token=internal_token(served))
    if status is not None:
        pytest.skip("this tritonserver refuses the request (%s) instead of aborting" % status)
    assert wait_until(lambda: model_ready(served), 90), served.log() + _read(served.err_path)
    assert served.proc.poll() is None
    with ServedRunner(served.grpc) as client:
        assert _same(client.infer(x), expected)
    err = _read(served.err_path)
    assert re.search(r"the Triton server was killed by SIGABRT \(.*bad_alloc.*\): "
                     r"restarting it", err), err
    assert "restarted and serves 'bisenet' again" in err
    assert "Traceback" not in err and "0x0000" not in served.log() + err  # no backtrace


def test_clients_wait_for_the_model_to_be_ready(served, local):
    """predict/bench --server (ServedRunner) wait while the model is not ready yet."""
    from bisenet_deploy.serve.client import ServedRunner

    x, expected = local
    runner = ServedRunner(served.grpc, model_name="not-there", ready_wait_s=0.6)
    started = time.monotonic()
    with pytest.raises(Exception, match="no ready model 'not-there' after 0.6 s"):
        runner.activate()
    assert time.monotonic() - started >= 0.6


def test_the_printed_readiness_check_covers_the_model(served):
    out = served.log()
    assert "/v2/models/bisenet/ready" in out and "/v2/health/ready" not in out


def test_requests_behind_a_frozen_model_are_refused_by_the_queue_and_execute_timeouts(served,
                                                                                       local):
    """bisenet-serve stopped (SIGSTOP): the executing request gets an error after
    --execute-timeout, the queued one after --queue-timeout, neither waits for its client's 60 s;
    the model answers again once it runs."""
    from bisenet_deploy.serve.client import ServedRunner

    x, expected = local
    frozen = [served.proc.pid]  # bisenet-serve itself: the runner (and the HTTP front) freeze
    outcomes = {}
    restarts = _read(served.err_path).count("restarting")

    def request(key):
        started = time.monotonic()
        try:
            with ServedRunner(served.grpc, timeout_s=60) as client:
                outcomes[key] = (_same(client.infer(x), expected), time.monotonic() - started)
        except Exception as exc:
            outcomes[key] = (str(exc), time.monotonic() - started)

    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)  # the model's process stops answering
    try:
        first = threading.Thread(target=request, args=("first",))
        first.start()
        time.sleep(1.0)  # the first one is executing (stuck); the next one waits in the queue
        second = threading.Thread(target=request, args=("second",))
        second.start()
        second.join(30)
        first.join(30)
        assert not second.is_alive(), "the queued request still waits after 30 s"
        assert not first.is_alive(), "the executing request still waits after 30 s"
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    message, seconds = outcomes["second"]
    assert isinstance(message, str) and "timeout" in message.lower(), message
    assert seconds < 20, seconds  # refused by the server (2 s queue timeout), not the client's 60
    message, seconds = outcomes["first"]
    assert isinstance(message, str), message
    assert "did not answer within %d s" % EXECUTE_TIMEOUT_S in message, message
    assert EXECUTE_TIMEOUT_S - 1 < seconds < 25, seconds  # the server's deadline, not the client's
    request("after")  # the late answer to the abandoned batch harms nothing
    assert outcomes["after"][0] is True, outcomes["after"]
    assert model_ready(served) and _read(served.err_path).count("restarting") == restarts


def test_kill_9_leaves_nothing_behind(served):
    """Runs last: kills the module's server."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    assert wait_until(lambda: model_ready(served), 90)
    tree = descendants(served.proc.pid)
    shm, folders = owned_files(tree)
    segments = mapped_shm(tree)
    assert len(tree) >= 3 and shm and folders and segments  # watchdog, tritonserver, stub...
    assert shm_files(shm)
    scratch_dirs = [os.path.join(os.path.dirname(served.log_path), n)
                    for n in os.listdir(os.path.dirname(served.log_path))
                    if n.startswith("bisenet-serve-")]
    assert scratch_dirs
    channel = grpc.insecure_channel("%s:%d" % (HOST, served.grpc_port))
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=10)  # connected

    def no_deadline():
        """A raw client's request without a deadline: what it got, or [] while it still waits."""
        outcome = []

        def ask():
            try:
                stub.ModelReady(service_pb2.ModelReadyRequest(name="bisenet"))
                outcome.append("answered")
            except grpc.RpcError as exc:
                outcome.append(exc.code())

        thread = threading.Thread(target=ask, daemon=True)
        thread.start()
        thread.join(20)
        return outcome

    served.proc.kill()
    served.proc.wait(10)
    # sent at once: tritonserver may still answer (the watchdog kills it a moment after
    # bisenet-serve dies), but the client must not be left waiting
    assert no_deadline(), "a request sent as bisenet-serve died still waits after 20 s"
    assert wait_until(lambda: not any(alive(p) for p in tree), 20), [
        (p, _cmdline(p)[:1]) for p in tree if alive(p)]
    outcome = no_deadline()  # once the tree is gone: refused at once, never answered
    channel.close()
    assert outcome and outcome[0] != "answered", outcome
    assert wait_until(lambda: not shm_files(shm), 10), shm_files(shm)
    assert wait_until(lambda: not [p for p in segments if os.path.exists(p)], 10), segments
    assert wait_until(lambda: not any(os.path.exists(p) for p in folders | set(scratch_dirs)),
                      10), [p for p in folders | set(scratch_dirs) if os.path.exists(p)]


def test_a_server_dying_too_often_is_one_line_and_exit_1(tiny_dynamic_export, short_dir):
    tmp_path = short_dir()
    served = start_serve(tiny_dynamic_export, tmp_path, "--max-restarts", "0")
    try:
        tree = descendants(served.proc.pid)
        shm, folders = owned_files(tree)
        status, _ = send_killer(served, internal_http_port(served), token=internal_token(served))
        if status is not None:
            pytest.skip("this tritonserver refuses the request (%s) instead of aborting" % status)
        code = served.proc.wait(60)
    finally:
        stop(served.proc)
    err = _read(served.err_path).strip()
    assert code == 1, err
    assert "\n" not in err and "Traceback" not in err and "resource_tracker" not in err, err
    assert re.match(r"error: the Triton server was killed by SIGABRT \(.*bad_alloc.*\): "
                    r"bisenet-serve stops", err), err
    assert wait_until(lambda: not any(alive(p) for p in tree), 20)
    assert not shm_files(shm) and not any(os.path.exists(p) for p in folders)
    assert not [n for n in os.listdir(str(tmp_path)) if n.startswith("bisenet-serve-")]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_the_process_group_while_loading_is_one_line(tiny_dynamic_export,
                                                                 short_dir, sig, code):
    """A terminal's Ctrl-C reaches the whole foreground process group, children included."""
    tmp_path = short_dir()
    served = start_serve(tiny_dynamic_export, tmp_path, wait=False)
    try:
        # once the model is loading (its stub runs), signal the group, then again while
        # bisenet-serve cleans up (an impatient second Ctrl-C, or a supervisor's SIGTERM after it)
        seen = {}

        def loading():  # the stub runs and the tree names its shared memory and model copy
            tree = descendants(served.proc.pid)
            try:
                stub = any("stub" in " ".join(_cmdline(p)[:1]) for p in tree if alive(p))
            except OSError:  # a process ended between the two reads
                return False
            shm, folders = owned_files(tree)
            if stub and shm and folders:
                seen.update(tree=tree, shm=shm, folders=folders)
            return bool(seen)

        assert wait_until(loading, 60)
        tree, shm, folders = seen["tree"], seen["shm"], seen["folders"]
        os.killpg(served.proc.pid, sig)
        for _ in range(5):
            time.sleep(0.1)
            if served.proc.poll() is None:
                os.killpg(served.proc.pid, sig)
        got = served.proc.wait(60)
    finally:
        stop(served.proc)
    err = _read(served.err_path).strip()
    assert got == code, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert not [n for n in os.listdir(str(tmp_path)) if n.startswith("bisenet-serve-")]
    # nothing left of a server stopped while loading: processes, shared memory, model copies
    assert folders and wait_until(lambda: not any(alive(p) for p in tree), 20)
    assert not shm_files(shm) and not [p for p in folders if os.path.exists(p)]
