"""One TensorRT logger per process and library, forwarding TensorRT's messages to Python logging.

TensorRT keeps the first logger a process gives it (Builder, Runtime, OnnxParser) and ignores
later ones with a warning, so a new `trt.Logger` per call loses `--verbose` on every build after
the first. Here each TensorRT library (full TensorRT and TensorRT-RTX are separate libraries)
gets one logger for the life of the process; `verbose` only moves its threshold.

Where the module lets Python subclass `ILogger` (every TensorRT this toolkit supports), messages
go to this module's Python logger: errors and warnings as such, TensorRT's INFO and VERBOSE lines
only with `verbose`. `quiet(...)` turns messages containing given fragments into debug lines for
the duration of a step that expects them (e.g. a parse check that reports the errors itself);
`capture(...)` keeps messages with a given prefix whatever their severity (a build's layer list);
`errors(...)` keeps the error lines of a step, so the error raised when the step fails can quote
TensorRT's own words (engine_load.engine_from_bytes). Otherwise (test doubles) a plain
`trt.Logger` is used with its severity threshold moved (it keeps nothing).

Python 3.6 compatible; TensorRT is never imported here (the module is passed in).
"""

import contextlib
import logging

log = logging.getLogger(__name__)

#: id(module) -> (module, logger); the module is kept so its id is never reused
_LOGGERS = {}

_LEVELS = (("INTERNAL_ERROR", logging.ERROR), ("ERROR", logging.ERROR),
           ("WARNING", logging.WARNING), ("INFO", logging.INFO), ("VERBOSE", logging.DEBUG))


def _severity_name(severity):
    name = getattr(severity, "name", None)
    if not isinstance(name, str):
        name = str(severity).split(".")[-1]
    return name.upper()


def _python_level(severity, verbose):
    """The logging level for a TensorRT severity; None drops the message."""
    name = _severity_name(severity)
    for prefix, level in _LEVELS:
        if name == prefix:
            if level <= logging.INFO and not verbose:
                return None if level < logging.INFO else logging.DEBUG
            return level
    return logging.DEBUG


def _forwarding_logger(trt):
    """An instance of a trt.ILogger subclass (made at run time: trt exists only then)."""

    class ForwardingLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.verbose = False
            self.quiet_fragments = []
            self.captures = []  # (prefix, list): messages kept whatever their severity
            self.error_sinks = []  # lists that keep the ERROR/INTERNAL_ERROR messages

        def log(self, severity, msg):  # called by TensorRT, possibly from its own threads
            text = str(msg)
            for prefix, sink in self.captures:
                if text.startswith(prefix):
                    sink.append(text)
            if self.error_sinks and _python_level(severity, True) == logging.ERROR:
                for sink in self.error_sinks:
                    sink.append(text)
            level = _python_level(severity, self.verbose)
            if level is None:
                return
            if level > logging.DEBUG and any(f in text for f in self.quiet_fragments):
                level = logging.DEBUG
            log.log(level, "TensorRT: %s", text)

    return ForwardingLogger()


def tensorrt_logger(trt, verbose=None):
    """The process's one logger for the TensorRT library `trt`. `verbose` (when not None) sets
    whether TensorRT's INFO/VERBOSE lines are shown from now on."""
    key = id(trt)
    if key not in _LOGGERS:
        if hasattr(trt, "ILogger"):
            logger = _forwarding_logger(trt)
        else:
            logger = trt.Logger(trt.Logger.WARNING)
        if hasattr(trt, "init_libnvinfer_plugins"):  # the standard plugins, registered once
            trt.init_libnvinfer_plugins(logger, "")
        _LOGGERS[key] = (trt, logger)
    logger = _LOGGERS[key][1]
    if verbose is not None:
        set_verbose(trt, logger, verbose)
    return logger


def set_verbose(trt, logger, verbose):
    if hasattr(logger, "quiet_fragments"):
        logger.verbose = bool(verbose)
    elif hasattr(logger, "min_severity"):
        logger.min_severity = trt.Logger.VERBOSE if verbose else trt.Logger.WARNING


@contextlib.contextmanager
def _collecting(logger, attribute, entry, found):
    """Register `entry` in the logger's list `attribute` for the block; yields `found`. A logger
    without the list (test doubles, a plain trt.Logger) collects nothing."""
    sinks = getattr(logger, attribute, None)
    if sinks is not None:
        sinks.append(entry)
    try:
        yield found
    finally:
        if sinks is not None:  # by identity: two empty lists of nested blocks are equal
            sinks[:] = [e for e in sinks if e is not entry]


def capture(logger, prefix):
    """Within the block, collect every TensorRT message that starts with `prefix`, shown or not
    (e.g. the layer list a build logs at VERBOSE severity); yields the list. A logger that cannot
    capture (test doubles) yields an empty list."""
    found = []
    return _collecting(logger, "captures", (prefix, found), found)


def errors(logger):
    """Within the block, keep TensorRT's error messages (still logged as usual); yields the list.
    A logger that cannot keep them (test doubles) yields an empty list."""
    found = []
    return _collecting(logger, "error_sinks", found, found)


def quote(messages, limit=3):
    """'; TensorRT said: "..."; "..."' for the last `limit` messages, '' for none: the tail of a
    one-line error."""
    kept = [" ".join(str(m).split()) for m in messages if str(m).strip()][-limit:]
    if not kept:
        return ""
    return "; TensorRT said: " + "; ".join('"%s"' % m for m in kept)


@contextlib.contextmanager
def quiet(logger, *fragments):
    """Within the block, TensorRT messages containing any of `fragments` (every message when none
    is given) are debug lines only."""
    saved = list(getattr(logger, "quiet_fragments", []))
    if hasattr(logger, "quiet_fragments"):
        logger.quiet_fragments = saved + (list(fragments) or [""])
    try:
        yield logger
    finally:
        if hasattr(logger, "quiet_fragments"):
            logger.quiet_fragments = saved
