"""Latency statistics shared by `bisenet-bench` and the Jetson bundle's bench, so both report alike.

Input is a list of per-call latencies in milliseconds; output is a plain dict of the figures every
report shows. Definitions (fixed, so numbers from different machines compare):

- percentiles (median, p90, p95, p99) use linear interpolation between the two nearest ranks
  (numpy's default, the same as ``np.percentile(x, q)``);
- ``std_ms`` is the population standard deviation (ddof=0); ``cv`` = std / mean;
- ``fps`` is calls per second from the mean latency (1000 / mean_ms) and ``images_per_s`` is
  ``fps * batch``: at batch 1 both are frames per second as the paper counts them (which of our
  latencies matches the paper's timed region is for bench/paper.py to say);
- ``unstable`` is True when ``cv`` exceeds ``CV_WARN_THRESHOLD`` (2.5%), the point above which
  trtexec too warns that clocks are probably not locked and the run should be repeated.

Python 3.6 / numpy 1.19 compatible; imports only the standard library and numpy.
"""

import math

import numpy as np

#: coefficient of variation above which a run is flagged as unstable (clocks not locked, noise)
CV_WARN_THRESHOLD = 0.025

#: the percentiles every summary carries, as (key, q)
PERCENTILES = (("median_ms", 50.0), ("p90_ms", 90.0), ("p95_ms", 95.0), ("p99_ms", 99.0))

#: keys of a summary dict, in report order
SUMMARY_KEYS = ("count", "batch", "min_ms", "mean_ms", "median_ms", "p90_ms", "p95_ms", "p99_ms",
                "max_ms", "std_ms", "cv", "fps", "images_per_s", "unstable")


def percentile(samples, q):
    """The q-th percentile (0..100) of `samples` with linear interpolation between ranks."""
    values = sorted(float(v) for v in samples)
    if not values:
        raise ValueError("no samples")
    if not 0.0 <= q <= 100.0:
        raise ValueError("percentile must be within 0..100, got %r" % (q,))
    pos = (len(values) - 1) * (q / 100.0)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(values) - 1)
    frac = pos - lo
    return values[lo] + (values[hi] - values[lo]) * frac


def summarize(samples_ms, batch=1, cv_threshold=CV_WARN_THRESHOLD):
    """Statistics of per-call latencies in milliseconds; `batch` images per call.

    Raises ValueError for an empty list, a non-finite or negative sample, or batch < 1.
    """
    data = np.asarray([float(v) for v in samples_ms], dtype=np.float64)
    if data.size == 0:
        raise ValueError("no latency samples to summarize")
    if not np.all(np.isfinite(data)) or np.any(data < 0):
        raise ValueError("latency samples must be finite and non-negative")
    batch = int(batch)
    if batch < 1:
        raise ValueError("batch must be >= 1, got %d" % batch)
    mean = float(np.mean(data))
    std = float(np.std(data))
    cv = std / mean if mean > 0 else 0.0
    fps = 1000.0 / mean if mean > 0 else float("inf")
    out = {
        "count": int(data.size),
        "batch": batch,
        "min_ms": float(np.min(data)),
        "mean_ms": mean,
    }
    for key, q in PERCENTILES:
        out[key] = percentile(data, q)
    out["max_ms"] = float(np.max(data))
    out["std_ms"] = std
    out["cv"] = cv
    out["fps"] = fps
    out["images_per_s"] = fps * batch
    out["unstable"] = bool(cv > cv_threshold)
    return out


def stability_warning(summary, what="latency", cv_threshold=CV_WARN_THRESHOLD):
    """A one-line warning when the run was noisy, else None."""
    if summary["cv"] <= cv_threshold:
        return None
    return ("%s varies by %.1f%% (coefficient of variation above %.1f%%): the machine is busy or "
            "clocks are not locked (GPU: nvidia-smi -lgc; Jetson: nvpmodel -m 0 && jetson_clocks); "
            "repeat the run" % (what, 100.0 * summary["cv"], 100.0 * cv_threshold))


def format_summary(summary, label=""):
    """A compact multi-line text block of one summary, for terminals and logs."""
    head = (label + ": ") if label else ""
    lines = [
        "%s%d calls, batch %d" % (head, summary["count"], summary["batch"]),
        "  latency ms: min %.3f  mean %.3f  median %.3f  p90 %.3f  p95 %.3f  p99 %.3f  max %.3f"
        % (summary["min_ms"], summary["mean_ms"], summary["median_ms"], summary["p90_ms"],
           summary["p95_ms"], summary["p99_ms"], summary["max_ms"]),
        "  std %.3f ms  cv %.2f%%  FPS %.1f  images/s %.1f"
        % (summary["std_ms"], 100.0 * summary["cv"], summary["fps"], summary["images_per_s"]),
    ]
    return "\n".join(lines)
