"""The precision policy: which precision may be built where, decided before any build work starts.

Users ask for FP16 or INT8 expecting speed; on some GPUs they get the opposite or garbage, and they
learn it only after a long build. So the rules are checked up front from the GPU's compute
capability, the TensorRT version and the ONNX's own precision, and the answer says why:

- FP16 on a GPU without fast FP16 (SM 6.1, e.g. GTX 1080 Ti: 1/64 rate) builds, with a warning that
  the engine will be slower than FP32.
- INT8 on a GPU without fast INT8 (no DP4A: Jetson TX2 SM 6.2, P100 SM 6.0, Maxwell) is refused.
- TensorRT 11 and TensorRT-RTX have no precision flags: networks are strongly typed and build what
  the ONNX carries, so `--fp16` needs the FP16 ONNX (`bisenet-export onnx --target trt11
  --precision fp16`), and INT8 calibration does not exist there.
- INT8 from a Q/DQ ONNX (`bisenet-export onnx --precision int8`, explicit quantization) builds on
  8.6/10 (INT8 flag, no calibrator) and 11/TensorRT-RTX (strongly typed); the engine's precision
  is `int8-qdq`. Implicit calibration of an FP32 graph stays for 8.2-8.6 only (deprecated 10.1).

Which of these rules apply is read from the capabilities object (capabilities.py), never from a
version number.

Python 3.6 compatible; pure (no TensorRT).
"""

from .capabilities import TRT11_FP16_EXPORT, as_capabilities
from ..shared.errors import InputError, MissingDependencyError
from .flavours import RTX

PRECISIONS = ("fp32", "fp16", "int8")
#: the precision an engine built from a Q/DQ ONNX (explicit quantization) records in its sidecar
INT8_QDQ = "int8-qdq"
QDQ_EXPORT = "bisenet-export onnx --precision int8 --calib-images DIR"

TRT11_FP32_EXPORT = "bisenet-export onnx --target trt11 --precision fp32"


def parse_compute_capability(value):
    """'6.1', '61', 'sm61', 'sm_61', (6, 1) or 6.1 -> (6, 1)."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return int(value[0]), int(value[1])
    text = str(value).strip().lower()
    for prefix in ("sm_", "sm", "compute_"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    try:
        if "." in text:
            major, minor = text.split(".", 1)
            return int(major), int(minor)
        if len(text) >= 2 and text.isdigit():
            return int(text[:-1]), int(text[-1])
    except ValueError:
        pass
    raise InputError("%r is not a compute capability (expected e.g. 6.1, 8.6 or sm86)" % (value,))


def format_compute_capability(value):
    major, minor = parse_compute_capability(value)
    return "%d.%d" % (major, minor)


def onnx_graph_precision(record):
    """The precision of the ONNX graph itself ('fp32'/'fp16'), from its metadata record, or None.

    `export.precision` records the precision the user exported FOR; only the trt11 target turns
    that into an FP16 graph (its engines have no precision flags). Every other target exports an
    FP32 graph and leaves FP16 to the builder flag.
    """
    if not record or "export" not in record:
        return None
    export = record["export"]
    if export.get("precision") == "fp16" and export.get("target") == "trt11":
        return "fp16"
    if export.get("precision") == "int8":
        return "int8"  # a Q/DQ graph (explicit quantization) on every target
    return "fp32"


def default_precision(record):
    """What to build when the user gives no precision: what the ONNX was exported for."""
    if record and "export" in record and record["export"].get("precision") in PRECISIONS:
        return record["export"]["precision"]
    return "fp32"


def has_fast_fp16(cc):
    """Full-rate (or faster) FP16 arithmetic: Tegra X1/X2 (5.3, 6.2), P100 (6.0), Volta and newer.

    Consumer Pascal (6.1) and Maxwell desktop parts run FP16 at a small fraction of FP32.
    """
    cc = parse_compute_capability(cc)
    return cc in ((5, 3), (6, 0), (6, 2)) or cc >= (7, 0)


def has_fast_int8(cc):
    """Fast INT8 (DP4A or tensor cores): SM 6.1 and 7.0+. Not 6.0, not 6.2 (TX2), not Maxwell."""
    cc = parse_compute_capability(cc)
    return cc == (6, 1) or cc >= (7, 0)


class PrecisionDecision(object):
    """What the builder does for the requested precision, and what to tell the user.

    flags: BuilderFlag member names to set ("FP16", "INT8"); strongly_typed: create the network
    strongly typed (its types come from the ONNX); needs_calibrator: an INT8 calibrator must be
    attached; warnings/notes: messages for the log (warnings deserve the user's attention).
    """

    def __init__(self, precision, flags, strongly_typed, needs_calibrator, warnings, notes):
        self.precision = precision
        self.flags = list(flags)
        self.strongly_typed = bool(strongly_typed)
        self.needs_calibrator = bool(needs_calibrator)
        self.warnings = list(warnings)
        self.notes = list(notes)

    def as_dict(self):
        return {"precision": self.precision, "flags": list(self.flags),
                "strongly_typed": self.strongly_typed, "needs_calibrator": self.needs_calibrator,
                "warnings": list(self.warnings), "notes": list(self.notes)}

    def __repr__(self):
        return "PrecisionDecision(%r)" % (self.as_dict(),)


def decide_precision(precision, compute_capability, capabilities, onnx_precision=None,
                     platform_fast_fp16=None, platform_fast_int8=None):
    """Check `precision` against the GPU and TensorRT, return a PrecisionDecision or raise.

    capabilities: the TensorRTCapabilities of the TensorRT that builds (a full-TensorRT version
    string is accepted and read as that version's documented capabilities). onnx_precision: the
    ONNX's own precision from its metadata record ("fp32"/"fp16"), None if unknown.
    compute_capability None: the GPU is unknown (or absent: TensorRT-RTX builds without one) and
    only TensorRT's rules are checked. platform_fast_*: the builder's own answer where it has
    one (8.2-10.x); it overrides the compute-capability table.
    Raises InputError (exit 2) for a precision this ONNX, TensorRT or GPU cannot give (the user
    picks another), MissingDependencyError (exit 4) for a GPU this TensorRT does not support.
    """
    if precision not in PRECISIONS:
        raise InputError("precision must be one of %s, got %r" % (", ".join(PRECISIONS), precision))
    if onnx_precision not in (None, "fp32", "fp16", "int8"):
        raise InputError("the ONNX metadata gives an unknown precision %r" % (onnx_precision,))
    caps = as_capabilities(capabilities)
    trt = caps.label
    warnings = []
    notes = []
    if compute_capability is None:
        # a trtexec line printed for another machine, or an ahead-of-time TensorRT-RTX build
        notes.append("GPU unknown (none here, or a command for another machine): its FP16/INT8 "
                     "speed was not checked")
        cc = None
        sm = "unknown GPU"
        fast_fp16 = True if platform_fast_fp16 is None else bool(platform_fast_fp16)
        fast_int8 = True if platform_fast_int8 is None else bool(platform_fast_int8)
    else:
        cc = parse_compute_capability(compute_capability)
        sm = "SM %d.%d" % cc
        fast_fp16 = has_fast_fp16(cc) if platform_fast_fp16 is None else bool(platform_fast_fp16)
        fast_int8 = has_fast_int8(cc) if platform_fast_int8 is None else bool(platform_fast_int8)

    lowest = caps.min_compute_capability
    if lowest is not None and cc is not None and cc < lowest:
        raise MissingDependencyError("%s does not support GPUs below SM %d.%d and this one is %s: use "
                                     "TensorRT 8.6 (the last version for Pascal/Maxwell)"
                                     % (trt, lowest[0], lowest[1], sm))

    if onnx_precision == "int8":
        return _decide_qdq(precision, fast_int8, fast_fp16, sm, caps, warnings, notes)

    if caps.strong_typing == "always":
        return _decide_strongly_typed(precision, onnx_precision, fast_fp16, sm, caps, warnings,
                                      notes)

    if onnx_precision == "fp16":
        if precision == "fp32":
            raise InputError("this ONNX is an FP16 graph (exported with --precision fp16) but an "
                             "FP32 engine was asked for: build it with --fp16, or build the FP32 "
                             "ONNX (`bisenet-export onnx --precision fp32`)")
        if precision == "int8":
            raise InputError("INT8 calibration needs the FP32 ONNX, this one is FP16: export with "
                             "--precision fp32")
        if not fast_fp16:
            warnings.append(_slow_fp16_warning(sm))
        if caps.strong_typing == "optional":
            notes.append("FP16 ONNX: building a strongly typed network, the ONNX's own types "
                         "decide each layer's precision")
            return PrecisionDecision("fp16", [], True, False, warnings, notes)
        notes.append("FP16 ONNX on %s: building with the FP16 flag" % trt)
        return PrecisionDecision("fp16", ["FP16"], False, False, warnings, notes)

    if precision == "fp32":
        notes.append("FP32 engine: no reduced-precision flags")
        return PrecisionDecision("fp32", [], False, False, warnings, notes)

    if precision == "fp16":
        if not fast_fp16:
            warnings.append(_slow_fp16_warning(sm))
        notes.append("FP16 flag set: TensorRT may run each layer in FP16 or FP32, whichever is "
                     "faster")
        return PrecisionDecision("fp16", ["FP16"], False, False, warnings, notes)

    # INT8
    if not fast_int8:
        raise InputError("INT8 refused: this GPU (%s) has no fast INT8 (no DP4A/tensor cores), an "
                         "INT8 engine would be slower than FP16 and less accurate; build --fp16%s"
                         % (sm, "" if fast_fp16 else " or --fp32"))
    flags = ["INT8"]
    if fast_fp16:
        flags.append("FP16")
        notes.append("INT8 with FP16 fallback: layers TensorRT cannot quantize run in FP16")
    else:
        notes.append("INT8 with FP32 fallback: this GPU (%s) has no fast FP16" % sm)
    if caps.export_target not in ("trt8.2", "trt8.6"):
        raise InputError("%s: implicit INT8 calibration is deprecated from TensorRT 10.1 and gone "
                         "in 11; build INT8 from a Q/DQ ONNX instead: `%s`, then build that file"
                         % (trt, QDQ_EXPORT))
    return PrecisionDecision("int8", flags, False, True, warnings, notes)


def _decide_qdq(precision, fast_int8, fast_fp16, sm, caps, warnings, notes):
    """A Q/DQ ONNX (explicit quantization): TensorRT takes the scales from the graph, no
    calibrator; 8.x/10.x need the INT8 flag, 11 and TensorRT-RTX build it strongly typed."""
    trt = caps.label
    if precision != "int8":
        raise InputError("this ONNX is an INT8 Q/DQ graph (exported with --precision int8): "
                         "build it with --int8 or no precision option; for %s export the ONNX "
                         "again with --precision %s" % (precision.upper(), precision))
    if not fast_int8:
        raise InputError("INT8 refused: this GPU (%s) has no fast INT8 (no DP4A/tensor cores); "
                         "export with --precision fp16 or fp32 instead" % sm)
    if caps.strong_typing == "always":
        notes.append("%s: strongly typed network, INT8 where the ONNX's Q/DQ nodes put it, the "
                     "rest in the graph's own float types" % trt)
        if caps.flavour == RTX:
            warnings.append("%s lists INT8 only as weight-only GEMM: its build plans INT8 "
                            "convolutions for the Q/DQ graph, but their kernels are made on the "
                            "GPU when the engine first loads and their speed is not measured "
                            "(docs/int8.md); FP16 is its documented fast path for a CNN" % trt)
        return PrecisionDecision(INT8_QDQ, [], True, False, warnings, notes)
    flags = ["INT8"]
    if fast_fp16:
        flags.append("FP16")
    notes.append("Q/DQ ONNX: explicit quantization (scales from the graph, no calibrator), "
                 "INT8 flag%s" % (" + FP16 for the float layers" if fast_fp16 else ""))
    return PrecisionDecision(INT8_QDQ, flags, False, False, warnings, notes)


def _slow_fp16_warning(sm):
    return ("this GPU (%s) has no fast FP16 (e.g. GTX 1080 Ti runs FP16 at 1/64 of FP32): the FP16 "
            "engine will be SLOWER than FP32; build --fp32 for speed" % sm)


def _decide_strongly_typed(precision, onnx_precision, fast_fp16, sm, caps, warnings, notes):
    """TensorRT 11 and TensorRT-RTX: the engine has exactly the precision the ONNX carries."""
    trt = caps.label
    if precision == "int8":
        if caps.flavour == RTX:
            raise InputError("%s has no INT8 calibration: it builds INT8 only from Q/DQ nodes in "
                             "the ONNX: `%s`, then build that file" % (trt, QDQ_EXPORT))
        raise InputError("%s removed INT8 calibration (and all precision flags): INT8 comes "
                         "from Q/DQ nodes in the ONNX: `%s`, then build that file"
                         % (trt, QDQ_EXPORT))
    if onnx_precision is None:
        raise InputError("%s builds exactly the precision the ONNX carries, and this ONNX has no "
                         "bisenet_deploy metadata saying which: export it with `%s` for FP16 or "
                         "`%s` for FP32" % (trt, TRT11_FP16_EXPORT, TRT11_FP32_EXPORT))
    if precision == "fp16" and onnx_precision != "fp16":
        raise InputError("%s has no FP16 flag: an FP16 engine needs the FP16 ONNX; this ONNX is "
                         "FP32. Export it with `%s` and build that file"
                         % (trt, TRT11_FP16_EXPORT))
    if precision == "fp32" and onnx_precision != "fp32":
        raise InputError("%s builds what the ONNX carries and this ONNX is FP16: build it with "
                         "--fp16, or export the FP32 ONNX with `%s`" % (trt, TRT11_FP32_EXPORT))
    if precision == "fp16" and not fast_fp16:
        warnings.append(_slow_fp16_warning(sm))
    notes.append("%s: strongly typed network, no precision flags; the ONNX is %s"
                 % (trt, onnx_precision.upper()))
    return PrecisionDecision(precision, [], True, False, warnings, notes)
