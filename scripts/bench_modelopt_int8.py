#!/usr/bin/env python3
"""Benchmark (not a test): NVIDIA Model Optimizer's INT8 ONNX vs this export's, for docs/int8.md.

Quantizes FP32.onnx with `modelopt.onnx.quantization.quantize` (int8, FP32 elsewhere, onnxruntime
CPU calibration) on the same synthetic calibration scenes as scripts/bench_int8_cpu.py (seeds
1000+, fed through prepare_input), and this export's quantizer on the same scenes; then per graph:
label agreement with FP32 on int8_gate's held-out scenes, the TensorRT(-RTX) parser's verdict and
the median onnxruntime CPU time, all graphs run alternately in one process. "+cpu rewrites" rows
are a graph with export/qdq_relu.py applied.

Model Optimizer is not a dependency (its pins conflict with ours); install it aside, without
touching the venv's numpy/onnx/onnxruntime, and put that folder on the path:

    pip install --target /tmp/mo --no-deps nvidia-modelopt==0.47.0 onnx-graphsurgeon polygraphy \\
        onnxslim onnxconverter-common lief cppimport pulp omegaconf nvidia-ml-py \\
        antlr4-python3-runtime
    PYTHONPATH=$PWD:/tmp/mo python scripts/bench_modelopt_int8.py FP32.onnx \\
        [--methods entropy max] [--calib 8] [--held-out 4] [--runs 12] [--threads 2]
"""

import argparse
import os
import statistics
import tempfile
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("onnx")
    p.add_argument("--methods", nargs="+", default=["entropy", "max"])
    p.add_argument("--calib", type=int, default=8)
    p.add_argument("--held-out", type=int, default=4)
    p.add_argument("--runs", type=int, default=12)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import numpy as np
    import onnx
    import onnxruntime as ort

    import modelopt.onnx.trt_utils as trt_utils
    # a stub-only `tensorrt` namespace package (tensorrt-stubs) is not TensorRT's Python API
    trt_utils.TRT_PYTHON_AVAILABLE = False
    from modelopt.onnx.quantization import quantize as modelopt_quantize

    from bisenet_deploy.export.check import parser_check
    from bisenet_deploy.export.int8_gate import run_labels, synthetic_held_out
    from bisenet_deploy.export.onnx_metadata import get_record
    from bisenet_deploy.export.qdq_relu import make_cpu_fusable
    from bisenet_deploy.export.quantize import QuantizeSettings, batches, quantize_graph
    from bisenet_deploy.synthetic import synthetic_image

    fp32 = onnx.load(args.onnx)
    record = get_record(fp32)
    width, height = record["export"]["input_size"]
    calib = [synthetic_image(width, height, seed=1000 + i) for i in range(args.calib)]
    name = record["export"]["input_name"]
    graphs = {"fp32": fp32, "export": quantize_graph(fp32, record, calib, QuantizeSettings())}
    data = {name: np.concatenate(list(batches(calib, record)))}
    with tempfile.TemporaryDirectory(prefix="modelopt-") as tmp:
        for method in args.methods:
            out = os.path.join(tmp, f"{method}.onnx")
            start = time.perf_counter()
            modelopt_quantize(args.onnx, quantize_mode="int8", calibration_data=data,
                              calibration_method=method, calibration_eps=["cpu"],
                              high_precision_dtype="fp32", output_path=out, log_level="WARNING")
            print(f"modelopt {method}: quantized in {time.perf_counter() - start:.1f} s")
            graphs[f"modelopt {method}"] = onnx.load(out)
            fused = onnx.ModelProto()
            fused.CopyFrom(graphs[f"modelopt {method}"])
            make_cpu_fusable(fused)
            graphs[f"modelopt {method} +cpu rewrites"] = fused

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    sessions = {k: ort.InferenceSession(m.SerializeToString(), options,
                                        providers=["CPUExecutionProvider"])
                for k, m in graphs.items()}
    held = synthetic_held_out(record, args.held_out)
    reference = run_labels(sessions["fp32"], held, record)
    for key, sess in sessions.items():
        verdict = parser_check(graphs[key])
        parsed = "no TensorRT" if verdict is None else \
            f"{verdict.label} {'PASS' if verdict.ok else 'FAIL'}"
        share = [100 * float(np.mean(a == b))
                 for a, b in zip(reference, run_labels(sess, held, record))]
        print(f"{key:32s} agreement {np.mean(share):.3f}% (worst {min(share):.3f}%), "
              f"parser: {parsed}")
    feed = {name: next(iter(batches(held[:1], record)))}
    for sess in sessions.values():
        sess.run(None, feed)
    times = {k: [] for k in sessions}
    load = os.getloadavg()[0]
    for _ in range(args.runs):
        for key, sess in sessions.items():
            start = time.perf_counter()
            sess.run(None, feed)
            times[key].append(time.perf_counter() - start)
    base = statistics.median(times["fp32"])
    print(f"1-min load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
    for key, t in times.items():
        print(f"{key:32s} median {1000 * statistics.median(t):7.1f} ms, "
              f"{statistics.median(t) / base:.3f}x FP32")


if __name__ == "__main__":
    main()
