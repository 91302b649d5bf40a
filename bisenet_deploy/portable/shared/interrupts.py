"""A Ctrl-C or SIGTERM that stays caught until the job stops.

Python raises KeyboardInterrupt wherever the signal lands. Library code that catches everything
(a bare `except:` around an optional import, an exporter that wraps any error in its own) can
swallow it, and the job would go on as if nothing happened. The handlers installed here remember
the signal, and `raise_if_interrupted()`, called at every step boundary of a long job (the
StepTimer does), raises it again.

Python 3.6 compatible; pure.
"""

import signal


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every `finally`/`except BaseException` clean-up runs."""


_received = []  # signal numbers since install()

#: how a report names what stopped it, and the exit code a shell gives it (128 + the signal)
CTRL_C, SIGTERM = "Ctrl-C", "SIGTERM"
EXIT_CODES = {CTRL_C: 128 + signal.SIGINT, SIGTERM: 128 + signal.SIGTERM}


def signal_name(exc):
    """CTRL_C or SIGTERM: which signal the KeyboardInterrupt `exc` stands for."""
    return SIGTERM if isinstance(exc, Terminated) else CTRL_C


def _interrupt(signum):
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _remember_and_raise(signum, frame):
    _received.append(signum)
    raise _interrupt(signum)


def install():
    """Handle SIGINT and SIGTERM here; returns what to give `restore`. A signal the parent set to
    be ignored (a background job of a script ignores Ctrl-C) stays ignored. Outside the main thread
    (where Python refuses signal handlers) nothing changes and None is returned."""
    del _received[:]
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) != signal.SIG_IGN:
                previous[sig] = signal.signal(sig, _remember_and_raise)
    except ValueError:
        return None
    return previous


def restore(previous):
    """Put back the handlers `install` replaced and forget the signals received."""
    del _received[:]
    for sig, handler in (previous or {}).items():
        signal.signal(sig, handler)


def raise_if_interrupted():
    """Raise the interrupt a library swallowed, if a signal came since install()."""
    if _received:
        raise _interrupt(signal.SIGTERM if signal.SIGTERM in _received else _received[-1])
