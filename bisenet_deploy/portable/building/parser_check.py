"""The real TensorRT ONNX parser as a check: does this TensorRT take this graph?

`bisenet-export onnx` and `bisenet-export check` run it after the rule check (export/check.py)
whenever a TensorRT is importable: full TensorRT first, else TensorRT-RTX (which needs no GPU).
The verdict names the parser (flavour and version) and, on failure, each failing node and the
parser's message. Without any TensorRT, `run_parser_check` returns None and the callers say that
only the rule check ran.

Python 3.6 compatible; TensorRT is imported lazily.
"""

import logging
import time

from .build_checks import describe_parser_errors
from .build_steps import parse_network
from ..trt.capabilities import detect_capabilities
from ..shared.errors import MissingDependencyError
from ..trt.flavours import import_tensorrt
from ..shared.install_hints import doctor_hint, pip_extra
from ..files.onnx_reader import read_onnx_summary
from ..trt.trt_logger import quiet, tensorrt_logger

log = logging.getLogger(__name__)

#: what to tell a user who has no TensorRT at all
NO_PARSER = ("no TensorRT is installed here, so only the rule check ran (`%s` adds "
             "TensorRT-RTX's real parser; it needs no GPU%s)"
             % (pip_extra("rtx"), "; " + doctor_hint() if doctor_hint() else ""))


class ParserVerdict(object):
    """The parser that ran (label like 'TensorRT-RTX 1.7.1', flavour, version string), whether it
    accepted the graph, its errors ([{"node", "node_name", "op", "desc", ...}]) and the time."""

    def __init__(self, label, flavour, version, ok, errors, seconds, nodes=None):
        self.label = label
        self.flavour = flavour
        self.version = version
        self.ok = bool(ok)
        self.errors = list(errors)
        self.seconds = float(seconds)
        self.nodes = nodes

    def details(self):
        """'node 3 '/a/Resize' (Resize): message | ...' (empty when the parser accepted it)."""
        return "" if self.ok else describe_parser_errors(self.errors, self.nodes)

    def summary(self):
        """One line: which parser, and its verdict."""
        if self.ok:
            return "%s ONNX parser: PASS (%.2f s)" % (self.label, self.seconds)
        return "%s ONNX parser: FAIL: %s" % (self.label, self.details())

    def as_dict(self):
        return {"parser": self.label, "flavour": self.flavour, "version": self.version,
                "ok": self.ok, "errors": self.errors}


def run_parser_check(onnx_bytes, onnx_name="model.onnx", trt=None):
    """Parse serialized ONNX with the real TensorRT parser; a ParserVerdict, or None when no
    TensorRT is importable here. Nothing is built."""
    if trt is None:
        try:
            trt = import_tensorrt()
        except MissingDependencyError as exc:
            log.debug("no TensorRT parser: %s", exc)
            return None
    caps = detect_capabilities(trt)
    logger = tensorrt_logger(trt)
    start = time.time()
    # the parser's own error lines are reported in the verdict, once
    with quiet(logger):
        parsed = parse_network(trt, caps, bytes(onnx_bytes), onnx_name, logger)
    seconds = time.time() - start
    nodes = None
    if not parsed.ok:
        try:
            nodes = read_onnx_summary(onnx_bytes, onnx_name)["nodes"]
        except Exception:  # a graph the parser rejects may be one our reader rejects too
            nodes = None
    return ParserVerdict(caps.label, caps.flavour, str(trt.__version__), parsed.ok,
                         parsed.errors, seconds, nodes)
