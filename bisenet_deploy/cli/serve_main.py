"""`bisenet-serve`: serve a model on a real Triton Inference Server (PyTriton) through our runners.

    bisenet-serve --onnx export/model.onnx [--http-port 8000 --grpc-port 8001 --metrics-port 8002]

See bisenet_deploy.serve.server for how the server is put together.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from .common import Terminated, add_logging_args, run_cli
from .options import add_backend, add_engine, add_onnx

log = logging.getLogger(__name__)

EPILOG = """\
endpoints (KServe v2): GET /v2/models/NAME/ready (200 once the model is loaded: the readiness
check to use) and /v2/health/live; GET /v2/models/NAME (tensors) and /v2/models/NAME/config
(with the model's metadata: classes, palette, preprocessing, under parameters); POST
/v2/models/NAME/infer, the same over gRPC; Prometheus metrics on the metrics port. The
model-repository, statistics, trace and logging endpoints need the header triton-access-token
(gRPC: triton-grpc-protocol-triton-access-token) set to --access-token (random unless given).
The HTTP port is a validating front: an infer request declaring a size the model cannot take or
that it does not carry gets 400 before it reaches tritonserver (whose own HTTP port listens on
a loopback port behind it); /v2/health/ready there answers 200 only once the model is ready.

batching: Triton gathers concurrent requests into batches of up to --max-batch images (default:
the most the model takes: its dynamic-batch maximum, 1 for a static batch-1 export; a larger
--max-batch is run in pieces the model takes).

stopping: Ctrl-C or SIGTERM; in-flight requests get --exit-timeout seconds to finish.
supervision: a tritonserver that dies (a crash, a request that makes it abort) is restarted
within seconds, up to --max-restarts times a minute (the reason is logged; requests in flight
fail). Killing bisenet-serve, even with kill -9, takes tritonserver, its stubs and their files
(/dev/shm, scratch folders) with it: a watchdog process cleans up.

exit status (the README's exit-code table): 0 stopped on request; 2 bad options, a missing
model file or a port in use; 5 a model file that cannot be used (corrupt, foreign, no metadata,
or a repository's model whose sha256 is not its manifest's);
1 the server failed, or died more than --max-restarts times a minute; 4 serving packages
missing (pip install -e '.[serve]'); 130/143 interrupted by Ctrl-C/SIGTERM while starting.

example:
  bisenet-serve --onnx export/bisenetv2-dyn1-8.onnx --instances 2
  curl -f localhost:8000/v2/models/bisenet/ready && bisenet-bench --server localhost:8001 \
      --concurrency 4
"""


def build_parser() -> argparse.ArgumentParser:
    from ..serve.model_config import CPU_QUEUE_DELAY_US, DEFAULT_QUEUE_DELAY_US
    from ..serve.model_io import DEFAULT_MODEL_NAME

    p = argparse.ArgumentParser(
        prog="bisenet-serve",
        description="Serve BiSeNet V2 on a Triton Inference Server (started here through "
                    "PyTriton, CPU-only machines included) that runs the model through "
                    "bisenet-deploy's runners (onnxruntime, PyTorch, TensorRT), with dynamic "
                    "batching, KServe v2 HTTP and gRPC, and metrics.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    models = p.add_argument_group("model")
    add_onnx(models, "an exported ONNX (backend onnxruntime)")
    add_engine(models, "a TensorRT engine (backend tensorrt)")
    models.add_argument("--checkpoint", metavar="PATH",
                        help="a checkpoint (backend torch; with --onnx and --backend torch: that "
                             "export's graph with these weights)")
    add_backend(models, "onnxruntime, onnxruntime-cuda, onnxruntime-trt, torch, torch-cuda, "
                        "tensorrt (default: from the model given)")
    models.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads per instance for onnxruntime/torch (default: the cores "
                             "shared among the instances)")
    serve = p.add_argument_group("server")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1, this machine only; "
                            "0.0.0.0 for every interface)")
    serve.add_argument("--http-port", type=int, default=8000, help="HTTP port (default 8000)")
    serve.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001)")
    serve.add_argument("--metrics-port", type=int, default=8002,
                       help="Prometheus metrics port (default 8002)")
    serve.add_argument("--model-name", default=DEFAULT_MODEL_NAME,
                       help=f"served model name (default {DEFAULT_MODEL_NAME})")
    serve.add_argument("--max-batch", type=int, metavar="N",
                       help="largest batch Triton gathers (default: the model's maximum)")
    serve.add_argument("--instances", type=int, default=1, metavar="K",
                       help="model instances, each with its own runner (default 1)")
    serve.add_argument("--max-queue-delay-us", type=int, default=None, metavar="US",
                       help="how long Triton waits to fill a batch (default "
                            f"{CPU_QUEUE_DELAY_US} for a CPU backend, measured best there; "
                            f"{DEFAULT_QUEUE_DELAY_US} on a GPU)")
    serve.add_argument("--exit-timeout", type=int, default=5, metavar="S",
                       help="seconds in-flight requests get when stopping (default 5)")
    serve.add_argument("--access-token", metavar="TOKEN",
                       help="token for the restricted endpoints (default: random)")
    serve.add_argument("--queue-timeout", type=float, default=0.0, metavar="S",
                       help="a request waiting longer in Triton's queue (a stuck or overloaded "
                            "model) is refused (default 0: no limit; a queue policy added tail "
                            "latency here, see docs/serving.md)")
    serve.add_argument("--execute-timeout", type=float, default=0.0, metavar="S",
                       help="a batch the model has not answered in S seconds (a frozen or hung "
                            "runner) is answered with an error (default 0: no limit)")
    serve.add_argument("--max-queue", type=int, default=0, metavar="N",
                       help="requests the queue holds; more are refused at once (default 0: no "
                            "limit)")
    serve.add_argument("--max-restarts", type=int, default=3, metavar="N",
                       help="restarts of a dead tritonserver allowed per minute (default 3; 0: "
                            "exit 1 at the first death, for a supervisor such as systemd or "
                            "Kubernetes to restart)")
    serve.add_argument("--server-log", action="store_true",
                       help="print tritonserver's own log")
    add_logging_args(p)
    p.set_defaults(func=_run)
    return p


def _backend(args) -> str:
    from ..errors import InputError

    if args.backend:
        return args.backend
    given = [n for n in ("engine", "onnx", "checkpoint") if getattr(args, n)]
    if len(given) != 1:
        raise InputError("give one model: --onnx, --engine or --checkpoint (or --backend to "
                         "choose how to run several)" if given else
                         "nothing to serve: give --onnx, --engine or --checkpoint")
    return {"engine": "tensorrt", "onnx": "onnxruntime", "checkpoint": "torch"}[given[0]]


def _check_args(args) -> None:
    from ..errors import InputError

    from ..serve.repository import check_repository_model

    for kind in ("engine", "onnx", "checkpoint"):
        path = getattr(args, kind)
        if path and not os.path.isfile(path):
            raise InputError(f"--{kind} {path}: no such file")
    for path in (args.onnx, args.engine):
        if path:  # a model inside a repository from bisenet-export triton: its manifest's bytes
            check_repository_model(path)
    ports = [args.http_port, args.grpc_port, args.metrics_port]
    if len(set(ports)) != 3:
        raise InputError(f"--http-port, --grpc-port and --metrics-port must differ, got {ports}")
    for option, value, low in (("--instances", args.instances, 1), ("--threads", args.threads, 1),
                               ("--max-batch", args.max_batch, 1),
                               ("--exit-timeout", args.exit_timeout, 1),
                               ("--max-restarts", args.max_restarts, 0),
                               ("--queue-timeout", args.queue_timeout, 0),
                               ("--execute-timeout", args.execute_timeout, 0),
                               ("--max-queue", args.max_queue, 0),
                               ("--max-queue-delay-us", args.max_queue_delay_us, 0)):
        if value is not None and not low <= value < float("inf"):  # nan and inf too
            raise InputError(f"{option} must be a finite number >= {low}, got {value}"
                             if value >= low else f"{option} must be >= {low}, got {value}")


def queue_delay_us(args, backend: str) -> int:
    """--max-queue-delay-us, or its default for where the model runs (measured on a CPU)."""
    from ..bench.session import CPU_BACKENDS
    from ..serve.model_config import CPU_QUEUE_DELAY_US, DEFAULT_QUEUE_DELAY_US

    if args.max_queue_delay_us is not None:
        return args.max_queue_delay_us
    return CPU_QUEUE_DELAY_US if backend.lower() in CPU_BACKENDS else DEFAULT_QUEUE_DELAY_US


def open_runners(args, backend: str) -> list:
    """One inactive runner per instance, from the runtime factory."""
    from ..runtime.factory import open_runner

    family = backend.split("-")[0]
    options = {}
    threads = args.threads
    if threads is None and args.instances > 1 and family in ("onnxruntime", "torch"):
        threads = max(1, (os.cpu_count() or 1) // args.instances)
    if threads is not None and family in ("onnxruntime", "torch"):
        options["threads"] = threads
    return [open_runner(backend, onnx=args.onnx, engine=args.engine,
                        checkpoint=args.checkpoint if family == "torch" else None,
                        require_metadata=True, **options)
            for _ in range(args.instances)]


def _quiet_pytriton(verbose: int) -> None:
    """PyTriton logs its own progress (and tritonserver's exit) at INFO/WARNING: only with -v."""
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.ERROR
    logging.getLogger("pytriton").setLevel(level)


def _quiet_gevent_interrupts() -> None:
    """PyTriton waits for the server with a gevent-based HTTP client, whose hub runs in our main
    thread: a Ctrl-C/SIGTERM handled then is printed by the hub, traceback and all, before it
    reaches us. gevent's documented Hub.NOT_ERROR lists the exceptions it does not print."""
    try:
        from gevent.hub import Hub
    except ImportError:
        return
    if not issubclass(KeyboardInterrupt, tuple(Hub.NOT_ERROR)):
        Hub.NOT_ERROR = tuple(Hub.NOT_ERROR) + (KeyboardInterrupt,)


def _run(args) -> int:
    import contextlib

    from ..serve.model_io import check_batches_fit
    from ..serve.server import ModelServer, ServeOptions, import_pytriton

    _check_args(args)
    backend = _backend(args)
    import_pytriton()  # before loading a model for nothing
    _quiet_pytriton(args.verbose)
    _quiet_gevent_interrupts()
    stop = threading.Event()
    started = threading.Event()
    owner = os.getpid()

    def on_signal(signum, _frame):
        # while PyTriton starts, its waits hold the lock its own stop needs: interrupt them
        if os.getpid() != owner:
            # a child PyTriton forked and has not yet exec'd tritonserver (which resets this
            # handler): Ctrl-C reached the whole process group; the parent stops the server
            return
        if not started.is_set():
            if stop.is_set():
                return  # a second Ctrl-C/SIGTERM: the first one's clean-up is running
            stop.set()
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.ExitStack() as stack:
            runners = [stack.enter_context(r) for r in open_runners(args, backend)]
            if args.max_batch:
                check_batches_fit(len(runners), args.max_batch, runners[0].metadata or {},
                                  f"--max-batch {args.max_batch} on {len(runners)} instance(s)",
                                  "lower --max-batch (or --instances)")
            server = ModelServer(runners, ServeOptions(
                host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
                metrics_port=args.metrics_port, model_name=args.model_name,
                max_batch=args.max_batch, max_queue_delay_us=queue_delay_us(args, backend),
                exit_timeout_s=args.exit_timeout, access_token=args.access_token,
                server_log=args.server_log, max_restarts=args.max_restarts,
                queue_timeout_s=args.queue_timeout, max_queue=args.max_queue,
                execute_timeout_s=args.execute_timeout))
            stack.callback(server.stop)
            server.start()
            started.set()
            _announce(server, runners, args)
            while not stop.wait(0.5):
                server.poll()  # restarts a dead tritonserver, or raises ServerDiedError
            print("stopping...", flush=True)
        print("stopped", flush=True)
    finally:
        interrupted = stop.is_set() and not started.is_set()
        for sig, handler in previous.items():
            # interrupted while starting: we are exiting, and a second signal must not cut the
            # exit short (no traceback, the documented 130/143)
            signal.signal(sig, signal.SIG_IGN if interrupted else handler)
    return 0


def _announce(server, runners, args) -> None:
    ep = server.endpoints()
    inp = runners[0].input_spec()
    print(f"serving {args.model_name!r}: {runners[0].describe()}, input {inp.describe()}, "
          f"max batch {server.max_batch}, {len(runners)} instance(s)")
    print(f"  HTTP     {ep['http']}   (readiness of the model: "
          f"{ep['http']}/v2/models/{args.model_name}/ready)")
    print(f"  gRPC     {ep['grpc']}")
    print(f"  metrics  {ep['metrics']}")
    print("ready: Ctrl-C or SIGTERM stops the server", flush=True)
    sys.stdout.flush()


def main(argv=None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
