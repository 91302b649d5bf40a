"""`bisenet-bench`: time one or several backends with the same loop and report them side by side.

Every backend is timed end to end (host input -> host output, copies and both in-graph resizes
included) on the same prepared inputs; GPU backends also report the host->device copy, compute
and device->host copy separately. The report (JSON, `benchmarks/` by default) says exactly what
was timed, on which machine, and which figure compares with the paper under which reading.
"""

import argparse
import os
import shlex
import sys

from ..errors import InputError, UserError
from . import bench_served
from .common import add_logging_args, check_report_path, emit_json, run_cli
from .options import (JSON_STDOUT, PLOT_AUTO, add_backend, add_batch, add_engine, add_images,
                      add_json, add_no_progress, add_onnx, add_plot, add_precision)

BACKENDS = ("tensorrt", "onnxruntime", "onnxruntime-cuda", "onnxruntime-trt", "torch",
            "torch-cuda")
#: which model option each backend family reads when its spec names no file
_NEEDS = {"tensorrt": "engine", "onnxruntime": "onnx", "torch": "checkpoint"}

EPILOG = """\
what is timed: one runner.infer() per iteration, host numpy input (already in the graph's input
format) -> host numpy outputs: copies, in-graph normalization and resize to the network size,
network, resize of the logits back to the input size and argmax are included; image decoding and
host-side preparation are not. GPU backends also report the host->device copy, compute and
device->host copy (CUDA events; onnxruntime-cuda/-trt: host clock around synchronous I/O-binding
steps). Several --backend values run one after the other on the same inputs.

the paper (156 FPS, GTX 1080 Ti, FP32) includes the resize and ran 5000 iterations but does not
say whether copies were timed: the end-to-end FPS compares if they were, the compute FPS if not.

models: a backend is BACKEND[:PATH][@PRECISION], as in bisenet-compare and bisenet-eval
(onnxruntime:export/m.onnx, tensorrt:m.engine, torch:m.pth, torch-cuda@fp16); without a PATH,
tensorrt reads --engine, onnxruntime* read --onnx, torch* read --checkpoint (with --onnx too, the
torch model is wrapped exactly as that ONNX was exported; with --onnx of a random-init export
alone, torch uses the same seeded random weights). A backend whose model is not given, or that
cannot run here (no GPU, TensorRT or pycuda), is skipped with one line; the others still run.

Ctrl-C stops the run and still writes the report (and plot) of the calls done, marked
interrupted. On a CPU, 5000 calls of a 2048x1024 model take hours: use --iters 20..200 there.

exit status: 0 when every backend ran or the rest were skipped as unavailable; when a backend
failed, the code of its failure as in every command (3 invalid outputs, 5 an unusable model file,
1 an engine error...; see the README's exit-code table); 4 when no backend ran; 2 for bad options;
130 when interrupted with Ctrl-C, 143 by SIGTERM (the report of the calls done is written).

example:
  bisenet-bench --onnx export/bisenetv2.onnx --checkpoint models/model_final_v2_city.pth \\
      --backend onnxruntime torch --iters 200 --plot
  bisenet-bench --backend onnxruntime:export/a.onnx onnxruntime:export/b.onnx --iters 100
  bisenet-bench --engine engines/city-fp16.engine --backend tensorrt --iters 5000
"""


def backend_spec_arg(text):
    """argparse `type=`: BACKEND[:PATH][@PRECISION] (evaluation.backends), a usage error if not."""
    from ..evaluation.backends import parse_spec

    try:
        return parse_spec(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser():
    p = argparse.ArgumentParser(
        prog="bisenet-bench",
        description="Benchmark BiSeNet V2 backends (TensorRT, onnxruntime, PyTorch) with one "
                    "timing loop; prints a side-by-side table and writes a JSON report.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    models = p.add_argument_group("models")
    add_engine(models, "TensorRT engine (tensorrt backend)")
    add_onnx(models, "exported ONNX (onnxruntime backends)")
    models.add_argument("--checkpoint", metavar="PATH",
                        help="PyTorch checkpoint (torch backends): our .safetensors, a "
                             "CoinCheung/BiSeNet .pth or an mmsegmentation BiSeNetV2 .pth")
    run = p.add_argument_group("run")
    add_backend(run, nargs="+", action="append", metavar="BACKEND[:PATH][@PREC]",
                type=backend_spec_arg,
                help="backend(s) to time, in order: %s, each optionally with its model "
                     "file and precision (onnxruntime:m.onnx, tensorrt:m.engine@fp16). "
                     "Several values or repeated. Default: every backend whose model is "
                     "given" % ", ".join(BACKENDS))
    run.add_argument("--iters", type=int, default=5000,
                     help="timed calls per backend (default 5000, the paper's protocol; on a "
                          "CPU use 20-200)")
    run.add_argument("--warmup", type=int, default=None,
                     help="untimed calls first (default: iters/20, between 3 and 50), in "
                          "every round")
    run.add_argument("--rounds", type=int, default=None, metavar="N",
                     help="split each backend's timed calls into N rounds that time the "
                          "backends in turn, the order reversed every other round (A B, B A, "
                          "...), so a drifting machine favours none; the calls are pooled "
                          "(default 4 with several backends, 1 with one)")
    add_batch(run, "images per call (default 1)")
    add_precision(run, ("fp32", "fp16"), "torch/onnxruntime precision (TensorRT: fixed by the "
                                         "engine; per backend: BACKEND@fp16)",
                  refused={"int8": "INT8 is not a setting of the run: time an INT8 engine "
                                   "(--engine, built from a Q/DQ ONNX) or the Q/DQ ONNX itself "
                                   "(--backend onnxruntime:MODEL-int8.onnx)"})
    run.add_argument("--threads", type=int, default=None,
                     help="CPU threads for torch and onnxruntime (default: the library's)")
    run.add_argument("--buffers", type=int, default=4,
                     help="distinct input buffers rotated through (default 4)")
    add_images(run, "time on this image (one) instead of synthetic 2048x1024 street scenes",
               alias=("--image",))
    run.add_argument("--cuda-graph", action="store_true",
                     help="capture the call in a CUDA graph (tensorrt: needs cuda-python; "
                          "torch-cuda)")
    run.add_argument("--channels-last", action="store_true",
                     help="torch backends: channels_last memory format")
    add_no_progress(run)
    out = p.add_argument_group("report")
    add_json(out, "report path (default benchmarks/<date>-<device>-<backends>.json)")
    out.add_argument("--no-json", action="store_true", help="write no report")
    add_plot(out, "also write a PNG (histogram + trace per backend); without PATH: next to "
                  "the JSON report")
    bench_served.add_server_args(p)
    add_logging_args(p)
    p.set_defaults(func=_run)
    return p


def _requested_backends(args):
    """{label: BackendSpec} in the order asked. A label is the backend's name, or the whole spec
    when the same backend is asked twice (two ONNX files side by side)."""
    if args.backend:
        given = dict((s.text, s) for group in args.backend for s in group)  # once each
        specs = list(given.values())
    else:
        specs = [backend_spec_arg(b) for b, kind in (("tensorrt", "engine"), ("onnxruntime",
                 "onnx"), ("torch", "checkpoint")) if getattr(args, kind)]
        if not specs:
            raise InputError("nothing to benchmark: give --onnx, --engine and/or --checkpoint "
                             "(or --backend BACKEND:PATH, e.g. onnxruntime:export/m.onnx)")
    names = [s.backend for s in specs]
    return dict(((s.backend if names.count(s.backend) == 1 else s.text), s) for s in specs)


def _check_args(args, specs=()):
    files = [("--" + kind, getattr(args, kind)) for kind in ("engine", "onnx", "checkpoint")]
    files += [("--images", path) for path in (args.images or [])]
    if args.images and len(args.images) > 1:
        raise InputError("--images: bisenet-bench times one image, got %d: give one"
                         % len(args.images))
    files += [("--backend " + s.text, s.path) for s in specs]
    for option, path in files:
        if path and os.path.isdir(path):
            raise InputError("%s: %s is a folder: give the file in it" % (option, path))
        if path and not os.path.isfile(path):
            raise InputError("%s: %s: no such file" % (option, path))
    for s in specs:
        if s.precision == "int8" and s.family != "tensorrt":
            raise InputError("--backend %s: int8 exists only for TensorRT engines "
                             "(tensorrt:PATH@int8)" % s.text)
    if args.iters < 1:
        raise InputError("--iters must be >= 1, got %d" % args.iters)
    if args.warmup is not None and args.warmup < 0:
        raise InputError("--warmup must be >= 0, got %d" % args.warmup)
    if args.rounds is not None and args.rounds < 1:
        raise InputError("--rounds must be >= 1, got %d" % args.rounds)
    if args.batch < 1:
        raise InputError("--batch must be >= 1, got %d" % args.batch)
    if args.buffers < 1:
        raise InputError("--buffers must be >= 1, got %d" % args.buffers)
    if args.threads is not None and args.threads < 1:
        raise InputError("--threads must be >= 1, got %d" % args.threads)
    from ..bench.harness import check_iterations_fit

    check_iterations_fit(args.iters, max(1, len(specs)))


def model_file(spec, args):
    """The file a backend spec times: its own PATH, else the option its family reads."""
    return spec.path or getattr(args, _NEEDS[spec.family])


def _open_runner(backend, **kwargs):
    """The runtime factory, imported only when a backend is opened (tests replace this)."""
    from ..runtime.factory import open_runner
    return open_runner(backend, **kwargs)


def _backend_problem(backend):
    """None when `backend` can run on this machine, else why not (runtime factory's check)."""
    from ..runtime.factory import backend_problem
    return backend_problem(backend)


def _opener_by_name(args):
    """opener(name) for a plain backend name (bisenet-bench --server's direct runner)."""
    return lambda name: make_opener(args, {name: backend_spec_arg(name)})(name)


def make_opener(args, specs):
    """opener(label) -> an inactive Runner, via the runtime factory (imported lazily)."""
    from ..bench.session import BackendUnavailable

    def opener(label):
        spec = specs[label]
        name, family, path = spec.backend, spec.family, model_file(spec, args)
        problem = _backend_problem(name)
        if problem:
            raise BackendUnavailable("the %s backend cannot run here: %s" % (name, problem))
        if family == "tensorrt" and not path:
            raise BackendUnavailable("the tensorrt backend needs --engine PATH or tensorrt:PATH "
                                     "(build one with `bisenet-build-engine` on the GPU that "
                                     "will run it)")
        if family == "onnxruntime" and not path:
            raise BackendUnavailable("the %s backend needs --onnx PATH or %s:PATH (make one with "
                                     "`bisenet-export onnx`)" % (name, name))
        if family == "torch" and not (path or args.onnx):
            raise BackendUnavailable("the %s backend needs --checkpoint PATH (the PyTorch "
                                     "weights), or --onnx to rebuild its graph" % name)
        options = {}
        if args.threads is not None and family in ("torch", "onnxruntime"):
            options["threads"] = args.threads
        if args.cuda_graph and name == "tensorrt":
            options["use_cuda_graph"] = True
        if args.cuda_graph and name == "torch-cuda":
            options["cuda_graph"] = True
        if args.channels_last and family == "torch":
            options["channels_last"] = True
        precision = spec.precision or args.precision
        if precision in ("fp32", "fp16"):
            options["precision"] = precision
        runner = _open_runner(name, onnx=path if family == "onnxruntime" else (
            args.onnx if family == "torch" else None),
            engine=path if family == "tensorrt" else None,
            checkpoint=path if family == "torch" else None, require_metadata=True, **options)
        built = (getattr(runner, "sidecar", None) or {}).get("precision")
        if precision == "int8" and built and built not in ("int8", "int8-qdq"):
            raise InputError("%s: the engine was built for %s, not int8" % (spec.text, built))
        return runner
    return opener


def _engine_sidecar(entries, engine):
    """The sidecar the tensorrt runner read, else the one beside the engine, else None."""
    for e in entries:
        if e["backend"].startswith("tensorrt") and e.get("engine_sidecar"):
            return e["engine_sidecar"]
    if not engine:
        return None
    try:
        from ..portable.running.trt_runner import load_sidecar
        return load_sidecar(engine)[1]
    except Exception:  # a missing/odd sidecar must not lose the timings
        return None


def _busy_note(load_before, env):
    """A note when the machine had more runnable work than cores around the run, else None."""
    cores = (env.get("cpu") or {}).get("affinity") or (env.get("cpu") or {}).get("logical_cores")
    loads = [v[0] for v in (load_before, env.get("load_average")) if v]
    if not cores or not loads or max(loads) <= cores:
        return None
    return ("note: load average %.1f on %d cores around this run: other work competed for the "
            "CPU, so these timings are pessimistic" % (max(loads), cores))


def _run(args):
    from ..bench import report as rep
    from ..bench.environment import collect_environment, describe, load_average
    from ..bench.paper import format_readings
    from ..bench.rounds import default_rounds, split_iterations
    from ..bench.session import (backend_of, default_warmup, exit_code_for, interrupted_by,
                                 run_benchmarks, stop_signal, was_interrupted)
    from ..portable.shared.timing_stats import format_summary
    from ..runtime.images import read_image
    from ..portable.files.fileio import check_writable

    if args.server or args.concurrency:  # the served model, and optionally one direct runner
        if args.rounds is not None:
            raise InputError("--rounds alternates backends timed directly (--backend); it does "
                             "not apply to --server/--concurrency")
        _check_args(args)
        return bench_served.run_served(args, _opener_by_name)
    specs = _requested_backends(args)
    _check_args(args, specs.values())
    names = set(s.backend for s in specs.values())
    to_stdout = args.json == JSON_STDOUT
    json_path = None if to_stdout else args.json
    if not args.no_json and not to_stdout:  # refuse an unwritable path now, not after 5000 calls
        check_writable(json_path or os.path.join(rep.DEFAULT_FOLDER, "report.json"), "--json")
        check_report_path(json_path, "--json")  # an earlier report may go, a user's file not
    if args.plot and args.plot != PLOT_AUTO:
        check_report_path(args.plot, "--plot", kind="png")
    elif args.plot and json_path and not args.no_json:  # the plot goes next to the report
        check_report_path(os.path.splitext(json_path)[0] + ".png", "--plot", kind="png")
    elif args.plot and (args.no_json or to_stdout):
        check_report_path(os.path.join(rep.DEFAULT_FOLDER, "bench.png"), "--plot", kind="png")
    if args.cuda_graph and not {"tensorrt", "torch-cuda"} & names:
        print("note: --cuda-graph applies to tensorrt and torch-cuda only; ignored",
              file=sys.stderr)
    if args.channels_last and not any(b.startswith("torch") for b in names):
        print("note: --channels-last applies to the torch backends only; ignored",
              file=sys.stderr)
    image = read_image(args.images[0]) if args.images else None
    load_before = load_average()
    warmup = default_warmup(args.iters) if args.warmup is None else args.warmup
    rounds = default_rounds(len(specs)) if args.rounds is None else args.rounds
    rounds = len(split_iterations(args.iters, rounds))  # never a round of no calls
    entries, record, source = run_benchmarks(
        list(specs), make_opener(args, specs), iters=args.iters, warmup=warmup, rounds=rounds,
        batch=args.batch, buffers=args.buffers, image=image,
        progress=False if args.no_progress else None, debug=args.debug)
    code = exit_code_for(entries)
    if record is None:  # nothing ran; each backend's reason was logged on one line
        if was_interrupted(entries):
            print("%s before any timed call: no report written"
                  % interrupted_by(stop_signal(entries)), file=sys.stderr)
        return code

    files = {}  # the model file each backend timed, also in its report entry
    for e in entries:
        spec = specs[e["backend"]]
        e["model_file"] = files[e["backend"]] = model_file(spec, args)
        if spec.family == "torch" and e["status"] == "ok" and not model_file(spec, args) \
                and record.get("model", {}).get("weights") != "random-init":
            note = ("no --checkpoint: %s ran seeded random weights in the ONNX's graph; its "
                    "timing compares, its outputs do not" % e["backend"])
            e["warnings"].append(note)
            print("note: " + note, file=sys.stderr)
    env = collect_environment(threads=args.threads, extra={"load_average_before": load_before})
    timed = rep.describe_timed(record, source, args.batch)
    model_meta = record.get("model", {})

    def first_file(family):
        given = getattr(args, _NEEDS[family])
        return given or next((files[label] for label, spec in specs.items()
                              if spec.family == family and files.get(label)), None)

    engine = first_file("tensorrt")
    report = rep.build_report(
        command=" ".join(shlex.quote(str(a)) for a in ["bisenet-bench"] + list(args.argv)),
        config={"iters": args.iters, "warmup": warmup, "rounds": rounds,
                "batch": args.batch, "buffers": args.buffers, "precision": args.precision,
                "threads": args.threads, "cuda_graph": bool(args.cuda_graph),
                "channels_last": bool(args.channels_last)},
        timed=timed,
        model={"onnx": first_file("onnxruntime"), "engine": engine,
               "checkpoint": first_file("torch"),
               "arch": model_meta.get("arch"), "num_classes": model_meta.get("num_classes"),
               "weights": model_meta.get("weights"),
               "engine_sidecar": (_engine_sidecar(entries, engine) if "tensorrt" in names
                                  else None)},
        environment=env, backends=entries)

    print(describe(env))
    print(rep.timed_sentence(timed))
    for e in entries:
        if e["status"] == "ok":
            print(format_summary(e["latency_ms"], "%s [%s] end-to-end" % (e["backend"],
                                                                          e["runner"])))
            if e.get("phases_ms"):
                print("  median h2d %.3f ms, compute %.3f ms, d2h %.3f ms (%s)" % tuple(
                    [e["phases_ms"][k]["median_ms"] for k in ("h2d", "compute", "d2h")]
                    + [e.get("phase_clock")]))
    print()
    print(rep.format_table(report))
    print(format_readings(report["paper"]))
    busy = _busy_note(load_before, env)
    if busy:
        print(busy)
    if model_meta.get("weights") == "random-init":
        print("note: random-init weights (speed is representative, labels are not)")
    if report["interrupted"]:
        print("note: %s: the report covers the calls done before it"
              % interrupted_by(stop_signal(entries)))
    if to_stdout and not args.no_json:
        emit_json(report)
    if not args.no_json and not to_stdout:
        ran = [backend_of(e["backend"]) for e in entries if e["status"] != "skipped"]
        path = args.json or rep.default_report_path(env, ran)  # named by what was timed
        rep.write_report(path, report)
        print("report: %s" % path)
        if args.plot:
            from ..bench.plot import plot_report
            plot_path = os.path.splitext(path)[0] + ".png" if args.plot == PLOT_AUTO else args.plot
            if plot_report(report, plot_path):
                print("plot: %s" % plot_path)
    elif args.plot:
        from ..bench.plot import plot_report
        plot_path = args.plot if args.plot != PLOT_AUTO else os.path.join(
            rep.DEFAULT_FOLDER, "bench.png")
        if plot_report(report, plot_path):
            print("plot: %s" % plot_path)
    return code  # 130 (Ctrl-C) or 143 (SIGTERM) when interrupted


def main(argv=None):
    return run_cli(build_parser(), argv)
