"""The callable PyTriton binds to each model instance: a gathered batch of requests through one
`Runner`, in pieces of the sizes it takes, one result per request (see `server`)."""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..portable.running.runner_base import Runner
from ..runtime.api import batch_range, pad_batch


def run_in_chunks(runner: Runner, batch: np.ndarray) -> Dict[str, np.ndarray]:
    """One gathered N x ... batch through `runner`, in pieces of the sizes it takes."""
    lo, hi = batch_range(runner)
    if lo <= batch.shape[0] <= hi:
        return runner.infer(np.ascontiguousarray(batch))
    parts: Dict[str, List[np.ndarray]] = {}
    for start in range(0, batch.shape[0], hi):
        piece = np.ascontiguousarray(batch[start:start + hi])
        outputs = runner.infer(pad_batch(runner, piece))
        for name, value in outputs.items():
            parts.setdefault(name, []).append(value[:piece.shape[0]])
    return {name: np.concatenate(values) for name, values in parts.items()}


class InstanceFunction(object):
    """The callable bound to one model instance: PyTriton requests in, one result per request."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self.input_name = runner.input_spec().name
        #: time.monotonic() when the batch now running started, None when idle (liveness)
        self.busy_since: Optional[float] = None

    def __call__(self, requests: Sequence[Any]) -> List[Dict[str, np.ndarray]]:
        arrays = [request[self.input_name] for request in requests]
        batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        self.busy_since = time.monotonic()
        try:
            outputs = run_in_chunks(self.runner, batch)
        finally:
            self.busy_since = None
        results, start = [], 0
        for array in arrays:
            end = start + array.shape[0]
            results.append({name: value[start:end] for name, value in outputs.items()})
            start = end
        return results


def warm_up(runners: Sequence[Runner], batches: Sequence[int]) -> None:
    """One zero batch of each size the batcher forms (1 and the preferred sizes) through every
    runner before the model is served, so the first bursts do not pay for first-run allocations.
    Done here because Triton's own model_warmup hangs PyTriton 0.7's model load."""
    inp = runners[0].input_spec()
    for n in batches:
        batch = np.zeros((n,) + tuple(inp.shape[1:]), dtype=inp.dtype)
        for runner in runners:
            run_in_chunks(runner, batch)


def stuck_instance(instances: Sequence[InstanceFunction], stuck_after_s: float,
                   now: Optional[float] = None) -> Optional[str]:
    """Why the model is not live (a runner busy with one batch for more than `stuck_after_s`:
    hung in its runtime), or None. Served as /v2/health/live by the HTTP front."""
    now = time.monotonic() if now is None else now
    for i, instance in enumerate(instances):
        since = instance.busy_since
        if since is not None and now - since > stuck_after_s:
            return (f"instance {i} ({instance.runner.describe()}) has been running one batch for "
                    f"{now - since:.0f} s (more than {stuck_after_s:g} s): it is stuck")
    return None
