#!/usr/bin/env python3
"""Benchmark (not a test): INT8 Q/DQ vs FP32 graph on onnxruntime CPU, for docs/int8.md.

For each calibration method: quantize the FP32 graph (calibration: synthetic street scenes,
seeds 1000+), then label agreement with the FP32 graph on held-out scenes (int8_gate's seeds);
then the median time of the FP32 graph, the chosen INT8 graph as exported and the same INT8 graph
without the onnxruntime-CPU rewrites (export/qdq_relu.py), run alternately in one process, and
the share of labels in which the two INT8 graphs differ (with and without onnxruntime's graph
optimizations: without them both compute exactly the same).

    python scripts/bench_int8_cpu.py FP32.onnx [--calib 16] [--held-out 8] [--runs 10]
        [--threads 2] [--methods minmax entropy percentile] [--json out.json]
        [--conv-output-qdq]

FP32.onnx: a `bisenet-export onnx` graph (its record gives sizes and preprocessing).
"""

import argparse
import json
import statistics
import time


def _timed(sess, feed):
    start = time.perf_counter()
    sess.run(None, feed)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("onnx")
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

    import os

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
    if args.runs:
        method = args.time_method
        differ = {}
        for optimize in (False, True):
            a = run_labels(session(plain[method], optimize), held, record)
            b = run_labels(session(graphs[method], optimize), held, record)
            differ["optimized" if optimize else "as_written"] = round(
                100 * float(np.mean([np.mean(x != y) for x, y in zip(a, b)])), 4)
        sessions = {"fp32": s32, "int8": session(graphs[method]),
                    "int8_without_cpu_rewrites": session(plain[method])}
        feed = {record["export"]["input_name"]: next(iter(batches(held[:1], record)))}
        for sess in sessions.values():
            sess.run(None, feed)
        times = {name: [] for name in sessions}
        load = [os.getloadavg()[0]]
        for _ in range(args.runs):
            for name, sess in sessions.items():
                times[name].append(_timed(sess, feed))
        load.append(os.getloadavg()[0])
        median = {name: statistics.median(t) for name, t in times.items()}
        results["timing"] = {
            "method": method, "runs": args.runs, "load_average_1min": load,
            "median_ms": {name: round(1000 * m, 1) for name, m in median.items()},
            "ratio_to_fp32": {name: round(m / median["fp32"], 3) for name, m in median.items()},
            "labels_differing_percent": differ}
        print("timing", results["timing"], flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
