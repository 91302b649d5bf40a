"""Several backends benchmarked one after the other by the same harness, into one report.

Each backend is opened, activated, timed and closed before the next one starts, so two backends
never compete for the same cores or GPU; with several rounds (bench/rounds.py) this happens once
per round, the order reversed every other round. A backend that cannot run here is recorded with
one clear line and the others still run:

- "skipped": unavailable on this machine or with the models given (no TensorRT/pycuda/GPU,
  onnxruntime asked without --onnx, ...): a `MissingDependencyError` or `BackendUnavailable`;
- "failed": it was opened but did not produce a valid timing (garbage outputs, engine errors,
  wrong input sizes, an internal error).

Ctrl-C ends the run but keeps what was measured: the backend being timed reports the calls it
completed (marked ``interrupted``); one interrupted before its first timed call, and every backend
after it, is "skipped" with ``interrupted`` set, so the report says exactly what did not run.
"""

import json
import logging
import time

from ..errors import EXIT_INTERNAL, MissingDependencyError, UserError
from ..portable.shared.install_hints import doctor_hint
from ..portable.shared.interrupts import CTRL_C, EXIT_CODES, SIGTERM, signal_name
from ..portable.shared.memory import MemoryBudgetError
from .harness import (DEFAULT_BUFFERS, BenchmarkError, check_fixed_batch, make_inputs,
                      time_runner)

log = logging.getLogger(__name__)


#: the exit status of a run cut short by Ctrl-C (128 + SIGINT, as shells report it); by SIGTERM
#: it is 143 (128 + SIGTERM)
INTERRUPTED_EXIT = EXIT_CODES[CTRL_C]


class BackendUnavailable(UserError):
    """A backend cannot run with what was given (no model file of its kind) or on this machine."""

    exit_code = 4


#: backends that run on the CPU: a long run there gets a hint to shorten it
CPU_BACKENDS = ("onnxruntime", "torch")
INTERRUPTED = "interrupted (Ctrl-C)"


def backend_of(label):
    """'onnxruntime:m.onnx@fp16' -> 'onnxruntime': the backend name in a run's label."""
    return str(label).split(":")[0].split("@")[0]


def default_warmup(iters):
    """Warm-up calls when none is given: 5% of the timed calls, at least 3, at most 50."""
    return min(50, max(3, int(iters) // 20))


class InputCache(object):
    """Prepared input buffers shared by backends whose models take the same graph input."""

    def __init__(self, batch, buffers=DEFAULT_BUFFERS, image=None):
        self.batch = batch
        self.buffers = buffers
        self.image = image
        self._cache = {}

    def get(self, record, input_spec=None):
        export = record.get("export") if record else None
        model = record.get("model") if record else None
        key = json.dumps([export, model and {k: model.get(k) for k in (
            "mean", "std", "channel_order")}], sort_keys=True, default=str)
        if key not in self._cache:
            self._cache[key] = make_inputs(record, self.batch, self.buffers, image=self.image,
                                           input_spec=input_spec)
        else:  # still enforce the fixed-batch rule for this runner
            check_fixed_batch(input_spec, self.batch)
        return self._cache[key]


def graph_summary(record):
    """What one call of a backend computes (sizes, dtype, outputs), to tell whether two backends
    timed the same work."""
    export = (record or {}).get("export") or {}
    return {"input_size": export.get("input_size"), "model_size": export.get("model_size"),
            "input_dtype": export.get("input_dtype"), "output_names": export.get("output_names")}


def _describe_graph(g):
    size = "x".join(str(v) for v in g.get("input_size") or ["?"])
    net = "x".join(str(v) for v in g.get("model_size") or ["?"])
    return "%s %s -> network %s -> %s" % (size, g.get("input_dtype"), net,
                                          "+".join(g.get("output_names") or []))


def bench_backend(name, opener, inputs, iters, warmup, clock=time.perf_counter, progress=None,
                  debug=False, log_warnings=True):
    """Open backend `name` with `opener(name)`, time it, close it; returns (entry, record)."""
    entry = {"backend": name, "status": "ok", "error": None, "runner": None, "input": None,
             "outputs": []}
    record = None
    try:
        runner = opener(name)
        with runner:
            entry["runner"] = runner.describe()
            sidecar = getattr(runner, "sidecar", None)
            if isinstance(sidecar, dict):
                entry["engine_sidecar"] = sidecar
            spec = runner.input_spec()
            entry["input"] = spec.describe()
            entry["outputs"] = [s.describe() for s in runner.output_specs()]
            record = runner.metadata
            entry["graph"] = graph_summary(record)
            int8 = ((record or {}).get("export") or {}).get("int8")
            if isinstance(int8, dict):  # a Q/DQ graph: what its export measured
                entry["int8"] = {k: int8.get(k) for k in ("agreement", "calibration")}
            buffers, _source = inputs.get(record, spec)
            log.info("%s: %s, %d warm-up + %d timed calls", name, entry["runner"], warmup, iters)
            entry.update(time_runner(runner, buffers, iters, warmup, record=record, clock=clock,
                                     progress=progress, label=name,
                                     on_cpu=backend_of(name) in CPU_BACKENDS,
                                     log_warnings=log_warnings))
    except MemoryBudgetError:  # an option of the whole run, not this backend's problem
        raise
    except (MissingDependencyError, BackendUnavailable) as exc:
        entry.update(status="skipped", error=str(exc))
        missing = isinstance(exc, MissingDependencyError)  # not a usage problem: doctor helps
        log.warning("%s backend skipped: %s%s", name, exc,
                    " (%s)" % doctor_hint() if missing and doctor_hint() else "")
    except UserError as exc:
        entry.update(status="failed", error=str(exc), exit_code=exc.exit_code)
        log.error("%s backend failed: %s", name, exc)
    except Exception as exc:  # a bug: record it, keep the other backends running
        if debug:
            raise
        entry.update(status="failed", error="internal error: %s: %s (re-run with --debug for the "
                                            "traceback)" % (type(exc).__name__, exc),
                     exit_code=EXIT_INTERNAL)
        log.error("%s backend failed: %s", name, entry["error"])
    return entry, record


def run_benchmarks(backends, opener, *, iters, warmup=None, batch=1, buffers=DEFAULT_BUFFERS,
                   image=None, clock=time.perf_counter, progress=None, debug=False, rounds=1):
    """Benchmark the backends, in `rounds` alternating rounds (bench.rounds: each round times
    them in turn, the order reversed every other round, and their calls are pooled). Returns
    (entries in the order asked, the first ok backend's record, input description)."""
    from .rounds import pool_rounds, round_order, split_iterations

    if warmup is None:
        warmup = default_warmup(iters)
    cache = InputCache(batch, buffers, image)
    parts = dict((name, []) for name in backends)  # each backend's rounds, status ok
    ended = {}  # backend -> its entry once skipped, failed or not run
    records = {}
    stopped = None  # the signal that stopped the run
    counts = split_iterations(iters, rounds) if int(iters) >= 1 else [iters]
    for index, count in enumerate(counts):
        for name in round_order(backends, index):
            if name in ended or (stopped and parts[name]):
                continue
            if stopped:
                ended[name] = _not_run(name, "not run: the run was %s before it"
                                       % interrupted_by(stopped), stopped)
                continue
            try:
                entry, record = bench_backend(name, opener, cache, count, warmup, clock=clock,
                                              progress=progress, debug=debug,
                                              log_warnings=len(counts) == 1)
            except KeyboardInterrupt as exc:  # before its first timed call of this round
                stopped = signal_name(exc)
                if not parts[name]:
                    ended[name] = _not_run(name, "%s before its first timed call"
                                           % interrupted_by(stopped), stopped)
                continue
            if entry["status"] != "ok":
                ended[name] = entry
                continue
            parts[name].append(entry)
            records.setdefault(name, record)
            if entry.get("interrupted"):
                stopped = entry.get("interrupted_by") or CTRL_C
    entries = [ended.get(name) or pool_rounds(parts[name], int(iters), stopped, name)
               for name in backends]
    first_record = source = None
    for e in entries:
        if e["status"] == "ok":
            first_record = records[e["backend"]]
            source = cache.get(first_record)[1]
            break
    graphs = {json.dumps(e.get("graph"), sort_keys=True): e.get("graph")
              for e in entries if e["status"] == "ok"}
    if len(graphs) > 1:
        warning = ("the backends timed different graphs (%s): their ratios compare different "
                   "work; give models exported at the same sizes"
                   % "; ".join(_describe_graph(g) for g in graphs.values()))
        log.warning("%s", warning)
        for e in entries:
            if e["status"] == "ok":
                e["warnings"].append(warning)
    return entries, first_record, source


def interrupted_by(signal):
    """'interrupted (Ctrl-C)' or 'terminated (SIGTERM)': how a run's messages name its stop."""
    return "terminated (SIGTERM)" if signal == SIGTERM else INTERRUPTED


def _not_run(name, why, signal):
    log.warning("%s: %s", name, why)
    return {"backend": name, "status": "skipped", "error": why, "runner": None, "input": None,
            "outputs": [], "interrupted": True, "interrupted_by": signal}


def was_interrupted(entries):
    """True when Ctrl-C cut the run short (some backend stopped early or did not run)."""
    return any(e.get("interrupted") for e in entries)


def stop_signal(entries):
    """SIGTERM or CTRL_C: what cut the run short (None when nothing did)."""
    signals = [e.get("interrupted_by") or CTRL_C for e in entries if e.get("interrupted")]
    return (SIGTERM if SIGTERM in signals else CTRL_C) if signals else None


def exit_code_for(entries):
    """The exit code of a run, from its backends' statuses.

    0: every backend ran, or some ran and the others were skipped as unavailable here (no
    TensorRT, no GPU, no model of that kind given); a backend failed, even when others ran: the
    exit code of the first failure, as every command uses it (3 garbage outputs, 5 an unusable
    model file, 2 a wrong input...); 4: no backend ran at all; 130: Ctrl-C cut the run short, 143:
    SIGTERM did (the calls done are still reported).
    """
    if was_interrupted(entries):
        return EXIT_CODES[stop_signal(entries)]
    failed = [e for e in entries if e["status"] == "failed"]
    if failed:
        return int(failed[0].get("exit_code") or BenchmarkError.exit_code)
    if any(e["status"] == "ok" for e in entries):
        return 0
    return BackendUnavailable.exit_code
