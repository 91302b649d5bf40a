"""Fake runners and a fake clock for the benchmark tests (no model, no wall clock).

Their records come from support/records.py (`bench_record`)."""

import numpy as np

from bisenet_deploy.portable.shared.interrupts import Terminated
from bisenet_deploy.portable.running.runner_base import Runner, TensorSpec

NUM_CLASSES = 5


class SimulatedCtrlC(KeyboardInterrupt):
    """The Ctrl-C a fake runner 'receives'. The code under test must catch it like a real one;
    one that escapes fails its test (conftest) instead of stopping the whole pytest run."""

    simulated = True


class SimulatedSigterm(Terminated):
    """SIGTERM as run_cli's handler raises it (interrupts.Terminated), simulated."""

    simulated = True


class FakeClock(object):
    """A clock in seconds that only moves when a runner says its call took some time."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def advance_ms(self, ms):
        self.now += ms / 1000.0


class FakeRunner(Runner):
    """A runner whose i-th call 'takes' latencies[i % len] ms on the fake clock.

    `mode`: "ok" (valid labels), "nan" (NaN logits), "range" (labels >= num_classes).
    `phases_ms`: per-call {"h2d", "compute", "d2h"} dicts, as a GPU runner reports them.
    `interrupt_at`: the call (0-based, warm-up included) at which Ctrl-C is pressed (SIGTERM
    arrives with `interrupt=SimulatedSigterm`).
    Records every input array it was given (`seen`) and lifecycle calls.
    """

    backend = "fake"

    def __init__(self, record, latencies_ms=(1.0,), clock=None, mode="ok", device_ms=None,
                 name="fake", phases_ms=None, interrupt_at=None, phase_clock="cuda-events",
                 interrupt=SimulatedCtrlC):
        Runner.__init__(self)
        self.metadata = record
        self.backend = name
        self.latencies = list(latencies_ms)
        self.clock = clock
        self.mode = mode
        self.device = device_ms
        self.phases = phases_ms
        self.phase_clock = phase_clock if phases_ms else None
        self.interrupt_at = interrupt_at
        self.interrupt = interrupt
        self.calls = 0
        self.seen = []
        self.events = []

    def describe(self):
        return "%s (fake, cpu)" % self.backend

    def input_spec(self):
        w, h = self.metadata["export"]["input_size"]
        b = self.metadata["export"]["batch"]
        n = -1 if b["dynamic"] else b["size"]
        return TensorSpec("image", (n, 3, h, w), self.metadata["export"]["input_dtype"])

    def output_specs(self):
        w, h = self.metadata["export"]["input_size"]
        specs = []
        for name in self.metadata["export"]["output_names"]:
            if name == "labels":
                specs.append(TensorSpec("labels", (-1, h, w), np.int32))
            else:
                specs.append(TensorSpec("logits", (-1, NUM_CLASSES, h, w), np.float32))
        return specs

    def _activate(self):
        self.events.append("activate")

    def _deactivate(self):
        self.events.append("deactivate")

    def _infer(self, batch):
        if self.calls == self.interrupt_at:
            raise self.interrupt()
        if self.clock is not None:
            self.clock.advance_ms(self.latencies[self.calls % len(self.latencies)])
        self.calls += 1
        self.seen.append(batch)
        n, _, h, w = batch.shape
        out = {}
        for name in self.metadata["export"]["output_names"]:
            if name == "labels":
                labels = (np.arange(h * w).reshape(h, w) % NUM_CLASSES).astype(np.int32)
                if self.mode == "range":
                    labels[0, 0] = NUM_CLASSES + 3
                out["labels"] = np.broadcast_to(labels, (n, h, w)).copy()
            else:
                logits = np.zeros((n, NUM_CLASSES, h, w), np.float32)
                if self.mode == "nan":
                    logits[0, 1, 2, 3] = np.nan
                out["logits"] = logits
        return out

    def last_device_time_ms(self):
        if self.device is None:
            return None
        return self.device[(self.calls - 1) % len(self.device)]

    def last_phase_times_ms(self):
        if self.phases is None:
            return None
        return dict(self.phases[(self.calls - 1) % len(self.phases)])
