#!/usr/bin/env python3
"""Benchmark (not a test): INT8 Q/DQ vs FP32 graph on onnxruntime CPU, for docs/int8.md.

For each calibration method: quantize the FP32 graph (calibration: synthetic street scenes,
seeds 1000+), then label agreement with the FP32 graph on held-out scenes (int8_gate's seeds);
then the median time of the FP32 and the chosen INT8 graph, run alternately in one process.

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

    import onnx
    import onnxruntime as ort

    from bisenet_deploy.export.int8_gate import agreement, run_labels, synthetic_held_out
    from bisenet_deploy.export.onnx_metadata import get_record
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

    def session(model):
        return ort.InferenceSession(model.SerializeToString(), options,
                                    providers=["CPUExecutionProvider"])

    s32 = session(fp32)
    reference = run_labels(s32, held, record)
    results = {"onnx": args.onnx, "calibration_images": args.calib, "held_out": args.held_out,
               "threads": args.threads, "methods": {}}
    graphs = {}
    for method in args.methods:
        start = time.perf_counter()
        settings = QuantizeSettings(method=method)
        if args.conv_output_qdq:
            settings.no_output_qdq = ()
        qdq = quantize_graph(fp32, record, calib, settings)
        seconds = time.perf_counter() - start
        graphs[method] = qdq
        got = agreement(reference, run_labels(session(qdq), held, record), "synthetic")
        results["methods"][method] = {"agreement_percent": round(got.mean, 3),
                                      "worst_image_percent": round(got.worst, 3),
                                      "quantize_seconds": round(seconds, 1)}
        print(method, results["methods"][method], flush=True)
    if args.runs:
        s8 = session(graphs[args.time_method])
        feed = {record["export"]["input_name"]: next(iter(batches(held[:1], record)))}
        for sess in (s32, s8):
            sess.run(None, feed)
        t32, t8 = [], []
        for _ in range(args.runs):
            t32.append(_timed(s32, feed))
            t8.append(_timed(s8, feed))
        results["timing"] = {
            "method": args.time_method, "runs": args.runs,
            "fp32_median_ms": round(1000 * statistics.median(t32), 1),
            "int8_median_ms": round(1000 * statistics.median(t8), 1),
            "ratio": round(statistics.median(t8) / statistics.median(t32), 3)}
        print("timing", results["timing"], flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
