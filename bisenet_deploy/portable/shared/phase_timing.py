"""One inference call split into host->device copy, compute and device->host copy, on the GPU.

Four CUDA events are recorded on the stream that runs the call: before the input copy, after it,
after the compute (the engine or network, in-graph resizes and argmax included) and after the
output copy. The GPU timestamps them as it reaches them, so the differences are the device time
of each phase, not the host's view of it (which would include launch latency and Python).

`PhaseEvents` works for pycuda and PyTorch events alike: the caller says how to make an event and
how to read the milliseconds between two of them (pycuda: ``later.time_since(earlier)``; torch:
``earlier.elapsed_time(later)``). Read the times only after the stream was synchronized.

Python 3.6 compatible; imports nothing from CUDA itself.
"""

#: the three phases of one call, in order
PHASES = ("h2d", "compute", "d2h")
#: the four marks between them: START before the input copy, ... , D2H_DONE after the output copy
START, H2D_DONE, COMPUTE_DONE, D2H_DONE = range(4)

#: how the phase times were measured, for reports
CUDA_EVENTS = "cuda-events"
HOST_CLOCK = "host-clock"


class PhaseEvents(object):
    """Four events recorded around the copies and the compute of one call."""

    def __init__(self, make_event, elapsed_ms):
        self._events = [make_event() for _ in range(4)]
        self._elapsed_ms = elapsed_ms

    def record(self, mark, *stream):
        """Record mark START, H2D_DONE, COMPUTE_DONE or D2H_DONE (on `stream` where given)."""
        self._events[mark].record(*stream)

    def synchronize(self):
        """Wait for the last mark (for libraries whose copy back does not synchronize)."""
        self._events[D2H_DONE].synchronize()

    def times_ms(self):
        """{"h2d": ms, "compute": ms, "d2h": ms} between the recorded marks."""
        e = self._events
        return dict((name, float(self._elapsed_ms(e[i], e[i + 1])))
                    for i, name in enumerate(PHASES))


def pycuda_phase_events(cuda):
    """PhaseEvents made of pycuda events (`cuda` is `pycuda.driver`)."""
    return PhaseEvents(cuda.Event, lambda earlier, later: later.time_since(earlier))


def torch_phase_events(torch):
    """PhaseEvents made of timing-enabled `torch.cuda.Event`s."""
    return PhaseEvents(lambda: torch.cuda.Event(enable_timing=True),
                       lambda earlier, later: earlier.elapsed_time(later))


def host_phases(t0, t1, t2, t3):
    """Phase times from four host clock readings in seconds (libraries without device events)."""
    return {"h2d": (t1 - t0) * 1e3, "compute": (t2 - t1) * 1e3, "d2h": (t3 - t2) * 1e3}
