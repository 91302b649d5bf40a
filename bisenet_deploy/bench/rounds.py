"""Alternating rounds: several backends timed in turns, so a drifting machine favours none.

Backends timed one after the other charge the later one with whatever the machine did meanwhile:
a CPU heating up and lowering its clock, another process starting, a GPU's clocks settling. With
rounds, each backend's timed calls are split into N rounds and every round times the backends in
turn, reversing their order every other round (A B, B A, A B, ...): each backend sees every
stretch of the run, and a steady drift falls on all of them alike. A round opens its backend
afresh and makes its warm-up calls again (still one backend at a time on the cores or GPU); the
rounds' timed calls are then pooled into one result, summarized as one loop would be.
"""

import logging

from .harness import timing_result

log = logging.getLogger(__name__)

#: rounds when several backends are compared and --rounds is not given
DEFAULT_ROUNDS = 4


def default_rounds(num_backends):
    """DEFAULT_ROUNDS when backends are compared, 1 for one backend (nothing to alternate)."""
    return DEFAULT_ROUNDS if num_backends > 1 else 1


def split_iterations(iters, rounds):
    """Each round's share of `iters` timed calls: as even as possible, larger first; never a
    round of 0 calls (fewer rounds instead)."""
    iters, rounds = int(iters), max(1, min(int(rounds), int(iters)))
    return [iters // rounds + (1 if r < iters % rounds else 0) for r in range(rounds)]


def round_order(backends, round_index):
    """The order of round `round_index` (0-based): as asked, reversed every other round."""
    return list(backends) if round_index % 2 == 0 else list(reversed(backends))


def _joined(parts, key, phase=None):
    """The rounds' samples of one kind, joined; None when a round has none."""
    joined = []
    for part in parts:
        samples = part.get(key)
        if samples is not None and phase is not None:
            samples = samples.get(phase)
        if samples is None:
            return None
        joined.extend(samples)
    return joined


def pool_rounds(parts, requested, stopped, label):
    """One backend's entry from its rounds' entries (`session.bench_backend`'s, status ok):
    the samples pooled and summarized again, `requested` timed calls asked in all, `stopped`
    the signal that cut the run short (or None). One round that ran whole is returned as is."""
    from ..portable.shared.phase_timing import PHASES

    first = parts[0]
    done = sum(p["iterations"] for p in parts)
    if len(parts) == 1 and done == requested and not first.get("interrupted"):
        return dict(first, rounds=1)
    device = _joined(parts, "device_samples_ms") or []
    phases = dict((k, _joined(parts, "phase_samples_ms", k) or []) for k in PHASES)
    interrupted = (stopped or "Ctrl-C") if done < requested else False
    result = timing_result(_joined(parts, "latency_samples_ms"), device, phases,
                           iters=requested, warmup=first["warmup"], batch=first["batch"],
                           buffers=first["buffers"], gc_paused=first["gc_paused"],
                           phase_clock=first.get("phase_clock"),
                           loop_s=sum(p["loop_wall_s"] for p in parts),
                           checked=first["output_check"], interrupted=interrupted, label=label)
    for w in result["warnings"]:
        log.warning("%s", w)
    entry = dict(first)
    entry.update(result)
    entry["rounds"] = len(parts)
    return entry
