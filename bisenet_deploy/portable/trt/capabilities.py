"""What the TensorRT at hand can do: ONE object, built once, that every rule reads.

The precision policy, the uint8-input rule, the export target a build expects, the parser's opset
ceiling, whether a GPU is needed to build, the timing and runtime caches: each follows from the
TensorRT's features (feature tests on the module and its builder objects, trt_api.py) plus its
flavour (full TensorRT or TensorRT-RTX, flavours.py). Version numbers are not compared here, since
TensorRT-RTX 1.7 is not "older than 8.2", except for two documented facts of full TensorRT that
no attribute shows (10.x needs SM >= 7.0; 10.1 deprecated implicit INT8 calibration).

`detect_capabilities(trt)` reads an imported module; `assumed_capabilities(version)` stands in
for a machine we cannot inspect (the trtexec line for another GPU), from the documented API
history of that version (trt_api.features_for_version).

Python 3.6 compatible; pure (no TensorRT import).
"""

import numpy as np

from ..shared.errors import InputError
from .flavours import FULL, RTX, check_flavour, flavour_label, flavour_of
from .trt_api import BuilderFeatures, detect_features, features_for_version, parse_version, \
    version_string

#: the compute capabilities TensorRT-RTX's default ("portable") engine runs on; Turing (7.5)
#: needs an explicit target (docs/tensorrt-rtx.md)
RTX_PORTABLE_TARGETS = ((8, 0), (8, 6), (8, 9), (12, 0), (12, 1))
#: what TensorRT-RTX 1.x can target at all, for when no module is at hand
RTX_KNOWN_TARGETS = ((7, 5),) + RTX_PORTABLE_TARGETS

#: numpy dtypes every TensorRT exchanges at its I/O; UINT8 and INT64 are features
_BASE_DTYPES = ("float32", "float16", "int8", "int32", "bool")

TRT11_FP16_EXPORT = "bisenet-export onnx --target trt11 --precision fp16"


def format_targets(targets):
    """((8, 6), (12, 0)) -> 'SM 8.6, 12.0'."""
    return "SM " + ", ".join("%d.%d" % tuple(t) for t in targets)


class TensorRTCapabilities(object):
    """The TensorRT in front of us, and every rule that follows from it.

    flavour: "tensorrt" | "tensorrt-rtx"; version: the module's version tuple; features: a
    trt_api.BuilderFeatures; compute_targets: the GPUs an ahead-of-time build can target (tuples),
    None where the build targets the GPU it runs on (full TensorRT).
    """

    def __init__(self, flavour, version, features, compute_targets=None, source="detected"):
        self.flavour = check_flavour(flavour)
        self.version = parse_version(version)
        self.features = features
        self.compute_targets = tuple(compute_targets) if compute_targets else None
        self.source = source

    # -- identity ----------------------------------------------------------------------------
    @property
    def label(self):
        """'TensorRT 10.13.0' / 'TensorRT-RTX 1.7.1'."""
        return "%s %s" % (flavour_label(self.flavour), version_string(self.version))

    @property
    def generation(self):
        return self.features.generation

    # -- rules -------------------------------------------------------------------------------
    @property
    def strong_typing(self):
        """'always' (no precision flags: TensorRT 11, TensorRT-RTX), 'optional' (the
        STRONGLY_TYPED network flag next to precision flags: 10.x) or 'never' (8.x)."""
        if not self.features.precision_flags:
            return "always"
        return "optional" if self.features.strongly_typed_flag else "never"

    @property
    def export_target(self):
        """The `bisenet-export onnx --target` whose rules this TensorRT parses and builds."""
        if not self.features.precision_flags:
            return "trt11"        # strongly typed only: FP16 must come from the graph
        if self.generation == "8.2-8.4":
            return "trt8.2"
        if not self.features.int64_io:
            return "trt8.6"
        return "trt10"

    @property
    def max_opset(self):
        """The parser's highest ONNX opset where it is lower than any target's (8.2-8.4: 13)."""
        return 13 if self.generation == "8.2-8.4" else None

    @property
    def io_dtypes(self):
        """numpy dtype names this TensorRT exchanges at a network's inputs/outputs."""
        names = list(_BASE_DTYPES)
        if self.features.uint8_io:
            names.append("uint8")
        if self.features.int64_io:
            names.append("int64")
        return names

    @property
    def int8_calibration(self):
        return bool(self.features.int8_calibrator)

    @property
    def int8_calibration_deprecated(self):
        return self.flavour == FULL and self.int8_calibration and self.version[:2] >= (10, 1)

    @property
    def builds_without_gpu(self):
        """Ahead-of-time builds for a list of compute capabilities (TensorRT-RTX)."""
        return bool(self.features.compute_targets)

    @property
    def portable_targets(self):
        """The targets of a build without --compute-capability (TensorRT-RTX), else None."""
        if not self.builds_without_gpu:
            return None
        return tuple(t for t in RTX_PORTABLE_TARGETS if t in (self.compute_targets or ()))

    @property
    def timing_cache(self):
        """TensorRT-RTX accepts the timing-cache calls but ignores them (and an AOT build must not
        touch a GPU), so only full TensorRT keeps one."""
        return bool(self.features.timing_cache) and self.flavour != RTX

    @property
    def runtime_cache(self):
        """Kernels compiled when an engine is loaded can be cached on disk (TensorRT-RTX)."""
        return bool(self.features.runtime_cache)

    @property
    def min_compute_capability(self):
        """Full TensorRT 10 and newer dropped Pascal and Maxwell (SM < 7.0)."""
        if self.flavour == FULL and self.version[0] >= 10:
            return (7, 0)
        return None

    def check_io_dtype(self, dtype, fix=""):
        """Refuse an I/O dtype this TensorRT does not have, saying what to do."""
        name = np.dtype(dtype).name
        if name in self.io_dtypes:
            return
        hint = fix
        if not hint and name == "uint8":
            hint = ("TensorRT before 8.5 (JetPack 4.6 / TX2) has no UINT8: re-export with "
                    "`bisenet-export onnx --target trt8.2` (float32 input)")
        elif not hint and name == "int64":
            hint = "re-export with an INT32 output (a Cast after ArgMax)"
        raise InputError("%s cannot exchange %s tensors%s" % (self.label, name,
                                                              "; " + hint if hint else ""))

    def as_dict(self):
        """What a sidecar or report records."""
        return {"flavour": self.flavour, "version": version_string(self.version, 4),
                "api_generation": self.generation, "strong_typing": self.strong_typing,
                "export_target": self.export_target, "builds_without_gpu": self.builds_without_gpu,
                "io_dtypes": self.io_dtypes, "source": self.source}

    def __repr__(self):
        return "TensorRTCapabilities(%s, %s)" % (self.label, self.features)


def _rtx_targets(trt):
    """(major, minor) of every `ComputeCapability.SMxy` member the module offers."""
    found = []
    members = getattr(trt.ComputeCapability, "__members__", None) or dict(
        (n, None) for n in dir(trt.ComputeCapability) if n.startswith("SM"))
    for name in members:
        digits = name[2:]
        if name.startswith("SM") and digits.isdigit() and len(digits) >= 2:
            found.append((int(digits[:-1]), int(digits[-1])))
    return tuple(sorted(found))


def detect_capabilities(trt, builder=None, config=None):
    """The capabilities of an imported TensorRT module (and, when given, its real builder and
    builder config, which are tested instead of the classes)."""
    features = detect_features(trt, builder, config)
    targets = _rtx_targets(trt) if features.compute_targets else None
    return TensorRTCapabilities(flavour_of(trt), trt.__version__, features, targets)


def assumed_capabilities(version, flavour=FULL):
    """Capabilities of a TensorRT we cannot import here, from its documented API history."""
    if check_flavour(flavour) == RTX:
        # TensorRT-RTX 1.x: TensorRT 10's API without precision flags and calibration
        features = BuilderFeatures(
            generation="11", strongly_typed_flag=True, memory_pool_api=True,
            optimization_level=True, profiling_verbosity=True, timing_cache=True,
            engine_inspector=True, parser_node_name=True, tf32_flag=True, uint8_io=True,
            int64_io=True, compute_targets=True, runtime_cache=True)
        return TensorRTCapabilities(RTX, version, features, RTX_KNOWN_TARGETS, source="assumed")
    return TensorRTCapabilities(FULL, version, features_for_version(version), source="assumed")


def as_capabilities(value):
    """A TensorRTCapabilities, or a full-TensorRT version (string/tuple) turned into one."""
    if isinstance(value, TensorRTCapabilities):
        return value
    return assumed_capabilities(value)


def installed_summary():
    """'<flavour> <version> <export target>' of the default TensorRT here, '' when there is none
    (scripts/main_job.sh reads it)."""
    from ..shared.errors import MissingDependencyError
    from .flavours import import_tensorrt

    try:
        caps = detect_capabilities(import_tensorrt())
    except MissingDependencyError:
        return ""
    return "%s %s %s" % (caps.flavour, version_string(caps.version), caps.export_target)
