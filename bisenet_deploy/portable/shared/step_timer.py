"""Times the named steps of a long job (an engine build, an export) and logs each one.

One timer for both jobs, so their logs and step lists read the same: `with timer.step(name):`
around a block, or `timer.run(name, func, *args)`; `timer.done` is the list of (name, seconds).
A step that raises is not recorded (the error says what happened). Each step boundary also
raises a Ctrl-C/SIGTERM that a library swallowed (portable.shared.interrupts).

Python 3.6 compatible; pure.
"""

import contextlib
import logging
import time

from .interrupts import raise_if_interrupted


class StepTimer(object):
    """Times and logs steps to `logger` (the caller's); `announce` also logs each step's start,
    for steps that may take minutes (an engine build)."""

    def __init__(self, logger=None, announce=False, bar=None):
        self.log = logger or logging.getLogger(__name__)
        self.announce = bool(announce)
        self.done = []  # [(step name, seconds)]
        #: a progress bar (tqdm-like: set_postfix_str, update) counting the steps, or None
        self.bar = bar

    @contextlib.contextmanager
    def step(self, name):
        raise_if_interrupted()
        if self.announce:
            self.log.info("%s ...", name)
        if self.bar is not None:
            self.bar.set_postfix_str(name)
        start = time.perf_counter()
        yield
        raise_if_interrupted()
        took = time.perf_counter() - start
        self.done.append((name, took))
        self.log.info("%-18s %7.2f s", name, took)
        if self.bar is not None:
            self.bar.update(1)

    def run(self, name, func, *args, **kwargs):
        """func(*args, **kwargs), timed as the step `name`; returns its result."""
        with self.step(name):
            return func(*args, **kwargs)

    def total(self):
        return sum(seconds for _, seconds in self.done)
