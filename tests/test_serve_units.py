"""The pieces of serving that need no server: libpython choice, addresses, batching, load loop."""

import socket
import time

import numpy as np
import pytest

from bisenet_deploy.errors import InputError, MissingDependencyError, UserError
from bisenet_deploy.portable.running.runner_base import Runner, TensorSpec


# -- the Python backend's libpython ------------------------------------------------------------
def _config(shared, libdir):
    values = {"Py_ENABLE_SHARED": shared, "LIBDIR": libdir, "INSTSONAME": "libpython3.11.so.1.0"}
    return values.get


def test_a_shared_interpreter_puts_its_own_library_first(tmp_path):
    from bisenet_deploy.serve.libpython import plan_library_path

    (tmp_path / "libpython3.11.so.1.0").write_bytes(b"")
    assert plan_library_path(_config(1, str(tmp_path)), "3.11.7",
                             system_library=lambda s: pytest.fail("not asked"),
                             version_of=lambda p: pytest.fail("not asked")) == str(tmp_path)


def test_a_static_interpreter_uses_the_system_library_only_of_its_own_version(tmp_path):
    from bisenet_deploy.serve.libpython import plan_library_path

    static = _config(0, str(tmp_path))
    assert plan_library_path(static, "3.11.7", system_library=lambda s: "libpython3.11.so.1.0",
                             version_of=lambda p: "3.11.7") is None
    with pytest.raises(MissingDependencyError) as exc:
        plan_library_path(static, "3.11.7", system_library=lambda s: "libpython3.11.so.1.0",
                          version_of=lambda p: "3.11.2")
    message = str(exc.value)
    assert "3.11.2" in message and "3.11.7" in message and "--enable-shared" in message
    assert "\n" not in message
    with pytest.raises(MissingDependencyError, match="neither this Python .* nor the system"):
        plan_library_path(static, "3.11.7", system_library=lambda s: None,
                          version_of=lambda p: None)


def test_server_environment_prepends_the_library_folder_once(monkeypatch):
    from bisenet_deploy.serve import libpython

    monkeypatch.setattr(libpython, "plan_library_path", lambda: "/py/lib")
    env = libpython.server_environment({"LD_LIBRARY_PATH": "/a:/py/lib:/b", "X": "1"})
    assert env == {"LD_LIBRARY_PATH": "/py/lib:/a:/b", "X": "1"}
    assert libpython.server_environment({})["LD_LIBRARY_PATH"] == "/py/lib"


def test_this_interpreter_gets_a_working_plan():
    """Here (pyenv's shared 3.11.7, or any CI Python) the plan is a folder or nothing, never an
    error; and the version read from a library file is a real version string."""
    import platform
    import sysconfig

    from bisenet_deploy.serve.libpython import library_version, plan_library_path

    folder = plan_library_path()
    assert folder is None or folder == sysconfig.get_config_var("LIBDIR")
    if folder:
        soname = sysconfig.get_config_var("INSTSONAME")
        assert library_version(f"{folder}/{soname}") == platform.python_version()


# -- addresses and ports -----------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("localhost:8001", (None, "localhost", 8001)),
    ("grpc://10.1.2.3:9001", ("grpc", "10.1.2.3", 9001)),
    ("HTTP://host:8000/", ("http", "host", 8000)),
    ("[::1]:8001", (None, "::1", 8001)),
])
def test_server_addresses(text, expected):
    from bisenet_deploy.serve.client import parse_server

    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["localhost", "ftp://h:1", "host:0", "host:http", ":8001"])
def test_bad_server_addresses_are_refused(text):
    from bisenet_deploy.serve.client import parse_server

    with pytest.raises(InputError, match="--server"):
        parse_server(text)


def test_nothing_listening_is_one_clear_line():
    pytest.importorskip("tritonclient.grpc")
    from bisenet_deploy.serve.client import ServedRunner

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    with pytest.raises(UserError, match=r"no Triton server answers at 127\.0\.0\.1:%d" % port):
        ServedRunner("127.0.0.1:%d" % port, timeout_s=5).activate()


def test_a_port_in_use_is_refused_before_starting():
    from bisenet_deploy.serve.server import check_port_free

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(InputError, match="port %d on 127.0.0.1 is in use.*--grpc-port" % port):
            check_port_free("127.0.0.1", port, "--grpc-port")
    with pytest.raises(InputError, match="not a port number"):
        check_port_free("127.0.0.1", 70000, "--http-port")


# -- the served instance function --------------------------------------------------------------
class TimesTwo(Runner):
    """Doubles its input; takes batches within [lo, hi] only (a static export: lo == hi)."""

    backend = "fake"

    def __init__(self, lo, hi):
        super().__init__()
        self.lo, self.hi = lo, hi
        self.calls = []
        self.metadata = {"export": {"batch": {"dynamic": True, "min": lo, "max": hi}}}

    def input_spec(self):
        n = self.lo if self.lo == self.hi else -1
        return TensorSpec("image", (n, 2), np.float32)

    def output_specs(self):
        return [TensorSpec("labels", (-1, 2), np.float32)]

    def _activate(self):
        pass

    def _deactivate(self):
        pass

    def _check_batch_size(self, n):
        assert self.lo <= n <= self.hi, n

    def _infer(self, batch):
        self.calls.append(batch.shape[0])
        return {"labels": batch * 2}


@pytest.mark.parametrize("lo, hi, calls", [(1, 1, [1] * 7), (3, 3, [3, 3, 3]), (1, 8, [7])])
def test_gathered_requests_run_in_pieces_the_model_takes(lo, hi, calls):
    from bisenet_deploy.serve.server import InstanceFunction

    runner = TimesTwo(lo, hi).activate()
    requests = [{"image": np.full((n, 2), float(i), np.float32)} for i, n in enumerate((2, 1, 4))]
    results = InstanceFunction(runner)(requests)
    assert runner.calls == calls  # a short last piece is padded to the static size
    assert [r["labels"].shape[0] for r in results] == [2, 1, 4]
    for i, result in enumerate(results):
        assert np.array_equal(result["labels"], np.full_like(result["labels"], 2.0 * i))


def test_every_runner_is_warmed_up_at_each_batch_size_the_batcher_forms():
    from bisenet_deploy.serve.server import warm_up

    runners = [TimesTwo(1, 8).activate(), TimesTwo(1, 1).activate()]
    warm_up(runners, [1, 4, 8])
    assert runners[0].calls == [1, 4, 8]
    assert runners[1].calls == [1] * 13  # a batch-1 model takes them one by one


# -- the load loop ------------------------------------------------------------------------------
class Flaky(object):
    """A client whose every third request fails."""

    def __init__(self):
        self.count = 0

    def infer(self, batch):
        self.count += 1
        if self.count % 3 == 0:
            raise UserError("server said no")
        return {"labels": batch}


def test_a_level_counts_every_request_and_keeps_failures():
    from bisenet_deploy.bench.served import run_level, split_requests

    assert split_requests(10, 4) == [3, 3, 2, 2] and sum(split_requests(7, 7)) == 7
    clients = [Flaky() for _ in range(3)]
    level = run_level(clients, [np.zeros((2, 2), np.float32)], requests=9, warmup=0)
    assert (level["ok"], level["failed"], level["concurrency"], level["batch"]) == (6, 3, 3, 2)
    assert level["errors"] == ["UserError: server said no"]
    assert level["latency_ms"]["count"] == 6 and level["images_per_s"] > 0
    assert set(level["latency_ms"]) >= {"median_ms", "p90_ms", "p99_ms"}


def test_overhead_rows_pair_served_and_direct_levels():
    from bisenet_deploy.bench.served import overhead_rows

    def level(target, n, median, rate):
        return {"target": target, "concurrency": n, "images_per_s": rate,
                "latency_ms": {"median_ms": median}}

    rows = overhead_rows([level("served", 1, 5.0, 100.0), level("direct", 1, 2.0, 200.0),
                          level("served", 2, 9.0, 150.0)])
    assert rows == [{"concurrency": 1, "served_median_ms": 5.0, "direct_median_ms": 2.0,
                     "overhead_ms": 3.0, "throughput_ratio": 0.5}]


def test_triton_datatypes():
    from bisenet_deploy.serve.model_io import numpy_dtype, triton_datatype

    assert numpy_dtype("TYPE_INT32") == np.int32 and numpy_dtype("UINT8") == np.uint8
    assert triton_datatype(np.float32) == "FP32" and triton_datatype("float16") == "FP16"
    with pytest.raises(InputError):
        triton_datatype(np.complex64)


def test_without_the_serve_extra_the_commands_say_what_to_install(tiny_export, tmp_path):
    from test_package import help_without_tensorrt  # blocks pytriton and tritonclient too

    from PIL import Image

    _, _, onnx = tiny_export("labels")
    image = tmp_path / "street.png"
    Image.new("RGB", (64, 32)).save(image)
    for command, argv in (("serve_main", ["--onnx", onnx]),
                          ("predict_main", ["--server", "127.0.0.1:1", str(image), "-o",
                                            str(tmp_path / "out")]),
                          ("bench_main", ["--server", "127.0.0.1:1", "--iters", "1"])):
        out = help_without_tensorrt(command, argv)
        err = out.stderr.strip()
        assert out.returncode == 4, (command, err)
        assert "pip install -e '.[serve]'" in err and "\n" not in err, (command, err)


def test_a_bad_model_is_one_line_before_any_server_starts(tmp_path, capsys):
    pytest.importorskip("pytriton", reason="bisenet-serve needs pip install -e '.[serve]'")
    from bisenet_deploy.cli import serve_main

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"<html>not a model</html>")
    code = serve_main.main(["--onnx", str(bad), "--http-port", "1", "--grpc-port", "2",
                            "--metrics-port", "3"])
    err = capsys.readouterr().err.strip()
    assert code == 5 and "\n" not in err and "not a readable ONNX model" in err and str(bad) in err
    code = serve_main.main(["--onnx", str(bad), "--http-port", "5", "--grpc-port", "5"])
    assert code == 2 and "must differ" in capsys.readouterr().err
    for option, value in (("--execute-timeout", "-1"), ("--execute-timeout", "nan"),
                          ("--queue-timeout", "inf")):
        code = serve_main.main(["--onnx", str(bad), option, value])
        err = capsys.readouterr().err.strip()
        assert code == 2 and option + " must be" in err and "\n" not in err, (value, err)


# -- liveness and the HTTP front's checks (no server) ---------------------------------------------
def test_liveness_reports_a_runner_stuck_in_one_batch():
    import threading

    from bisenet_deploy.serve.instance import InstanceFunction, stuck_instance

    release = threading.Event()

    class Hangs(TimesTwo):
        def _infer(self, batch):
            release.wait(30)
            return super()._infer(batch)

    instance = InstanceFunction(Hangs(1, 8).activate())
    assert stuck_instance([instance], 60) is None  # idle
    worker = threading.Thread(target=instance, args=([{"image": np.zeros((1, 2), np.float32)}],))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while instance.busy_since is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stuck_instance([instance], 60) is None  # busy, not for long
        problem = stuck_instance([instance], 60, now=instance.busy_since + 61)
        assert problem and "instance 0" in problem and "stuck" in problem
    finally:
        release.set()
        worker.join(10)
    assert instance.busy_since is None and stuck_instance([instance], 60) is None


def _limits():
    from bisenet_deploy.serve.http_front import ModelLimits

    return ModelLimits("bisenet", "image", "FP32", (3, 64, 128), 8)


@pytest.mark.parametrize("tensor, carried, problem", [
    ({"shape": [2147483648, 3, 128, 256], "data": [0] * 4}, 0, "unexpected shape"),
    ({"shape": [1, 3, 65536, 65536], "data": [0] * 4}, 0, "unexpected shape"),
    ({"shape": [9, 3, 64, 128], "data": [0] * 4}, 0, "unexpected shape"),
    ({"shape": [0, 3, 64, 128], "data": []}, 0, "unexpected shape"),
    ({"shape": [2, 3, 64, 128], "data": [0] * 4}, 0, "declares 49152 values, its 'data' holds 4"),
    ({"shape": [1, 3, 64, 128], "data": [[0] * 100] * 300}, 0, "holds more"),
    ({"shape": [1, 3, 64, 128], "parameters": {"binary_data_size": 16}}, 16, "binary_data_size"),
    ({"shape": [1, 3, 64, 128], "parameters": {"binary_data_size": 98304}}, 10, "carries 10"),
    ({"shape": [1, 3, 64, 128]}, 0, "carries no data"),
    ({"shape": "1x3", "data": []}, 0, "must be a list"),
    ({"shape": [1, 3, 64, True], "data": []}, 0, "must be a list"),
    ({"shape": [1, 3, 64, 128], "datatype": "FP64", "data": [0] * 24576}, 0, "datatype"),
    ({"name": "img", "shape": [1, 3, 64, 128], "data": [0] * 24576}, 0, "unexpected input"),
])
def test_the_http_front_refuses_impossible_sizes_before_tritonserver(tensor, carried, problem):
    from bisenet_deploy.serve.http_front import check_infer_request

    request = {"inputs": [dict({"name": "image", "datatype": "FP32"}, **tensor)]}
    found = check_infer_request(request, carried, _limits())
    assert found and problem in found, found


def test_the_http_front_passes_valid_requests():
    from bisenet_deploy.serve.http_front import check_infer_request

    good = {"name": "image", "datatype": "FP32", "shape": [2, 3, 64, 128]}
    assert check_infer_request({"inputs": [dict(good, data=[0.0] * 49152)]}, 0, _limits()) is None
    binary = dict(good, parameters={"binary_data_size": 49152 * 4})
    assert check_infer_request({"inputs": [binary]}, 49152 * 4, _limits()) is None
    assert check_infer_request({"inputs": "x"}, 0, _limits())
    assert _limits().max_body_bytes() >= 8 * 3 * 64 * 128 * 32


def _pytriton_stub():
    pytriton = pytest.importorskip("pytriton", reason="needs nvidia-pytriton (the serve extra)")
    import pathlib

    return (pathlib.Path(pytriton.__file__).parent / "proxy" / "model.py").read_text()


def test_the_stub_reads_its_workspace_from_a_file_and_bounds_its_wait_when_asked():
    from bisenet_deploy.serve.pytriton_model import WORKSPACE_FILE, public_config, stub_source

    original = _pytriton_stub()
    plain = stub_source(original)
    compile(plain, "model.py", "exec")
    assert '["workspace-path"]' not in plain and WORKSPACE_FILE in plain
    assert "timeout=" not in plain  # no --execute-timeout: the stub waits as PyTriton's does
    bounded = stub_source(original, 2.5)
    compile(bounded, "model.py", "exec")
    assert "result(timeout=2.5)" in bounded and "did not answer within 2.5 s" in bounded
    config = {"parameters": {"workspace-path": {"string_value": "/tmp/x"},
                             "bisenet_deploy": {"string_value": "{}"}}}
    assert public_config(config)["parameters"] == {"bisenet_deploy": {"string_value": "{}"}}


def test_an_unexpected_stub_is_refused_not_loaded_half_changed():
    from bisenet_deploy.serve.pytriton_model import stub_source

    changed = _pytriton_stub().replace('["workspace-path"]', '["workspace"]')
    with pytest.raises(MissingDependencyError, match="nvidia-pytriton==0.7.0"):
        stub_source(changed)


def test_the_http_front_answers_liveness_and_refusals_itself():
    """A front with no tritonserver behind it: liveness from the runners, refusals before
    forwarding, and 503 (not a hang) for what it would forward."""
    import http.client
    import json

    from bisenet_deploy.serve.http_front import HttpFront
    from bisenet_deploy.serve.ports import free_loopback_port

    stuck = []
    port = free_loopback_port()
    front = HttpFront("127.0.0.1", port, free_loopback_port(), _limits(), timeout_s=5,
                      live_check=lambda: stuck[0] if stuck else None).start()
    try:
        def call(method, path, body=None):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request(method, path, body=body)
                resp = conn.getresponse()
                return resp.status, resp.read()
            finally:
                conn.close()

        assert call("GET", "/v2/health/live")[0] == 503  # upstream down: not live either
        stuck.append("instance 0 has been running one batch for 61 s: it is stuck")
        status, body = call("GET", "/v2/health/live")
        assert status == 503 and "stuck" in json.loads(body)["error"]
        killer = json.dumps({"inputs": [{"name": "image", "shape": [2147483648, 3, 128, 256],
                                         "datatype": "FP32", "data": [0, 0, 0, 0]}]})
        status, body = call("POST", "/v2/models/bisenet/infer", killer)
        assert status == 400 and "unexpected shape" in json.loads(body)["error"]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("POST", "/v2/models/bisenet/infer")
        conn.putheader("Content-Length", str(10 ** 12))  # declared, never sent
        conn.endheaders()
        assert conn.getresponse().status == 413
        conn.close()
        assert call("GET", "/v2/models/bisenet/ready")[0] == 503
    finally:
        front.stop()


def test_the_queue_delay_default_follows_where_the_model_runs():
    """0 us on a CPU (measured best there, docs/serving.md), Triton's usual 500 us on a GPU; a
    value given is kept."""
    from bisenet_deploy.cli.serve_main import build_parser, queue_delay_us
    from bisenet_deploy.serve.model_config import CPU_QUEUE_DELAY_US, DEFAULT_QUEUE_DELAY_US

    args = build_parser().parse_args(["--onnx", "m.onnx"])
    assert (CPU_QUEUE_DELAY_US, DEFAULT_QUEUE_DELAY_US) == (0, 500)
    assert queue_delay_us(args, "onnxruntime") == queue_delay_us(args, "torch") == 0
    for gpu in ("tensorrt", "onnxruntime-cuda", "onnxruntime-trt", "torch-cuda"):
        assert queue_delay_us(args, gpu) == 500
    args = build_parser().parse_args(["--onnx", "m.onnx", "--max-queue-delay-us", "2000"])
    assert queue_delay_us(args, "onnxruntime") == 2000


def test_tritonservers_http_port_restricts_inference_to_the_token_and_grpc_keeps_its_list():
    import types

    from bisenet_deploy.errors import MissingDependencyError
    from bisenet_deploy.serve.pytriton_model import restrict_http_inference

    value = "shared-memory,model-repository:triton-access-token=T"
    triton = types.SimpleNamespace(_triton_server_config={
        "http-restricted-api": value, "grpc-restricted-protocol": value})
    restrict_http_inference(triton)
    restrict_http_inference(triton)  # once only
    assert triton._triton_server_config == {
        "http-restricted-api": "shared-memory,model-repository,inference:triton-access-token=T",
        "grpc-restricted-protocol": value}
    for unexpected in ({}, {"http-restricted-api": "no-key"}):  # another PyTriton: refused
        with pytest.raises(MissingDependencyError, match="0.7.0"):
            restrict_http_inference(types.SimpleNamespace(_triton_server_config=unexpected))
