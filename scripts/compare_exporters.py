#!/usr/bin/env python3
"""Compare the graphs of PyTorch's two ONNX exporters: node counts and onnxruntime CPU latency.

    python scripts/compare_exporters.py [--checkpoint C] [--target trt10] [--input-size 2048x1024]
        [--network-size 1024x512] [--iters 30] [--warmup 3] [--threads N] [-o report.json]

Exports the same network (a checkpoint, or seeded random weights) through the full
`bisenet-export onnx` pipeline twice, once per exporter (simplified, checked, parity-proven),
then times both graphs in ONE process on onnxruntime CPU with the same session options and the
same input, alternating which graph runs first in every round so that drift of the machine (other
jobs, clocks, caches) hits both equally. Prints a Markdown table and writes a JSON report
(default: benchmarks/<date>-<device>-exporters.json). Both graphs do the same work; their outputs
are compared too.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time

EXPORTERS = ("dynamo", "torchscript")


def _size(text):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 2048x1024, got {text!r}") from None
    return w, h


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: seeded random "
                   "weights of --arch)")
    p.add_argument("--arch", default="bisenetv2-coincheung")
    p.add_argument("--target", default="trt10", choices=("trt8.2", "trt8.6", "trt10", "trt11"))
    p.add_argument("--input-size", type=_size, default=(2048, 1024), metavar="WxH")
    p.add_argument("--network-size", type=_size, default=(1024, 512), metavar="WxH")
    p.add_argument("--iters", type=int, default=30, help="timed rounds (each runs both graphs)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None,
                   help="onnxruntime intra-op threads (default: onnxruntime's own choice)")
    p.add_argument("-o", "--output", default=None, help="JSON report path")
    args = p.parse_args(argv)
    if args.iters < 2 or args.warmup < 0:
        p.error("--iters must be >= 2 and --warmup >= 0")
    return args


def export_both(args, folder):
    """{exporter: ExportResult} of the full pipeline for each exporter, same network."""
    from bisenet_deploy.checkpoint import load_model
    from bisenet_deploy.export.pipeline import ExportOptions, export_onnx

    loaded = load_model(args.checkpoint, arch=None if args.checkpoint else args.arch,
                        dataset=None if args.checkpoint else "cityscapes")
    results = {}
    for exporter in EXPORTERS:
        results[exporter] = export_onnx(ExportOptions(
            output_path=os.path.join(folder, f"{exporter}.onnx"), target=args.target,
            input_size=args.input_size, model_size=args.network_size, exporter=exporter),
            loaded=(loaded.model, loaded.metadata))
    return results


def op_histogram(path):
    import onnx

    model = onnx.load(path)
    return dict(sorted(collections.Counter(n.op_type for n in model.graph.node).items()))


def summarize(ms):
    ordered = sorted(ms)
    mean = statistics.fmean(ms)
    return {"n": len(ms), "min": ordered[0], "median": statistics.median(ms), "mean": mean,
            "p90": ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))],
            "max": ordered[-1], "cv_pct": 100.0 * statistics.pstdev(ms) / mean}


def time_alternating(paths, image, iters, warmup, threads):
    """Latency lists (ms) per exporter, the two graphs taking turns in alternating order."""
    import onnxruntime as ort

    sessions = {}
    for name, path in paths.items():
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        sessions[name] = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    input_name = {n: s.get_inputs()[0].name for n, s in sessions.items()}
    outputs = {n: s.run(None, {input_name[n]: image}) for n, s in sessions.items()}
    for _ in range(warmup):
        for name, session in sessions.items():
            session.run(None, {input_name[name]: image})
    times = {name: [] for name in sessions}
    order = list(sessions)
    for i in range(iters):
        for name in (order if i % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            sessions[name].run(None, {input_name[name]: image})
            times[name].append((time.perf_counter() - start) * 1000.0)
    return times, outputs


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import numpy as np

    from bisenet_deploy.bench.environment import collect_environment, describe, device_slug
    from bisenet_deploy.bench.report import utc_now
    from bisenet_deploy.export.parity import make_parity_input

    with tempfile.TemporaryDirectory() as folder:
        results = export_both(args, folder)
        paths = {name: r.path for name, r in results.items()}
        image = make_parity_input(results["dynamo"].record, 1)
        times, outputs = time_alternating(paths, image, args.iters, args.warmup, args.threads)
        ops = {name: op_histogram(path) for name, path in paths.items()}
    env = collect_environment(threads=args.threads)
    a, b = outputs["dynamo"], outputs["torchscript"]
    report = {
        "created": utc_now().isoformat(), "environment": env,
        "config": {"target": args.target, "input_size": list(args.input_size),
                   "model_size": list(args.network_size), "iters": args.iters,
                   "warmup": args.warmup, "threads": args.threads,
                   "weights": results["dynamo"].record["model"]["weights"],
                   "arch": results["dynamo"].record["model"]["arch"],
                   "order": "alternating (dynamo first in even rounds, torchscript first in odd)"},
        "exporters": {name: {
            "nodes": results[name].num_nodes, "ops": ops[name],
            "opset": results[name].record["export"]["opset"],
            "file_bytes": results[name].file_bytes,
            "export_seconds": round(results[name].total_seconds, 2),
            "parity": results[name].parity.to_dict(),
            "latency_ms": summarize(times[name]), "latency_trace_ms": times[name]}
            for name in EXPORTERS},
        "outputs_agree": {
            "labels_identical_pct": float(np.mean(a[0] == b[0]) * 100.0),
        },
    }
    med = {n: report["exporters"][n]["latency_ms"]["median"] for n in EXPORTERS}
    report["median_ratio_dynamo_over_torchscript"] = med["dynamo"] / med["torchscript"]
    # each round ran both graphs back to back: the ratio within a round cancels slow drift of a
    # shared machine better than the ratio of the two medians
    paired = [d / t for d, t in zip(times["dynamo"], times["torchscript"])]
    report["paired_ratio_dynamo_over_torchscript"] = {
        "median": statistics.median(paired),
        "rounds_dynamo_faster_pct": 100.0 * sum(r < 1.0 for r in paired) / len(paired)}
    path = args.output or os.path.join(
        "benchmarks", f"{utc_now().strftime('%Y%m%d-%H%M%S')}-{device_slug(env)}-exporters.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, sort_keys=True)

    print(describe(env) + f"; load average {env.get('load_average')}")
    print(f"{args.target}, {args.input_size[0]}x{args.input_size[1]} -> "
          f"{args.network_size[0]}x{args.network_size[1]}, {args.iters} alternating rounds after "
          f"{args.warmup} warm-up")
    print("| exporter | opset | nodes | min ms | median ms | mean ms | p90 ms | cv | export s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in EXPORTERS:
        e = report["exporters"][name]
        s = e["latency_ms"]
        print(f"| {name} | {e['opset']} | {e['nodes']} | {s['min']:.1f} | {s['median']:.1f} | "
              f"{s['mean']:.1f} | {s['p90']:.1f} | {s['cv_pct']:.1f}% | {e['export_seconds']} |")
    pr = report["paired_ratio_dynamo_over_torchscript"]
    print(f"dynamo / torchscript: ratio of medians {med['dynamo'] / med['torchscript']:.3f}, "
          f"median of per-round ratios {pr['median']:.3f} (dynamo faster in "
          f"{pr['rounds_dynamo_faster_pct']:.0f}% of rounds)")
    print(f"labels identical between the two graphs: "
          f"{report['outputs_agree']['labels_identical_pct']:.4f}%")
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
