"""The benchmark report: one JSON document per `bisenet-bench` run, and the side-by-side table.

Default path: ``benchmarks/<YYYYmmdd-HHMMSS>-<device-slug>-<backend+backend>.json`` (UTC time,
device = first GPU's name or ``cpu-<model>``), written atomically.

Schema ``"bisenet-bench/1"`` (all times in milliseconds unless the key says otherwise)::

    {
      "schema": "bisenet-bench/1",
      "created_utc": "2026-11-21T05:10:00Z",
      "toolkit_version": str,
      "command": str,                      # the command line as typed
      "config": {"iters": int, "warmup": int, "batch": int, "buffers": int,
                 "rounds": int,                    # (optional) bench/rounds.py
                 "precision": str | null, "threads": int | null,
                 "cuda_graph": bool, "channels_last": bool},   # (optional keys)
      "timed": {                           # exactly what one timed call covers
        "input": {"kind": "synthetic" | "image", "batch": int, "buffers": int, ...},
        "graph_input": {"size": [W, H], "dtype": str, "channel_order": str, "normalize": str},
        "in_graph_resize": {"from": [W, H], "to": [W, H]} | null,
        "model_size": [W, H],
        "output": "labels" | "logits" | "both", "output_names": [str],
        "batch": int,
        "end_to_end": str,                 # prose: what the latency includes / excludes
        "device_compute": str,
        "phases": str                      # (optional) what h2d / compute / d2h cover
      },
      "interrupted": bool,                 # (optional) Ctrl-C cut the run short
      "paper": {"paper": {...}, "rows": [...]} | null,   # (optional) bench.paper.readings
      "model": {"onnx": str | null, "engine": str | null, "checkpoint": str | null,
                "arch": str | null, "num_classes": int | null, "weights": str | null,
                "engine_sidecar": dict | null},
      "environment": dict,                 # bench.environment.collect_environment()
      "backends": [                        # one per requested backend, in the order asked
        {"backend": str, "status": "ok" | "skipped" | "failed", "error": str | null,
         "runner": str | null,             # runner.describe(): device, precision, options
         "input": str | null, "outputs": [str],
         "graph": {"input_size", "model_size", "input_dtype", "output_names"},  # what it ran;
                                           # backends of different graphs get a warning
         "int8": {"agreement", "calibration"},  # (optional) a Q/DQ graph's export.int8
         # only when status == "ok" (harness.time_runner):
         "iterations": int, "warmup": int, "batch": int, "buffers": int,
         "requested_iterations": int, "interrupted": bool,          # (optional)
         "rounds": int,              # (optional) the rounds its calls were pooled from
         "interrupted_by": "Ctrl-C" | "SIGTERM",                    # (optional)
         "latency_ms": SUMMARY, "device_ms": SUMMARY | null,
         "phases_ms": {"h2d": SUMMARY, "compute": SUMMARY, "d2h": SUMMARY} | null,  # (optional)
         "phase_clock": "cuda-events" | "host-clock" | null,                  # (optional)
         "phase_samples_ms": {"h2d": [float], "compute": [float], "d2h": [float]} | null,
         "loop_wall_s": float, "throughput_images_per_s": float | null,
         "output_check": {name: {"shape", "dtype", "min", "max"}},
         "latency_samples_ms": [float], "device_samples_ms": [float] | null,
         "warnings": [str]}
      ],
      "comparison": {"metric": "median end-to-end latency", "fastest": str, "first": str,
                     "rows": [{"backend": str, "median_ms": float, "vs_fastest": float,
                               "vs_first": float}]} | null
    }

SUMMARY is a `portable.shared.timing_stats.summarize` dict: count, batch, min_ms, mean_ms, median_ms,
p90_ms, p95_ms, p99_ms, max_ms, std_ms, cv, fps, images_per_s, unstable.
`vs_fastest` / `vs_first` are latency ratios: 1.0 for the fastest (first) backend, 2.0 = twice as
slow. `validate_report` checks a document against this schema.
"""

import datetime
import json
import os

from ..errors import InputError
from ..portable.files.fileio import write_json_atomic
from ..portable.shared.timing_stats import SUMMARY_KEYS
from .environment import device_slug

SCHEMA = "bisenet-bench/1"
DEFAULT_FOLDER = "benchmarks"

_NUM = (int, float)
_OPT_STR = (str, type(None))

END_TO_END_TEXT = (
    "one runner.infer() call, timed with perf_counter on the host: host input array (already "
    "prepared in the graph's input format) -> host-to-device copy -> in-graph normalization and "
    "bilinear resize to the model size -> network -> bilinear resize of the logits back to the "
    "input size -> output head (argmax to INT32 labels, or the logits) -> device-to-host copy -> "
    "host output arrays. Excludes image decoding and host-side preparation.")
DEVICE_TEXT = ("device compute time of the same call from CUDA events around the engine or "
               "network (both resizes and the argmax included, no copies), where the backend "
               "measures it; null otherwise")
PHASES_TEXT = (
    "GPU backends split each call into h2d (host-to-device copy of the input), compute (both "
    "resizes, the network, the argmax) and d2h (device-to-host copy of the outputs): CUDA events "
    "on the stream for tensorrt and torch-cuda (phase_clock cuda-events); the host clock around "
    "onnxruntime's synchronous I/O-binding steps for onnxruntime-cuda/-trt (host-clock, which "
    "includes onnxruntime's own overhead). CPU backends copy nothing: null.")


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def default_report_path(env, backends, when=None, folder=DEFAULT_FOLDER):
    when = when or utc_now()
    names = "+".join(dict.fromkeys(backends)) or "none"
    return os.path.join(folder, "%s-%s-%s.json" % (when.strftime("%Y%m%d-%H%M%S"),
                                                   device_slug(env), names))


def describe_timed(record, input_source, batch):
    """The "timed" section: input size -> in-graph resize -> model size, output, batch."""
    export = record["export"]
    in_size = [int(v) for v in export["input_size"]]
    model_size = [int(v) for v in export["model_size"]]
    return {
        "input": input_source,
        "graph_input": {"size": in_size, "dtype": export["input_dtype"],
                        "channel_order": export["channel_order"],
                        "normalize": export["normalize"]},
        "in_graph_resize": ({"from": in_size, "to": model_size} if in_size != model_size
                            else None),
        "model_size": model_size,
        "output": export["output"],
        "output_names": list(export["output_names"]),
        "batch": int(batch),
        "end_to_end": END_TO_END_TEXT,
        "device_compute": DEVICE_TEXT,
        "phases": PHASES_TEXT,
    }


def timed_sentence(timed):
    """One line for terminals: what a timed call covers."""
    src = timed["input"]
    what = "synthetic street scenes" if src.get("kind") == "synthetic" else "--image"
    resize = timed["in_graph_resize"]
    size = "x".join(str(v) for v in timed["graph_input"]["size"])
    model = "x".join(str(v) for v in timed["model_size"])
    return ("timed: host %s %s input (%s, %d buffers rotated) -> %s -> network at %s -> %s%s "
            "output -> host; batch %d; includes copies%s"
            % (size, timed["graph_input"]["dtype"], what, src.get("buffers", 1),
               ("in-graph resize to %s" % model) if resize else "no resize", model,
               ("logits resized back to %s -> " % size) if resize else "", timed["output"],
               timed["batch"], ", normalization and both resizes" if resize else
               " and normalization"))


def comparison(backends):
    ok = [b for b in backends if b.get("status") == "ok"]
    if not ok:
        return None
    medians = {b["backend"]: b["latency_ms"]["median_ms"] for b in ok}
    fastest = min(ok, key=lambda b: b["latency_ms"]["median_ms"])["backend"]
    first = ok[0]["backend"]
    rows = []
    for b in ok:
        m = medians[b["backend"]]
        rows.append({"backend": b["backend"], "median_ms": m,
                     "vs_fastest": m / medians[fastest] if medians[fastest] > 0 else None,
                     "vs_first": m / medians[first] if medians[first] > 0 else None})
    return {"metric": "median end-to-end latency", "fastest": fastest, "first": first,
            "rows": rows}


def build_report(*, command, config, timed, model, environment, backends, created=None):
    from .. import __version__
    from .paper import readings
    report = {
        "schema": SCHEMA,
        "created_utc": (created or utc_now()).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "toolkit_version": __version__,
        "command": command,
        "config": config,
        "timed": timed,
        "model": model,
        "environment": environment,
        "backends": backends,
        "comparison": comparison(backends),
        "interrupted": any(b.get("interrupted") for b in backends),
        "paper": readings(timed, backends),
    }
    validate_report(report)
    return report


def write_report(path, report):
    validate_report(report)
    write_json_atomic(path, report)
    return path


def load_report(path):
    try:
        with open(str(path)) as f:
            report = json.load(f)
    except (OSError, ValueError) as exc:
        raise InputError("cannot read benchmark report %s (%s)" % (path, exc)) from None
    validate_report(report)
    return report


# -- validation --------------------------------------------------------------------------------
def _need(obj, key, types, where):
    if not isinstance(obj, dict) or key not in obj:
        raise InputError("benchmark report: %s lacks %r" % (where, key))
    value = obj[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise InputError("benchmark report: %s.%s has the wrong type" % (where, key))
    if not isinstance(value, types):
        raise InputError("benchmark report: %s.%s must be %s, got %s" % (
            where, key, "/".join(t.__name__ for t in (types if isinstance(types, tuple)
                                                      else (types,))), type(value).__name__))
    return value


def _check_summary(summary, where):
    for key in SUMMARY_KEYS:
        types = bool if key == "unstable" else (int if key in ("count", "batch") else _NUM)
        _need(summary, key, types, where)
    if not (summary["min_ms"] <= summary["median_ms"] <= summary["p90_ms"] <= summary["p95_ms"]
            <= summary["p99_ms"] <= summary["max_ms"]):
        raise InputError("benchmark report: %s percentiles are not ordered" % where)


def validate_report(report):
    """Raise InputError naming the first thing that does not match the schema."""
    if _need(report, "schema", str, "report") != SCHEMA:
        raise InputError("benchmark report: schema %r, this version reads %r"
                         % (report["schema"], SCHEMA))
    for key, types in (("created_utc", str), ("toolkit_version", str), ("command", str),
                       ("config", dict), ("timed", dict), ("model", dict),
                       ("environment", dict), ("backends", list)):
        _need(report, key, types, "report")
    config = report["config"]
    for key in ("iters", "warmup", "batch", "buffers"):
        _need(config, key, int, "config")
    if "rounds" in config and (_need(config, "rounds", int, "config") < 1):
        raise InputError("benchmark report: config.rounds must be >= 1")
    _need(config, "precision", _OPT_STR, "config")
    _need(config, "threads", (int, type(None)), "config")
    timed = report["timed"]
    _need(timed, "input", dict, "timed")
    graph = _need(timed, "graph_input", dict, "timed")
    _need(graph, "size", list, "timed.graph_input")
    _need(graph, "dtype", str, "timed.graph_input")
    _need(timed, "in_graph_resize", (dict, type(None)), "timed")
    _need(timed, "model_size", list, "timed")
    _need(timed, "output", str, "timed")
    _need(timed, "output_names", list, "timed")
    _need(timed, "batch", int, "timed")
    _need(timed, "end_to_end", str, "timed")
    _need(timed, "device_compute", str, "timed")
    for key in ("onnx", "engine", "checkpoint"):
        _need(report["model"], key, _OPT_STR, "model")
    _need(report["model"], "engine_sidecar", (dict, type(None)), "model")
    if not report["backends"]:
        raise InputError("benchmark report: no backends")
    for i, b in enumerate(report["backends"]):
        where = "backends[%d]" % i
        _need(b, "backend", str, where)
        status = _need(b, "status", str, where)
        _need(b, "error", _OPT_STR, where)
        _need(b, "runner", _OPT_STR, where)
        if status in ("failed", "skipped"):
            if not b["error"]:
                raise InputError("benchmark report: %s %s without an error message"
                                 % (where, status))
            continue
        if status != "ok":
            raise InputError("benchmark report: %s.status must be 'ok', 'skipped' or 'failed'"
                             % where)
        for key in ("iterations", "warmup", "batch", "buffers"):
            _need(b, key, int, where)
        _check_summary(_need(b, "latency_ms", dict, where), where + ".latency_ms")
        if _need(b, "device_ms", (dict, type(None)), where) is not None:
            _check_summary(b["device_ms"], where + ".device_ms")
        for phase, summary in (b.get("phases_ms") or {}).items():
            _check_summary(summary, "%s.phases_ms.%s" % (where, phase))
        if "interrupted" in b:
            _need(b, "interrupted", bool, where)
        if b.get("interrupted_by") not in (None, "Ctrl-C", "SIGTERM"):
            raise InputError("benchmark report: %s.interrupted_by is %r, not Ctrl-C or SIGTERM"
                             % (where, b["interrupted_by"]))
        samples = _need(b, "latency_samples_ms", list, where)
        if len(samples) != b["iterations"] or b["latency_ms"]["count"] != b["iterations"]:
            raise InputError("benchmark report: %s has %d samples for %d iterations"
                             % (where, len(samples), b["iterations"]))
        _need(b, "loop_wall_s", _NUM, where)
        _need(b, "output_check", dict, where)
        _need(b, "warnings", list, where)
    comp = _need(report, "comparison", (dict, type(None)), "report")
    if comp is not None:
        _need(comp, "fastest", str, "comparison")
        _need(comp, "first", str, "comparison")
        for row in _need(comp, "rows", list, "comparison"):
            _need(row, "backend", str, "comparison.rows")
            _need(row, "median_ms", _NUM, "comparison.rows")
            _need(row, "vs_fastest", _NUM, "comparison.rows")
            _need(row, "vs_first", _NUM, "comparison.rows")
    return report


# -- table -------------------------------------------------------------------------------------
def _ms(value):
    if value >= 100:
        return "%.1f" % value
    if value >= 10:
        return "%.2f" % value
    return "%.3f" % value


def _rate(value):
    return "%.1f" % value if value >= 10 else ("%.2f" % value if value >= 1 else "%.3f" % value)


def table_rows(report):
    """Header and rows of the side-by-side table (strings), one row per backend that ran."""
    header = ["backend", "runner", "mean ms", "median", "p90", "p99", "max", "cv %", "FPS",
              "img/s", "h2d ms", "compute ms", "d2h ms", "vs fastest", "vs first"]
    comp = {r["backend"]: r for r in (report.get("comparison") or {}).get("rows", [])}
    rows = []
    for b in report["backends"]:
        if b["status"] != "ok":
            continue
        s = b["latency_ms"]
        c = comp.get(b["backend"], {})
        phases = dict(b.get("phases_ms") or {})
        phases.setdefault("compute", b.get("device_ms"))
        mark = "~" if b.get("phase_clock") == "host-clock" else ""
        rows.append([
            b["backend"], b.get("runner") or "",
            _ms(s["mean_ms"]), _ms(s["median_ms"]), _ms(s["p90_ms"]), _ms(s["p99_ms"]),
            _ms(s["max_ms"]), "%.1f%s" % (100.0 * s["cv"], "!" if s["unstable"] else ""),
            _rate(s["fps"]), _rate(s["images_per_s"]),
        ] + [(mark + _ms(phases[k]["median_ms"])) if phases.get(k) else "-"
             for k in ("h2d", "compute", "d2h")] + [
            ("x%.2f" % c["vs_fastest"]) if c.get("vs_fastest") is not None else "-",
            ("x%.2f" % c["vs_first"]) if c.get("vs_first") is not None else "-",
        ])
    return header, rows


def format_table(report):
    """The aligned text table (ratios: median latency vs the fastest and the first backend),
    followed by one line per backend that did not run."""
    from ..text_table import format_table as aligned

    header, rows = table_rows(report)
    lines = [aligned(rows, header)]
    if any(r[-1] != "-" for r in rows) and len(rows) > 1:
        rounds = report["config"].get("rounds") or 1
        lines.append("(ratios: median end-to-end latency / that of the fastest or first backend; "
                     "'!' marks cv > 2.5%%; %s)" % (
                         "timed in %d alternating rounds: A B, B A, ..." % rounds if rounds > 1
                         else "timed one backend after the other: see --rounds"))
    elif any(r[7].endswith("!") for r in rows):
        lines.append("('!' marks cv > 2.5%: unstable timings)")
    if any(r[11] != "-" for r in rows):
        lines.append("(h2d / compute / d2h: median ms of the input copy, the engine or network "
                     "with both resizes, the output copy; CUDA events, '~' = host clock)")
    for b in report["backends"]:
        if b["status"] != "ok":
            lines.append("%s: %s: %s" % (b["backend"], b["status"], b.get("error") or ""))
        elif b.get("interrupted"):
            lines.append("%s: interrupted (%s) after %d of %d timed calls" % (
                b["backend"], b.get("interrupted_by", "Ctrl-C"), b["iterations"], b.get("requested_iterations", b["iterations"])))
    return "\n".join(lines)
