"""Load a model with N concurrent clients: throughput, latency percentiles and failed requests.

What one request is: one `runner.infer(batch)` from one client thread, host input already in the
graph's format -> host outputs. For a served model (`serve.client.ServedRunner`) that is the
whole round trip: serialization, the network (loopback or not), Triton's queue and dynamic
batching, the server's runner, and the response. For the direct runner the same call runs
in-process, so the difference of the two at one client is the serving overhead per request.

A level runs `requests` requests spread over `concurrency` clients, all released at once after
their untimed warm-up; throughput is the images of the successful requests over the level's wall
time (first start to last end), the percentiles are over the successful requests' latencies,
and failures are counted (their first distinct messages kept), never dropped.
"""

import logging
import threading
import time

from ..portable.shared.timing_stats import summarize

log = logging.getLogger(__name__)

#: distinct failure messages kept per level
KEPT_ERRORS = 3


def split_requests(total, clients):
    """How many requests each client sends: `total` spread evenly, the first ones get the rest."""
    base, extra = divmod(int(total), int(clients))
    return [base + (1 if i < extra else 0) for i in range(int(clients))]


def run_level(runners, inputs, requests, warmup=0, clock=time.perf_counter):
    """Time `requests` requests over the active `runners` (one client thread each).

    `inputs`: prepared batches, rotated per client. Returns the level's dict (see module doc).
    """
    concurrency = len(runners)
    quotas = split_requests(requests, concurrency)
    batch = int(inputs[0].shape[0])
    latencies = [[] for _ in runners]
    failures = [[] for _ in runners]
    start_gate = threading.Barrier(concurrency + 1)
    ends = [0.0] * concurrency

    def client(i):
        runner = runners[i]
        for k in range(warmup):
            try:
                runner.infer(inputs[(i + k) % len(inputs)])
            except Exception:  # a failing warm-up shows up again in the timed requests
                pass
        start_gate.wait()
        for k in range(quotas[i]):
            buf = inputs[(i + k) % len(inputs)]
            t0 = clock()
            try:
                runner.infer(buf)
            except Exception as exc:  # counted, never lost
                failures[i].append("%s: %s" % (type(exc).__name__, exc))
                continue
            latencies[i].append((clock() - t0) * 1e3)
        ends[i] = clock()

    threads = [threading.Thread(target=client, args=(i,), name="bench-client-%d" % i,
                                daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    start_gate.wait()
    started = clock()
    for t in threads:
        t.join()
    wall = max(max(ends) - started, 1e-9)
    ok = [v for per in latencies for v in per]
    errors = []
    for per in failures:
        for message in per:
            if message not in errors and len(errors) < KEPT_ERRORS:
                errors.append(message)
    failed = sum(len(per) for per in failures)
    return {
        "concurrency": concurrency,
        "requests": int(requests),
        "ok": len(ok),
        "failed": failed,
        "errors": errors,
        "batch": batch,
        "wall_s": wall,
        "requests_per_s": len(ok) / wall,
        "images_per_s": len(ok) * batch / wall,
        "latency_ms": summarize(ok, batch=batch) if ok else None,
    }


def overhead_rows(levels):
    """Per concurrency: served vs direct median latency and throughput (when both ran)."""
    by_key = {(lv["target"], lv["concurrency"]): lv for lv in levels}
    rows = []
    for (target, conc), served in sorted(by_key.items(), key=lambda kv: kv[0][1]):
        direct = by_key.get(("direct", conc))
        if target != "served" or direct is None or not served["latency_ms"] \
                or not direct["latency_ms"]:
            continue
        s, d = served["latency_ms"]["median_ms"], direct["latency_ms"]["median_ms"]
        rows.append({"concurrency": conc, "served_median_ms": s, "direct_median_ms": d,
                     "overhead_ms": s - d,
                     "throughput_ratio": (served["images_per_s"] / direct["images_per_s"]
                                          if direct["images_per_s"] else None)})
    return rows


def comparison_notes(serving, max_batch, direct_backend, direct_threads, clients):
    """Why served and direct rows would not compare like with like, as lines to print.

    `serving`: how the server runs the model (`ServedRunner.serving`: backend, instances, CPU
    threads per instance, 0 for the library's default), None when it does not say. On a small
    CPU the thread count decides more than the serving path does (2 onnxruntime threads were
    2x slower than 1 on our shared 2-core VM), and a direct runner called by N clients runs N
    inferences at once where a server with one instance of a batch-1 model runs one.
    """
    from .session import CPU_BACKENDS

    if not serving or not direct_backend:
        return []
    notes = []
    if serving["backend"] != direct_backend:
        notes.append("the server runs %s, the direct runner %s" % (serving["backend"],
                                                                   direct_backend))
    threads = int(direct_threads or 0)
    if direct_backend in CPU_BACKENDS and serving["threads"] != threads:
        def say(n):
            return "%d CPU thread(s)" % n if n else "the library's default threads"

        fix = ("pass --threads %d" % serving["threads"] if serving["threads"]
               else "leave out --threads")
        notes.append("the server's runner uses %s per instance, the direct runner %s: %s to "
                     "compare like with like" % (say(serving["threads"]), say(threads), fix))
    if max_batch <= 1 and serving["instances"] == 1 and max(clients) > 1:
        notes.append("the server runs one request at a time (one instance of a batch-1 model) "
                     "where the direct runner runs every client's call at once: for more than "
                     "one client, serve with --instances (one per core with --threads 1) or a "
                     "dynamic-batch export")
    return notes


def table(levels):
    """(header, rows) of the per-level table."""
    header = ["target", "clients", "requests", "failed", "images/s", "p50 ms", "p90 ms",
              "p99 ms", "mean ms"]
    rows = []
    for lv in levels:
        s = lv["latency_ms"] or {}

        def ms(key):
            return "%.2f" % s[key] if key in s else "-"

        rows.append([lv["target"], str(lv["concurrency"]), str(lv["requests"]), str(lv["failed"]),
                     "%.2f" % lv["images_per_s"], ms("median_ms"), ms("p90_ms"), ms("p99_ms"),
                     ms("mean_ms")])
    return header, rows
