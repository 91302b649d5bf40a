"""`jetson_run.py bench` of a bisenet-deploy Jetson bundle: time the engine, report like bisenet-bench.

The runner is opened by jetson_run.py; here its calls are timed (host clock end to end, CUDA
events per phase), summarized with the toolkit's statistics (bisenet_trt.shared.timing_stats), printed
and written as a JSON report with the environment (L4T release, nvpmodel mode) beside the numbers.

Runs on the device's Python 3.6 with numpy 1.19; imports only the standard library, numpy and the
bundle's own modules.
"""

import datetime
import json
import logging
import os
import platform
import sys
import time

from bisenet_trt.files import fileio
from bisenet_trt.shared.errors import EngineError, InputError
from jetson_env import numpy, power_state, read_tegra_release

log = logging.getLogger("bisenet_jetson")

PHASES = ("h2d", "compute", "d2h")
WHAT_IS_TIMED = ("runner.infer: host float32 input -> H2D -> engine (in-graph resize, network, "
                 "resize of the logits back to the input size, argmax) -> D2H labels; host "
                 "preprocessing excluded")


def default_warmup(iters):
    """bisenet-bench's default: 5% of the timed calls, at least 3, at most 50."""
    return min(50, max(3, int(iters) // 20))


def settings(args):
    """(timed iterations, warm-up calls) of the command line, refused when out of range."""
    iters = int(args.iters)
    warmup = default_warmup(iters) if args.warmup is None else int(args.warmup)
    if iters < 1 or warmup < 0 or args.batch < 1:
        raise InputError("--iters and --batch must be >= 1 and --warmup >= 0")
    return iters, warmup


def input_batches(image, record, batch, buffers):
    """Distinct input buffers, rotated, so caches do not flatter the result (the sample and its
    mirror images: BiSeNet's work does not depend on the pixel values)."""
    np = numpy()
    from bisenet_trt.running.preprocess import prepare_input
    variants = [image, image[:, ::-1], image[::-1, :], image[::-1, ::-1]]
    variants = [variants[i % 4] for i in range(max(1, buffers))]
    return [prepare_input([np.ascontiguousarray(v)] * batch, record) for v in variants]


def time_runner(runner, batches, iters, warmup, quiet=False):
    """Warm up, check the outputs are finite, then time `iters` calls. Returns a dict of the
    per-call end-to-end and device milliseconds, the CUDA-event phases and the runner's name."""
    np = numpy()
    for i in range(warmup):
        runner.infer(batches[i % len(batches)])
    check = runner.infer(batches[0])
    for name, value in check.items():
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise EngineError("output %r has NaN/Inf values after warm-up: the engine is "
                              "broken (FP16 overflow?): rebuild with --fp32" % name)
    latencies, device = [], []
    phases = dict((k, []) for k in PHASES)  # CUDA events per part
    step = max(1, iters // 20)
    for i in range(iters):
        batch = batches[i % len(batches)]
        t0 = time.perf_counter()
        runner.infer(batch)
        latencies.append((time.perf_counter() - t0) * 1000.0)
        dev = runner.last_device_time_ms()
        if dev is not None:
            device.append(dev)
        for name, ms in (runner.last_phase_times_ms() or {}).items():
            phases[name].append(ms)
        if not quiet and (i + 1) % step == 0:
            sys.stderr.write("\r  %d/%d" % (i + 1, iters))
            sys.stderr.flush()
    if not quiet:
        sys.stderr.write("\n")
    return {"latencies": latencies, "device": device, "phases": phases,
            "runner": runner.describe(), "buffers": len(batches)}


def report(timings, record, engine_path, args, iters, warmup, bundle_dir):
    """Print the summary and write the JSON report (default: benchmarks/ in the bundle)."""
    from bisenet_trt.shared import timing_stats
    np = numpy()
    batch = args.batch
    e2e = timing_stats.summarize(timings["latencies"], batch=batch)
    device = timings["device"]
    dev_stats = timing_stats.summarize(device, batch=batch) if device else None
    phases = timings["phases"]
    phase_stats = dict((k, timing_stats.summarize(v, batch=batch)) for k, v in
                       phases.items()) if all(len(v) == iters for v in phases.values()) else None
    export = record["export"]
    print("bisenet-deploy Jetson bench: %s" % os.path.basename(engine_path))
    print("runner: %s" % timings["runner"])
    print("input %dx%d -> network %dx%d, batch %d, %d iterations after %d warm-up"
          % (export["input_size"][0], export["input_size"][1], export["model_size"][0],
             export["model_size"][1], batch, iters, warmup))
    print(timing_stats.format_summary(e2e, "end-to-end (host input -> host labels)"))
    if dev_stats:
        print(timing_stats.format_summary(dev_stats, "device compute (CUDA events)"))
    if phase_stats:
        print("copies and compute (CUDA events), median: h2d %.3f ms, compute %.3f ms, d2h %.3f "
              "ms" % tuple(phase_stats[k]["median_ms"] for k in PHASES))
    for summary, what in ((e2e, "end-to-end latency"), (dev_stats, "device time")):
        warning = timing_stats.stability_warning(summary, what) if summary else None
        if warning:
            log.warning(warning)
    data = {
        "schema": 1,
        "kind": "bisenet-jetson-bench",
        "created_utc": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "engine": os.path.relpath(engine_path, bundle_dir),
        "runner": timings["runner"],
        "zero_copy": bool(args.zero_copy),
        "cuda_graph": bool(args.cuda_graph),
        "iterations": iters,
        "warmup": warmup,
        "buffers": timings["buffers"],
        "batch": batch,
        "what_is_timed": WHAT_IS_TIMED,
        "end_to_end": e2e,
        "device_compute": dev_stats,
        "phases": phase_stats,
        "environment": {
            "machine": platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "l4t": ".".join(str(v) for v in (read_tegra_release() or ())) or None,
            "power": power_state(),
        },
        "record": record,
    }
    from bisenet_trt.trt.engine_paths import sidecar_path
    if os.path.isfile(sidecar_path(engine_path)):
        with open(sidecar_path(engine_path), "r") as f:
            data["sidecar"] = json.load(f)
    out = args.json or os.path.join(
        bundle_dir, "benchmarks", "%s-%s.json" % (
            os.path.splitext(os.path.basename(engine_path))[0],
            datetime.datetime.utcnow().strftime("%Y%m%d-%H%M%S")))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fileio.write_json_atomic(out, data)
    print("report: %s" % out)
    return out
