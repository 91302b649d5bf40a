"""Which TensorRT Python API is in front of us, decided by what the module and its objects offer.

TensorRT's Python API changed three times between the Jetson TX2's 8.2 and 11.x (see
docs/tensorrt-versions.md, section 2): the binding API gave way to the tensor API in 8.5, 10.0
removed the deprecated calls, and 11.0 dropped precision flags and INT8 calibration. Everything
here asks the objects (`hasattr`) instead of comparing version numbers or catching AttributeError,
so a patch release that back-ports or removes a call still gets the right code path. Version
strings are parsed only for messages, paths and the precision policy.

Importing a TensorRT (full or TensorRT-RTX) is flavours.py's job; the rules that follow from these
features live in capabilities.py.

Python 3.6 / numpy 1.19 compatible; imports no TensorRT.
"""

import os
import re

import numpy as np

from ..shared.errors import InputError

#: the three API generations this toolkit has one code path for
GEN_8_2 = "8.2-8.4"
GEN_8_5 = "8.5-10"
GEN_11 = "11"
GENERATIONS = (GEN_8_2, GEN_8_5, GEN_11)

JETSON_RELEASE_FILE = "/etc/nv_tegra_release"


# -- versions ------------------------------------------------------------------------------------

def parse_version(text):
    """'8.2.1.8' -> (8, 2, 1, 8); '10.13' -> (10, 13); also accepts a tuple/list of ints.

    Trailing non-numeric parts ('8.6.1.post1', '10.0.0b6') are ignored from the first
    non-digit on. At least MAJOR.MINOR is required.
    """
    if isinstance(text, (tuple, list)):
        parts = tuple(int(p) for p in text)
        if len(parts) < 2:
            raise InputError("TensorRT version %r needs at least MAJOR.MINOR" % (text,))
        return parts
    raw = str(text).strip()
    if raw.lower().startswith("trt"):
        raw = raw[3:]
    match = re.match(r"^(\d+)\.(\d+)((?:\.\d+)*)", raw)
    if not match:
        raise InputError("%r is not a TensorRT version (expected MAJOR.MINOR[.PATCH[.BUILD]], "
                         "e.g. 8.2.1 or 10.13)" % (text,))
    parts = [int(match.group(1)), int(match.group(2))]
    parts.extend(int(p) for p in match.group(3).split(".") if p)
    return tuple(parts)


def version_string(version, parts=3):
    """(8, 6, 1, 6) -> '8.6.1' (the first `parts` components, as many as known)."""
    return ".".join(str(p) for p in parse_version(version)[:parts])


def generation_for_version(version):
    """The API generation a version number belongs to (for when no module is at hand, e.g. the
    trtexec command line for another machine). With a module, use `api_generation(trt)`."""
    major, minor = parse_version(version)[:2]
    if major < 8 or (major == 8 and minor < 2):
        raise InputError("TensorRT %s is older than 8.2, the oldest this toolkit supports "
                         "(JetPack 4.6 ships 8.2)" % version_string(version))
    if major >= 11:
        return GEN_11
    if major == 8 and minor < 5:
        return GEN_8_2
    return GEN_8_5


def features_for_version(version):
    """The BuilderFeatures full TensorRT `version` offers, from its documented API history: for
    when no module is at hand (a trtexec line for another machine). With a module, use
    `detect_features(trt)`; capabilities.py turns either into the rules."""
    v = parse_version(version)[:2]
    generation = generation_for_version(v)
    major = v[0]
    dtypes = dtype_names_for_version(v)
    return BuilderFeatures(
        generation=generation, explicit_batch_flag=major == 8, strongly_typed_flag=major >= 10,
        memory_pool_api=v >= (8, 4), max_workspace_size=major < 10, precision_flags=major < 11,
        int8_calibrator=major < 11, calibration_profile=major < 11, platform_fast_flags=major < 11,
        optimization_level=v >= (8, 6), profiling_verbosity=True, timing_cache=True,
        engine_inspector=True, parser_node_name=v >= (8, 6), tf32_flag=True,
        uint8_io="uint8" in dtypes, int64_io="int64" in dtypes)


# -- the machine ---------------------------------------------------------------------------------

def is_jetson():
    """True on an NVIDIA Jetson (L4T writes its release file)."""
    return os.path.exists(JETSON_RELEASE_FILE)


# -- feature tests -------------------------------------------------------------------------------

def _has(obj, *names):
    for name in names:
        if obj is None or not hasattr(obj, name):
            return False
        obj = getattr(obj, name)
    return True


def api_generation(trt):
    """'8.2-8.4', '8.5-10' or '11' from what the module offers.

    11.0 removed every precision builder flag (FP16 is the marker); the tensor-name I/O API
    (`TensorIOMode`) arrived in 8.5.
    """
    if not _has(trt, "BuilderFlag", "FP16"):
        return GEN_11
    if _has(trt, "TensorIOMode"):
        return GEN_8_5
    return GEN_8_2


def engine_uses_tensor_api(engine):
    """8.5+ engines address I/O by tensor name (`num_io_tensors`); older ones by binding index."""
    return hasattr(engine, "num_io_tensors")


class BuilderFeatures(object):
    """What a TensorRT module / builder / builder config support, found by feature tests.

    Every attribute is a plain bool so the builder's code path and the tests read the same facts.
    """

    FIELDS = (
        "generation",
        "explicit_batch_flag",    # create_network needs 1 << EXPLICIT_BATCH (8.x)
        "strongly_typed_flag",    # NetworkDefinitionCreationFlag.STRONGLY_TYPED exists (9.x/10.x+)
        "memory_pool_api",        # config.set_memory_pool_limit(MemoryPoolType.WORKSPACE, n) (8.4+)
        "max_workspace_size",     # config.max_workspace_size (8.2/8.3; removed in 10.0)
        "precision_flags",        # BuilderFlag.FP16/INT8 (8.2-10.x)
        "int8_calibrator",        # IInt8EntropyCalibrator2 and config.int8_calibrator (<= 10.x)
        "calibration_profile",    # config.set_calibration_profile (dynamic shapes + INT8)
        "platform_fast_flags",    # builder.platform_has_fast_fp16/int8 (<= 10.x)
        "optimization_level",     # config.builder_optimization_level (8.6+)
        "profiling_verbosity",    # config.profiling_verbosity + ProfilingVerbosity
        "timing_cache",           # config.create_timing_cache/set_timing_cache
        "engine_inspector",       # ICudaEngine.create_engine_inspector (8.2+)
        "parser_node_name",       # ParserError.node_name() (newer parsers; else node index only)
        "tf32_flag",              # BuilderFlag.TF32 + config.clear_flag (TF32 is on by default)
        "uint8_io",               # DataType.UINT8 (8.5+): a network input may be UINT8
        "int64_io",               # DataType.INT64 (10.0+)
        "compute_targets",        # config.set_compute_capability + ComputeCapability (TensorRT-RTX:
                                  # ahead-of-time builds for listed GPUs, no GPU needed)
        "runtime_cache",          # ICudaEngine.create_runtime_config + IRuntimeCache (JIT kernels)
    )

    def __init__(self, **values):
        for name in self.FIELDS:
            setattr(self, name, values.get(name, False))
        unknown = set(values) - set(self.FIELDS)
        if unknown:
            raise TypeError("unknown feature(s): %s" % ", ".join(sorted(unknown)))

    def as_dict(self):
        return dict((name, getattr(self, name)) for name in self.FIELDS)

    def __repr__(self):
        return "BuilderFeatures(%s)" % ", ".join("%s=%r" % kv for kv in sorted(self.as_dict().items()))


def detect_features(trt, builder=None, config=None):
    """Feature-test the module and, when given, a Builder and an IBuilderConfig.

    Without `builder`/`config` the class objects (`trt.Builder`, `trt.IBuilderConfig`) are
    tested instead, which is what pybind exposes for properties and methods alike.
    """
    builder_obj = builder if builder is not None else getattr(trt, "Builder", None)
    config_obj = config if config is not None else getattr(trt, "IBuilderConfig", None)
    generation = api_generation(trt)
    # 8.x builders still have the deprecated build_engine; 10.0 removed it together with the
    # need for the explicit-batch flag (deprecated and ignored there), 11 removed the enum value.
    explicit_flag = (_has(trt, "NetworkDefinitionCreationFlag", "EXPLICIT_BATCH")
                     and _has(builder_obj, "build_engine"))
    return BuilderFeatures(
        generation=generation,
        explicit_batch_flag=explicit_flag,
        strongly_typed_flag=_has(trt, "NetworkDefinitionCreationFlag", "STRONGLY_TYPED"),
        memory_pool_api=_has(config_obj, "set_memory_pool_limit") and _has(trt, "MemoryPoolType"),
        max_workspace_size=_has(config_obj, "max_workspace_size"),
        precision_flags=_has(trt, "BuilderFlag", "FP16"),
        int8_calibrator=_has(trt, "IInt8EntropyCalibrator2") and _has(config_obj, "int8_calibrator"),
        calibration_profile=_has(config_obj, "set_calibration_profile"),
        platform_fast_flags=_has(builder_obj, "platform_has_fast_fp16"),
        optimization_level=_has(config_obj, "builder_optimization_level"),
        profiling_verbosity=(_has(config_obj, "profiling_verbosity")
                             and _has(trt, "ProfilingVerbosity")),
        timing_cache=_has(config_obj, "create_timing_cache") and _has(config_obj, "set_timing_cache"),
        engine_inspector=_has(trt, "ICudaEngine", "create_engine_inspector"),
        parser_node_name=_has(trt, "ParserError", "node_name"),
        tf32_flag=_has(trt, "BuilderFlag", "TF32") and _has(config_obj, "clear_flag"),
        uint8_io=_has(trt, "DataType", "UINT8"),
        int64_io=_has(trt, "DataType", "INT64"),
        compute_targets=(_has(config_obj, "set_compute_capability")
                         and _has(trt, "ComputeCapability")),
        runtime_cache=(_has(trt, "ICudaEngine", "create_runtime_config")
                       and _has(trt, "IRuntimeConfig", "create_runtime_cache")),
    )


# -- dtypes --------------------------------------------------------------------------------------

#: TensorRT DataType member name -> numpy dtype name (None: numpy has no such type)
_TRT_TO_NUMPY = {
    "FLOAT": "float32",
    "HALF": "float16",
    "INT8": "int8",
    "INT32": "int32",
    "BOOL": "bool",
    "UINT8": "uint8",
    "INT64": "int64",
    "BF16": None,
    "FP8": None,
    "INT4": None,
    "FP4": None,
}


def dtype_names_for_version(version):
    """numpy dtype names the given TensorRT version can exchange with numpy at its I/O.

    8.2-8.4: float32, float16, int8, int32, bool (`trt.nptype` knows no more); UINT8 arrived in
    8.5, INT64 in 10.0.
    """
    major, minor = parse_version(version)[:2]
    names = ["float32", "float16", "int8", "int32", "bool"]
    if (major, minor) >= (8, 5):
        names.append("uint8")
    if major >= 10:
        names.append("int64")
    return names


def trt_dtype_name(dtype):
    """'FLOAT' for trt.DataType.FLOAT (pybind enums have `.name`; fall back to str())."""
    name = getattr(dtype, "name", None)
    if not isinstance(name, str):
        name = str(dtype).split(".")[-1]
    return name.upper()


def trt_dtype_to_numpy(dtype):
    """numpy dtype for a TensorRT DataType (or its member name); refuses types numpy lacks."""
    name = dtype if isinstance(dtype, str) else trt_dtype_name(dtype)
    name = name.upper()
    if name not in _TRT_TO_NUMPY:
        raise InputError("unknown TensorRT data type %r" % (name,))
    np_name = _TRT_TO_NUMPY[name]
    if np_name is None:
        raise InputError("TensorRT data type %s has no numpy equivalent; export the model with a "
                         "float32/float16/int32 boundary" % name)
    return np.dtype(np_name)


def numpy_to_trt_dtype_name(dtype):
    """numpy dtype -> TensorRT DataType member name ('float32' -> 'FLOAT')."""
    want = np.dtype(dtype).name
    for trt_name, np_name in _TRT_TO_NUMPY.items():
        if np_name == want:
            return trt_name
    raise InputError("numpy dtype %s has no TensorRT equivalent" % want)
