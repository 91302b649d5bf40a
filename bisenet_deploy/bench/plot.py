"""Optional PNG of a benchmark report: latency histogram and per-iteration trace per backend.

The histogram shows whether a distribution is tight or bimodal (thermal throttling, a second
process); the trace shows when it happened (warm-up not long enough, clocks dropping mid-run).
matplotlib is used with the Agg backend (no display needed) and imported only when plotting.
"""

import logging

import numpy as np

from ..errors import MissingDependencyError
from ..portable.fileio import atomic_output
from ..portable.ownership import PNG_TEXT

log = logging.getLogger(__name__)


def plot_report(report, path):
    """Write a PNG with one row per successful backend: histogram (left), trace (right)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("--plot needs matplotlib: pip install matplotlib") from None
    ok = [b for b in report["backends"] if b["status"] == "ok"]
    if not ok:
        log.warning("no backend ran: no plot written")
        return None
    fig, axes = plt.subplots(len(ok), 2, figsize=(12, 3.2 * len(ok)), squeeze=False)
    for row, b in zip(axes, ok):
        samples = np.asarray(b["latency_samples_ms"], dtype=np.float64)
        s = b["latency_ms"]
        label = "%s (%s)" % (b["backend"], b.get("runner") or "")
        hist, trace = row
        hist.hist(samples, bins=min(60, max(10, samples.size // 20)), color="tab:blue",
                  alpha=0.8, label="end-to-end")
        if b.get("device_samples_ms"):
            hist.hist(b["device_samples_ms"], bins=min(60, max(10, samples.size // 20)),
                      color="tab:orange", alpha=0.6, label="device compute")
        for key, style in (("median_ms", "-"), ("p99_ms", "--")):
            hist.axvline(s[key], color="k", linestyle=style, linewidth=1,
                         label="%s %.2f ms" % (key.replace("_ms", ""), s[key]))
        hist.set_title("%s: cv %.1f%%" % (label, 100 * s["cv"]), fontsize=9)
        hist.set_xlabel("latency (ms)")
        hist.set_ylabel("calls")
        hist.legend(fontsize=7)
        trace.plot(np.arange(samples.size), samples, linewidth=0.6, color="tab:blue")
        if b.get("device_samples_ms"):
            trace.plot(np.arange(samples.size), b["device_samples_ms"], linewidth=0.6,
                       color="tab:orange")
        trace.axhline(s["median_ms"], color="k", linewidth=1)
        trace.set_title("%s: per-iteration latency" % b["backend"], fontsize=9)
        trace.set_xlabel("iteration")
        trace.set_ylabel("latency (ms)")
    timed = report.get("timed", {})
    fig.suptitle("bisenet-bench %s, batch %s, %s" % (
        report.get("created_utc", ""), timed.get("batch", "?"),
        "x".join(str(v) for v in timed.get("graph_input", {}).get("size", []))), fontsize=10)
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=PNG_TEXT)  # ours: replaceable
    plt.close(fig)
    return path
