"""Which of our figures compares with the paper's 156 FPS, and under which reading of it.

BiSeNet V2 (Yu et al., IJCV 2021) reports 156 FPS for a 2048x1024 Cityscapes input on one GTX
1080 Ti with TensorRT in FP32. Its protocol section says that the input is resized to 1024x512
for the network and the prediction resized back to the input size, that the resize is included
in the time, and that 5000 iterations were run. It does not say whether the host->device copy of
the input and the device->host copy of the result were inside the timed region. So there are two
readings, and each matches one of our figures:

- copies included: our end-to-end latency (host array in, host labels out);
- copies excluded: our compute phase (CUDA events between the two copies), which holds both
  resizes, the network and the argmax, exactly the work the paper describes.

On a CPU backend nothing is copied, so both readings give the end-to-end figure. Where our run
differs from the paper's setup (another input or network size, batch, fewer than 5000 calls), the
comparison says so instead of giving a figure; the GPU model and precision are named beside it.
"""

from .session import CPU_BACKENDS, backend_of

PAPER = {
    "fps": 156.0,
    "gpu": "GTX 1080 Ti",
    "runtime": "TensorRT 5.1.5, FP32",
    "input_size": [2048, 1024],
    "model_size": [1024, 512],
    "batch": 1,
    "iterations": 5000,
    "states": "2048x1024 input resized to 1024x512 in the model and the prediction resized back; "
              "resize time included; 5000 iterations",
    "does_not_state": "whether the host<->device copies were inside the timed region",
}

COPIES_INCLUDED = "copies included"
COPIES_EXCLUDED = "copies excluded"


def setup_differences(timed, iterations):
    """What keeps our run from being the paper's setup, as short phrases (empty: the same)."""
    diffs = []
    size = list(timed.get("graph_input", {}).get("size") or [])
    if size != PAPER["input_size"]:
        diffs.append("input %s vs 2048x1024" % "x".join(str(v) for v in size))
    if list(timed.get("model_size") or []) != PAPER["model_size"]:
        diffs.append("network %s vs 1024x512"
                     % "x".join(str(v) for v in timed.get("model_size") or []))
    if timed.get("batch") != PAPER["batch"]:
        diffs.append("batch %s vs 1" % timed.get("batch"))
    if iterations < PAPER["iterations"]:
        diffs.append("%d timed calls vs 5000" % iterations)
    return diffs


def _fps(summary):
    return summary["fps"] if summary else None


def readings(timed, backends):
    """The report's "paper" section: the paper's claim and, per backend that ran, our FPS under
    each reading (None where the backend measured no copy/compute split) or why it does not
    compare."""
    rows = []
    for b in backends:
        if b.get("status") != "ok":
            continue
        diffs = setup_differences(timed, int(b["iterations"]))
        if b.get("interrupted"):
            diffs.append("interrupted")
        phases = b.get("phases_ms")
        if phases:
            excluded = _fps(phases.get("compute"))
            figure = "compute phase (%s)" % (b.get("phase_clock") or "measured")
        elif backend_of(b["backend"]) in CPU_BACKENDS:
            excluded, figure = _fps(b["latency_ms"]), "end-to-end (CPU: nothing is copied)"
        else:
            excluded, figure = None, "not measured by this backend"
        rows.append({
            "backend": b["backend"],
            "comparable": not diffs,
            "differences": diffs,
            "fps": {COPIES_INCLUDED: _fps(b["latency_ms"]), COPIES_EXCLUDED: excluded},
            "figures": {COPIES_INCLUDED: "end-to-end", COPIES_EXCLUDED: figure},
        })
    return {"paper": dict(PAPER), "rows": rows}


def format_readings(section):
    """Terminal lines: the paper's claim, then one line per backend."""
    paper = section["paper"]
    lines = ["paper: %.0f FPS on a %s (%s), resize included, %d iterations; it does not state "
             "whether the copies were timed. Our figures under each reading:"
             % (paper["fps"], paper["gpu"], paper["runtime"], paper["iterations"])]
    for row in section["rows"]:
        fps = row["fps"]
        if not row["comparable"]:
            lines.append("  %s: not the paper's setup (%s): no FPS to compare"
                         % (row["backend"], "; ".join(row["differences"])))
            continue
        excluded = fps[COPIES_EXCLUDED]
        lines.append("  %s: %.1f FPS if the paper timed the copies (end-to-end), %s if it did not "
                     "(%s)" % (row["backend"], fps[COPIES_INCLUDED],
                               "%.1f FPS" % excluded if excluded is not None else "unknown",
                               row["figures"][COPIES_EXCLUDED]))
    return "\n".join(lines)
