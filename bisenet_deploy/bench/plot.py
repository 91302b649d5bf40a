"""Optional PNG of a benchmark report: latency histogram and per-call trace per backend.

The histogram shows whether a distribution is tight or bimodal (thermal throttling, a second
process); the trace shows when it happened (warm-up not long enough, clocks dropping mid-run).
matplotlib is used with the Agg backend (no display needed) and imported only when plotting.
"""

import logging

import numpy as np

from ..errors import MissingDependencyError
from ..portable.files.fileio import atomic_output
from ..portable.files.ownership import PNG_TEXT

log = logging.getLogger(__name__)


def _import_pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("--plot needs matplotlib: pip install matplotlib") from None
    return plt


def backend_label(entry):
    """'onnxruntime (cpu)' for backend onnxruntime run by 'onnxruntime (cpu)': each name once."""
    runner = entry.get("runner") or ""
    name = entry["backend"]
    if not runner or runner == name:
        return name
    if ":" not in name and runner.startswith(name):
        return runner  # the runner's own words already name the backend
    return "%s: %s" % (name, runner)


def _title(report):
    timed = report.get("timed", {})
    parts = ["bisenet-bench %s" % report.get("created_utc", ""),
             "batch %s" % timed.get("batch", "?"),
             "x".join(str(v) for v in timed.get("graph_input", {}).get("size", []))]
    if (report.get("model") or {}).get("weights") == "random-init":
        parts.append("random-init weights: speed is representative, labels are not")
    if report.get("interrupted"):
        signals = sorted(set(b.get("interrupted_by") or "Ctrl-C" for b in report["backends"]
                             if b.get("interrupted")))
        parts.append("INTERRUPTED (%s): partial run" % (", ".join(signals) or "Ctrl-C"))
    return ", ".join(p for p in parts if p)


def build_figure(report):
    """The matplotlib figure: one row per backend that ran, histogram (left), trace (right)."""
    from matplotlib.ticker import MaxNLocator

    plt = _import_pyplot()
    ok = [b for b in report["backends"] if b["status"] == "ok"]
    fig, axes = plt.subplots(len(ok), 2, figsize=(12, 3.2 * len(ok)), squeeze=False)
    for row, b in zip(axes, ok):
        samples = np.asarray(b["latency_samples_ms"], dtype=np.float64)
        s = b["latency_ms"]
        label = backend_label(b)
        hist, trace = row
        bins = min(60, max(10, samples.size // 20))
        hist.hist(samples, bins=bins, color="tab:blue", alpha=0.8, label="end-to-end")
        compute = (b.get("phase_samples_ms") or {}).get("compute") or b.get("device_samples_ms")
        if compute:
            hist.hist(compute, bins=bins, color="tab:orange", alpha=0.6, label="compute")
        for key, style in (("median_ms", "-"), ("p99_ms", "--")):
            hist.axvline(s[key], color="k", linestyle=style, linewidth=1,
                         label="%s %.2f ms" % (key.replace("_ms", ""), s[key]))
        hist.set_title("%s: cv %.1f%%" % (label, 100 * s["cv"]), fontsize=9)
        hist.set_xlabel("latency (ms)")
        hist.set_ylabel("calls")
        hist.legend(fontsize=7)
        calls = np.arange(1, samples.size + 1)  # the first timed call is call 1
        trace.plot(calls, samples, linewidth=0.6, color="tab:blue", label="end-to-end")
        if compute:
            trace.plot(calls, compute, linewidth=0.6, color="tab:orange", label="compute")
            trace.legend(fontsize=7)
        trace.axhline(s["median_ms"], color="k", linewidth=1)
        trace.xaxis.set_major_locator(MaxNLocator(integer=True))
        trace.set_title("%s: per-call latency%s" % (
            label, ", interrupted after %d calls" % samples.size if b.get("interrupted") else ""),
            fontsize=9)
        trace.set_xlabel("timed call")
        trace.set_ylabel("latency (ms)")
    fig.suptitle(_title(report), fontsize=10)
    fig.tight_layout()
    return fig


def plot_report(report, path):
    """Write a PNG with one row per successful backend: histogram (left), trace (right)."""
    plt = _import_pyplot()
    if not any(b["status"] == "ok" for b in report["backends"]):
        log.warning("no backend ran: no plot written")
        return None
    fig = build_figure(report)
    try:
        with atomic_output(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=100, metadata=PNG_TEXT)  # ours: replaceable
    finally:
        plt.close(fig)
    return path
