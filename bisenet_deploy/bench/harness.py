"""The one timing loop every backend goes through: TensorRT, onnxruntime and PyTorch timed alike.

What one timed call is: ``runner.infer(batch)`` with a host numpy array already prepared in the
graph's input format (size, dtype, channel order as the export metadata says), returning host
numpy arrays. A ``perf_counter`` around that call is the end-to-end latency: host -> device copy,
in-graph normalization and resize to the network size, the network, the argmax (labels output),
device -> host copy. Image decoding and host-side preparation (``prepare_input``) happen once,
before timing, and are not included. Where the runner splits the call into host -> device copy,
compute and device -> host copy (CUDA events, ``runner.last_phase_times_ms()``), each phase is
recorded separately, and so is the device compute time (``runner.last_device_time_ms()``).

Ctrl-C during the timed calls stops the loop and keeps the calls done: the result says
``interrupted`` and how many of the requested calls ran, so a long run is never thrown away.

Hygiene: ``warmup`` untimed calls first (lazy initialisation, autotuning, clocks ramping up), then
one untimed call whose outputs are checked for NaN/garbage (a fast engine that returns garbage is
not a result), then ``iters`` timed calls rotating among a few different input buffers so that
caches cannot flatter the result by seeing the same bytes every time. Python's garbage collector
is run once before and paused during the timed calls (as `timeit` does), so a collection does not
land in one backend's numbers and not another's.
"""

import gc
import logging
import sys
import time

import numpy as np

from ..errors import InputError, UserError
from ..portable.shared.interrupts import signal_name
from ..portable.shared.memory import check_fits
from ..portable.shared.phase_timing import PHASES
from ..portable.running.preprocess import prepare_input
from ..portable.shared.timing_stats import stability_warning, summarize

log = logging.getLogger(__name__)

#: runs at least this long (iterations) show a progress bar on a terminal
PROGRESS_MIN_ITERS = 200

#: default number of distinct input buffers the timed loop rotates through
DEFAULT_BUFFERS = 4

#: the synthetic scene's size: the paper's Cityscapes frame
SYNTHETIC_SIZE = (2048, 1024)

#: a run estimated longer than this (seconds) says so, and how to shorten it
ESTIMATE_NOTE_S = 60.0


class BenchmarkError(UserError):
    """A backend produced invalid outputs (NaN, labels out of range, wrong shape)."""

    exit_code = 3


def _record_sizes(record):
    export = (record or {}).get("export") or {}
    return export.get("input_size"), export.get("model_size")


def check_fixed_batch(input_spec, batch):
    """A model exported with a fixed batch refuses another --batch, saying which one it takes."""
    if input_spec is None:
        return
    want = input_spec.shape
    if len(want) == 4 and want[0] >= 0 and want[0] != batch:
        raise InputError("this model takes batch %d exactly (fixed batch in the export); use "
                         "--batch %d or export with a dynamic batch" % (want[0], want[0]))


def make_inputs(record, batch=1, num_buffers=DEFAULT_BUFFERS, image=None, input_spec=None,
                seed=0):
    """Prepared graph inputs to rotate through: a list of `num_buffers` arrays N x 3 x H x W.

    Without `image` every buffer holds `batch` different synthetic street scenes (seeds
    seed, seed+1, ...) generated at the graph's input size (2048x1024 for the paper's export);
    with `image` (an H x W x 3 uint8 RGB array) every buffer holds that image, each buffer a
    distinct copy so the runner still reads different memory. Returns (buffers, description).
    """
    if record is None or "export" not in record:
        raise InputError("the model has no bisenet_deploy metadata record (input size, dtype, "
                         "normalization): re-export it with `bisenet-export onnx`")
    batch = int(batch)
    num_buffers = max(1, int(num_buffers))
    if batch < 1:
        raise InputError("--batch must be >= 1, got %d" % batch)
    check_fixed_batch(input_spec, batch)
    width, height = (int(v) for v in record["export"]["input_size"])
    itemsize = np.dtype(record["export"].get("input_dtype") or "float32").itemsize
    check_fits(num_buffers * batch * 3 * width * height * itemsize,
               "--buffers %d x --batch %d input images of %dx%d" % (num_buffers, batch, width,
                                                                      height),
               "lower --buffers (the default 4 already defeats the caches) or --batch")
    buffers = []
    if image is None:
        from ..synthetic import synthetic_image
        seeds = [seed + i for i in range(batch * num_buffers)]
        for b in range(num_buffers):
            images = [synthetic_image(width, height, s) for s in seeds[b * batch:(b + 1) * batch]]
            buffers.append(prepare_input(images, record))
        source = {"kind": "synthetic", "size": [width, height], "seeds": seeds}
    else:
        prepared = prepare_input([image] * batch, record)
        buffers = [prepared.copy() for _ in range(num_buffers)]
        source = {"kind": "image", "original_size": [int(image.shape[1]), int(image.shape[0])],
                  "resized_on_host_to": ([width, height] if (image.shape[1], image.shape[0])
                                         != (width, height) else None)}
    source["buffers"] = num_buffers
    source["batch"] = batch
    return buffers, source


#: memory one timed call keeps until the report is written: its latency, device and three phase
#: samples as Python floats in lists, their rounded copies for the report and its JSON text
BYTES_PER_TIMED_CALL = 400


def check_iterations_fit(iters, backends):
    """Refuse, before any work, more timed calls than the memory can keep the samples of."""
    check_fits(int(iters) * max(1, int(backends)) * BYTES_PER_TIMED_CALL,
               "--iters %d timed calls on %d backend(s) (every call's samples are kept for the "
               "report)" % (iters, backends), "lower --iters (5000 is the paper's protocol)")


def check_outputs(outputs, record=None, batch=None):
    """Refuse NaN/inf logits, labels outside [0, num_classes) and outputs of the wrong batch.

    Returns a dict describing what was checked (for the report); raises BenchmarkError otherwise.
    """
    if not isinstance(outputs, dict) or not outputs:
        raise BenchmarkError("the runner returned no outputs")
    num_classes = None
    if record and "model" in record:
        num_classes = int(record["model"]["num_classes"])
    checked = {}
    for name, value in outputs.items():
        arr = np.asarray(value)
        if batch is not None and (arr.ndim == 0 or arr.shape[0] != batch):
            raise BenchmarkError("output %r has shape %s, expected batch %d first"
                                 % (name, arr.shape, batch))
        info = {"shape": [int(d) for d in arr.shape], "dtype": arr.dtype.name}
        if arr.dtype.kind == "f":
            finite = np.isfinite(arr)
            if not finite.all():
                raise BenchmarkError(
                    "output %r holds %d NaN/inf values of %d: the backend computes garbage "
                    "(fp16 overflow, broken engine or a wrong input format)"
                    % (name, int(arr.size - finite.sum()), arr.size))
            info["min"] = float(arr.min())
            info["max"] = float(arr.max())
            if name == "logits" and num_classes is not None and arr.ndim == 4 \
                    and arr.shape[1] != num_classes:
                raise BenchmarkError("logits have %d channels, the model has %d classes"
                                     % (arr.shape[1], num_classes))
        elif arr.dtype.kind in "iu":
            lo, hi = int(arr.min()), int(arr.max())
            info["min"], info["max"] = lo, hi
            if name == "labels" and num_classes is not None and (lo < 0 or hi >= num_classes):
                raise BenchmarkError(
                    "labels range over %d..%d, outside the model's %d classes [0, %d): the "
                    "backend computes garbage" % (lo, hi, num_classes, num_classes))
        else:
            raise BenchmarkError("output %r has unexpected dtype %s" % (name, arr.dtype.name))
        checked[name] = info
    return checked


def _progress(total, enabled, desc):
    """A tqdm bar (stderr) or None. `enabled` None: only for long runs on a terminal."""
    if enabled is False or total <= 0:
        return None
    if enabled is None and (total < PROGRESS_MIN_ITERS or not sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=desc, unit="it", leave=False, file=sys.stderr)


def estimate_line(label, estimate_s, iters, on_cpu):
    """The one line announcing a long run: how long, and (on a CPU) how to make it shorter."""
    per_call_ms = 1000.0 * estimate_s / iters
    line = "%s: about %.0f min for %d timed calls (%.0f ms each)" % (
        label, estimate_s / 60.0, iters, per_call_ms)
    if on_cpu:
        shorter = max(20, int(ESTIMATE_NOTE_S * 1000.0 / max(per_call_ms, 1e-3)) // 10 * 10)
        if shorter >= iters:  # already at (or below) the count we would suggest
            return ("%s; fewer calls would say little, press Ctrl-C to stop and keep the calls "
                    "done" % line)
        return ("%s; on a CPU that is long: shorten it with --iters %d (about a minute; 5000 is "
                "the paper's GPU protocol), or press Ctrl-C to stop and keep the calls done"
                % (line, shorter))
    return "%s; --iters sets the count (5000 is the paper's protocol); Ctrl-C stops and keeps " \
           "the calls done" % line


def time_runner(runner, inputs, iters, warmup=10, record=None, clock=time.perf_counter,
                progress=None, label=None, pause_gc=True, on_cpu=False, log_warnings=True):
    """Time `iters` calls of an active `runner` rotating through `inputs`; returns a result dict.

    `clock` returns seconds (injectable for tests). The dict holds ``latency_ms`` and, when the
    runner reports them, ``device_ms`` and ``phases_ms`` (timing_stats summaries), the raw
    per-call samples, the output check and the wall time of the timed loop. Ctrl-C during the
    timed calls ends the loop early (``interrupted``); before the first timed call it propagates.
    `on_cpu`: a CPU backend, whose long-run line suggests a shorter --iters. `log_warnings`:
    log the result's warnings (off for a round whose pooled result logs them, bench.rounds).
    """
    iters, warmup = int(iters), int(warmup)
    if iters < 1:
        raise InputError("--iters must be >= 1, got %d" % iters)
    if warmup < 0:
        raise InputError("--warmup must be >= 0, got %d" % warmup)
    if not inputs:
        raise InputError("no input buffers to time")
    batch = int(inputs[0].shape[0])
    label = label or getattr(runner, "backend", "runner")

    log.debug("%s: %d warm-up calls", label, warmup)
    for i in range(warmup):
        runner.infer(inputs[i % len(inputs)])
    t0 = clock()
    checked = check_outputs(runner.infer(inputs[0]), record, batch)
    estimate_s = (clock() - t0) * iters
    if estimate_s > ESTIMATE_NOTE_S:
        log.info("%s", estimate_line(label, estimate_s, iters, on_cpu))

    latencies = []
    device = []
    phases = dict((name, []) for name in PHASES)
    interrupted = False
    bar = _progress(iters, progress, label)
    n = len(inputs)
    gc_was_enabled = gc.isenabled()
    if pause_gc:
        gc.collect()
        gc.disable()
    loop_start = clock()
    try:
        for i in range(iters):
            x = inputs[i % n]
            t0 = clock()
            runner.infer(x)
            t1 = clock()
            dev = runner.last_device_time_ms()
            split = runner.last_phase_times_ms()
            latencies.append((t1 - t0) * 1000.0)  # a call counts once all its figures are read
            if dev is not None:
                device.append(float(dev))
            if split is not None:
                for name in PHASES:
                    phases[name].append(float(split[name]))
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (interrupts.Terminated)
        if not latencies:
            raise
        interrupted = signal_name(exc)
    finally:
        loop_s = clock() - loop_start
        if pause_gc and gc_was_enabled:
            gc.enable()
        if bar is not None:
            bar.close()

    done = len(latencies)
    if interrupted:  # Ctrl-C may land between the appends of one call: keep whole calls only
        done = min([done] + [len(v) for v in [device] + list(phases.values()) if v])
        for samples in [latencies, device] + list(phases.values()):
            del samples[done:]
    result = timing_result(latencies, device, phases, iters=iters, warmup=warmup, batch=batch,
                           buffers=n, gc_paused=pause_gc,
                           phase_clock=getattr(runner, "phase_clock", None), loop_s=loop_s,
                           checked=checked, interrupted=interrupted, label=label)
    if log_warnings:
        for w in result["warnings"]:
            log.warning("%s", w)
    return result


def timing_result(latencies, device, phases, iters, warmup, batch, buffers, gc_paused,
                  phase_clock, loop_s, checked, interrupted, label):
    """The result dict of a backend's timed calls, from their samples (ms): `time_runner`'s,
    and the pooled rounds of `bench.rounds`. `interrupted`: False or the signal's name."""
    done = len(latencies)
    whole_phases = all(len(v) == done for v in phases.values())
    latency = summarize(latencies, batch)
    result = {
        "iterations": done,
        "requested_iterations": iters,
        "interrupted": bool(interrupted),
        "warmup": warmup,
        "batch": batch,
        "buffers": buffers,
        "gc_paused": bool(gc_paused),
        "latency_ms": latency,
        "device_ms": summarize(device, batch) if len(device) == done else None,
        "phases_ms": (dict((k, summarize(v, batch)) for k, v in phases.items())
                      if whole_phases else None),
        "phase_clock": phase_clock if whole_phases else None,
        "loop_wall_s": loop_s,
        "throughput_images_per_s": (done * batch / loop_s) if loop_s > 0 else None,
        "output_check": checked,
        "latency_samples_ms": [round(v, 5) for v in latencies],
        "device_samples_ms": [round(v, 5) for v in device] if len(device) == done else None,
        "phase_samples_ms": (dict((k, [round(x, 5) for x in v]) for k, v in phases.items())
                             if whole_phases else None),
        "warnings": [],
    }
    if interrupted:
        result["interrupted_by"] = interrupted
        result["warnings"].append("interrupted (%s) after %d of %d timed calls: the figures "
                                  "cover those calls only" % (interrupted, done, iters))
    if device and len(device) != done:
        result["warnings"].append("device time was reported for only %d of %d calls; ignored"
                                  % (len(device), done))
    if any(phases.values()) and not whole_phases:
        result["warnings"].append("copy/compute times were reported for only some calls; "
                                  "ignored")
    for key, what in (("latency_ms", "end-to-end latency"), ("device_ms", "device compute time")):
        if result[key] is not None:
            warning = stability_warning(result[key], "%s %s" % (label, what))
            if warning:
                result["warnings"].append(warning)
    return result
