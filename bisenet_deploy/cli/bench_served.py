"""`bisenet-bench --server HOST:PORT --concurrency N...`: load a served model, optionally beside
the direct runner of the same model (when --onnx/--engine/--checkpoint is given too).

Kept apart from bench_main so the local benchmark stays as it is; bench_main only registers the
options and hands over when --server is given.
"""

import os
import shlex

from ..errors import InputError
from .options import JSON_STDOUT

SCHEMA = "bisenet-bench-served/1"

SERVED_TEXT = (
    "one request from one client thread: ServedRunner.infer() = host input array (already in "
    "the graph's input format) -> tritonclient serialization -> network -> Triton queue and "
    "dynamic batching -> the server's runner -> response -> host output arrays. 'direct' rows "
    "time runner.infer() of the same model in this process.")


def add_server_args(parser):
    group = parser.add_argument_group("served model (Triton)")
    group.add_argument("--server", metavar="HOST:PORT",
                       help="benchmark the model a Triton server serves (bisenet-serve, or a "
                            "repository from bisenet-export triton), e.g. localhost:8001 (gRPC) "
                            "or http://localhost:8000; with --onnx/--engine/--checkpoint too, "
                            "the direct runner is timed at the same concurrency for comparison")
    group.add_argument("--model-name", default="bisenet", metavar="NAME",
                       help="the served model (default bisenet)")
    group.add_argument("--concurrency", type=int, nargs="+", default=None, metavar="N",
                       help="concurrent clients, one level per value (default 1); --iters "
                            "requests per level")


def _check(args):
    if args.concurrency and not args.server:
        raise InputError("--concurrency applies to --server (a served model)")
    levels = args.concurrency or [1]
    if any(n < 1 for n in levels):
        raise InputError("--concurrency values must be >= 1, got %s" % levels)
    if args.cuda_graph or args.channels_last or args.plot:
        raise InputError("--cuda-graph, --channels-last and --plot apply to local backends only")
    return list(dict.fromkeys(levels))


def run_served(args, make_opener):
    """The --server benchmark; `make_opener(args)` opens the direct runner (bench_main's)."""
    from ..bench import report as rep
    from ..bench.environment import collect_environment, describe
    from ..bench.harness import check_outputs, make_inputs
    from ..bench.served import comparison_notes, overhead_rows, table
    from ..bench.session import default_warmup
    from ..portable.files.fileio import check_writable, write_json_atomic
    from ..runtime.images import read_image
    from ..serve.client import ServedRunner
    from ..serve.model_io import check_batches_fit
    from ..text_table import format_table

    levels = _check(args)
    if not args.no_json and args.json != JSON_STDOUT:
        check_writable(args.json or os.path.join(rep.DEFAULT_FOLDER, "report.json"), "--json")
    direct_name = _direct_backend(args)
    probe = ServedRunner(args.server, args.model_name).activate()
    try:
        record = probe.metadata
        check_batches_fit(max(levels), args.batch, record or {},
                          f"--concurrency {max(levels)} clients x --batch {args.batch}",
                          "use fewer clients (--concurrency) or a smaller --batch")
        image = read_image(args.images[0]) if args.images else None
        inputs, source = make_inputs(record, args.batch, args.buffers, image=image,
                                     input_spec=None)
        check_outputs(probe.infer(inputs[0]), record, args.batch)
        served_desc = probe.describe()
        serving, served_max_batch = probe.serving, probe.max_batch_size
    finally:
        probe.deactivate()
    direct = None
    if direct_name:
        direct = make_opener(args)(direct_name).activate()
    results = []
    try:
        warmup = default_warmup(args.iters) if args.warmup is None else args.warmup
        for i, n in enumerate(levels):
            order = ["served", "direct"] if direct else ["served"]
            if i % 2:  # alternate which goes first, so neither always runs on a warmer machine
                order.reverse()
            for target in order:
                results.append(_level(target, n, args, direct, inputs, warmup))
    finally:
        if direct is not None:
            direct.deactivate()
    env = collect_environment(threads=args.threads)
    print(describe(env))
    print("served: %s; direct: %s" % (served_desc, direct.describe() if direct else "not timed "
                                      "(give --onnx/--engine/--checkpoint to compare)"))
    notes = comparison_notes(serving, served_max_batch, direct_name, args.threads, levels)
    for note in notes:
        print("note: " + note)
    header, rows = table(results)
    print(format_table(rows, header))
    overhead = overhead_rows(results)
    for row in overhead:
        print("concurrency %d: served median %.2f ms vs direct %.2f ms: overhead %.2f ms per "
              "request, throughput x%.2f" % (row["concurrency"], row["served_median_ms"],
                                              row["direct_median_ms"], row["overhead_ms"],
                                              row["throughput_ratio"] or 0.0))
    failed = sum(r["failed"] for r in results)
    for r in results:
        for message in r["errors"]:
            print("%s, %d clients: failed request: %s" % (r["target"], r["concurrency"], message))
    report = {
        "schema": SCHEMA, "created_utc": rep.utc_now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(shlex.quote(str(a)) for a in ["bisenet-bench"] + list(args.argv)),
        "server": args.server, "model_name": args.model_name, "served_runner": served_desc,
        "direct_runner": direct.describe() if direct else None, "serving": serving,
        "notes": notes,
        "config": {"iters": args.iters, "warmup": warmup, "batch": args.batch,
                   "buffers": args.buffers, "concurrency": levels, "threads": args.threads},
        "timed": dict(rep.describe_timed(record, source, args.batch), end_to_end=SERVED_TEXT),
        "environment": env, "levels": results, "overhead": overhead,
    }
    if args.json == JSON_STDOUT and not args.no_json:
        from .common import emit_json

        emit_json(report)
    elif not args.no_json:
        path = args.json or rep.default_report_path(env, ["served"])
        write_json_atomic(path, report)
        print("report: %s" % path)
    return 3 if failed else 0


def _direct_backend(args):
    """The local backend to compare with: --backend's first, else the model file's kind."""
    if args.backend:
        names = [n for group in args.backend for n in group]
        return names[0]
    for name, kind in (("tensorrt", "engine"), ("onnxruntime", "onnx"), ("torch", "checkpoint")):
        if getattr(args, kind):
            return name
    return None


def _level(target, clients, args, direct, inputs, warmup):
    from ..bench.served import run_level
    from ..serve.client import ServedRunner

    if target == "direct":
        runners = [direct] * clients
        opened = []
    else:
        opened = [ServedRunner(args.server, args.model_name).activate() for _ in range(clients)]
        runners = opened
    try:
        result = run_level(runners, inputs, args.iters,
                           warmup=max(1, warmup // clients) if warmup else 0)
    finally:
        for r in opened:
            r.deactivate()
    result["target"] = target
    return result
