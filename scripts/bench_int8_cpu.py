#!/usr/bin/env python3
"""Benchmark (not a test): INT8 Q/DQ vs FP32 graph on onnxruntime CPU, for docs/int8.md.

For each calibration method: quantize the FP32 graph (calibration: synthetic street scenes,
seeds 1000+), then label agreement with the FP32 graph on held-out scenes (int8_gate's seeds).
Then the share of labels in which the INT8 graph as exported and the same graph without the
onnxruntime-CPU rewrites (export/qdq_relu.py) differ (with and without onnxruntime's graph
optimizations: without them both compute exactly the same), and their median times, each run
alternately with the FP32 graph (the order reversed every other round).

The timing runs in a fresh process per pair, on the graphs saved to files, as a user times an
exported ONNX: in the process that has just calibrated (gigabytes of calibration tensors
allocated and freed), the same INT8 graph measured 0.59-0.61x instead of 0.55x.

    python scripts/bench_int8_cpu.py FP32.onnx [--calib 16] [--held-out 8] [--runs 10]
        [--threads 2] [--methods minmax entropy percentile] [--json out.json]
        [--conv-output-qdq]
    python scripts/bench_int8_cpu.py FP32.onnx --int8 INT8.onnx [--runs 30]  # time an export

FP32.onnx: a `bisenet-export onnx` graph (its record gives sizes and preprocessing); INT8.onnx:
`bisenet-export onnx --precision int8` of the same checkpoint and sizes.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def _timed(sess, feed):
    start = time.perf_counter()
    sess.run(None, feed)
    return time.perf_counter() - start


def time_pair(paths, feed_path, runs, threads):
    """(In the fresh process) median seconds of each of two ONNX files, run alternately."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    sessions = [ort.InferenceSession(p, options, providers=["CPUExecutionProvider"])
                for p in paths]
    feed = {sessions[0].get_inputs()[0].name: np.load(feed_path)}
    for sess in sessions:
        sess.run(None, feed)
    times = [[], []]
    load = [os.getloadavg()[0]]
    for run in range(runs):
        for k in ((0, 1) if run % 2 == 0 else (1, 0)):
            times[k].append(_timed(sessions[k], feed))
    load.append(os.getloadavg()[0])
    return {"median_s": [statistics.median(t) for t in times], "load_average_1min": load}


def timed_in_fresh_process(paths, feed, runs, threads):
    """time_pair in a new Python process: {"median_ms": [a, b], "ratio": b/a, ...}."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp:
        feed_path = os.path.join(tmp, "feed.npy")
        np.save(feed_path, feed)
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--pair", *paths,
                              "--feed", feed_path, "--runs", str(runs),
                              "--threads", str(threads)],
                             check=True, stdout=subprocess.PIPE, text=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    a, b = got["median_s"]
    return {"median_ms": [round(1000 * a, 1), round(1000 * b, 1)], "ratio": round(b / a, 3),
            "load_average_1min": got["load_average_1min"]}


def main():
    if "--pair" in sys.argv:
        p = argparse.ArgumentParser()
        p.add_argument("--pair", nargs=2)
        p.add_argument("--feed")
        p.add_argument("--runs", type=int)
        p.add_argument("--threads", type=int)
        a = p.parse_args()
        print(json.dumps(time_pair(a.pair, a.feed, a.runs, a.threads)))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("onnx")
    p.add_argument("--int8", default=None, help="time this exported INT8 graph against ONNX "
                   "(no quantization here)")
    p.add_argument("--calib", type=int, default=16)
    p.add_argument("--held-out", type=int, default=8)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--methods", nargs="+", default=["minmax", "entropy", "percentile"])
    p.add_argument("--time-method", default="percentile")
    p.add_argument("--json", default=None)
    p.add_argument("--conv-output-qdq", action="store_true",
                   help="also quantize every Conv output (onnxruntime CPU's preferred placement, "
                        "not TensorRT's; for the comparison in docs/int8.md)")
    args = p.parse_args()

    import numpy as np
    import onnx
    import onnxruntime as ort

    from bisenet_deploy.export.int8_gate import agreement, run_labels, synthetic_held_out
    from bisenet_deploy.export.onnx_metadata import get_record
    from bisenet_deploy.export.qdq_relu import make_cpu_fusable
    from bisenet_deploy.export.quantize import QuantizeSettings, batches, quantize_graph
    from bisenet_deploy.synthetic import synthetic_image

    fp32 = onnx.load(args.onnx)
    record = get_record(fp32)
    width, height = record["export"]["input_size"]
    calib = [synthetic_image(width, height, seed=1000 + i) for i in range(args.calib)]
    held = synthetic_held_out(record, args.held_out)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1

    def session(model, optimize=True):
        opts = options
        if not optimize:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(model.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])

    s32 = session(fp32)
    reference = run_labels(s32, held, record)
    results = {"onnx": args.onnx, "calibration_images": args.calib, "held_out": args.held_out,
               "threads": args.threads, "methods": {}}
    graphs, plain = {}, {}
    if args.int8:  # an export's INT8 graph: agreement and timing only
        got = agreement(reference, run_labels(session(onnx.load(args.int8)), held, record),
                        "synthetic")
        results["int8"] = {"onnx": args.int8, "agreement_percent": round(got.mean, 3),
                           "worst_image_percent": round(got.worst, 3)}
        results["timing"] = {"runs": args.runs, "int8": timed_in_fresh_process(
            [args.onnx, args.int8], next(iter(batches(held[:1], record))), args.runs,
            args.threads)}
        print("int8", results["int8"], "\ntiming", results["timing"], flush=True)
        args.methods = []
    for method in args.methods:
        start = time.perf_counter()
        settings = QuantizeSettings(method=method, cpu_fusable=False)
        if args.conv_output_qdq:
            settings.no_output_qdq = ()
        plain[method] = quantize_graph(fp32, record, calib, settings)
        qdq = onnx.ModelProto()
        qdq.CopyFrom(plain[method])
        make_cpu_fusable(qdq)  # what the export writes
        seconds = time.perf_counter() - start
        graphs[method] = qdq
        got = agreement(reference, run_labels(session(qdq), held, record), "synthetic")
        results["methods"][method] = {"agreement_percent": round(got.mean, 3),
                                      "worst_image_percent": round(got.worst, 3),
                                      "quantize_seconds": round(seconds, 1)}
        print(method, results["methods"][method], flush=True)
    if args.runs and not args.int8:
        method = args.time_method
        differ = {}
        for optimize in (False, True):
            a = run_labels(session(plain[method], optimize), held, record)
            b = run_labels(session(graphs[method], optimize), held, record)
            differ["optimized" if optimize else "as_written"] = round(
                100 * float(np.mean([np.mean(x != y) for x, y in zip(a, b)])), 4)
        feed = next(iter(batches(held[:1], record)))
        timing = {"method": method, "runs": args.runs, "labels_differing_percent": differ}
        with tempfile.TemporaryDirectory(prefix="bench-int8-graphs-") as tmp:
            for name, model in (("int8", graphs[method]),
                                ("int8_without_cpu_rewrites", plain[method])):
                path = os.path.join(tmp, name + ".onnx")
                onnx.save(model, path)
                timing[name] = timed_in_fresh_process([args.onnx, path], feed, args.runs,
                                                      args.threads)
        results["timing"] = timing
        print("timing", timing, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
