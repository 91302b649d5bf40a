"""Steps 2-5 of an engine build, each callable and testable on its own: parse -> configure ->
build -> save (in the spirit of Polygraphy's loaders).

- `parse_network(trt, caps, onnx_bytes, ...)`: a builder, a network created with the flags this
  API generation needs, and the real ONNX parser's verdict (ParsedNetwork; `.errors` name the
  failing nodes). `bisenet-export onnx|check` run this same step as their parser check.
- `configure_build(trt, plan, parsed)`: workspace, precision flags, TF32, optimization profile,
  optimization level, detailed profiling verbosity, timing cache, TensorRT-RTX compute targets,
  INT8 calibrator; returns the builder config.
- `build_serialized(parsed, config)`: the serialized engine bytes, or None where TensorRT failed.
- `save_engine(engine_path, engine_bytes, sidecar)`: engine and sidecar, written atomically.

Type comments name the `tensorrt` stub types (tensorrt-stubs) so mypy can check these calls;
`tensorrt` is never imported at module level (the Jetson bundle must import without it), so the
check runs on a copy with `import tensorrt` prepended (tests/test_engine_typecheck.py).

Python 3.6 compatible; TensorRT is passed in, never imported here.
"""

import logging
import os
from typing import Any, Dict, List, Optional, Tuple  # noqa: F401 - type comments

from .build_checks import network_creation_flags, workspace_setting
from .calibrator import make_entropy_calibrator
from ..shared.errors import EngineError
from ..files.fileio import atomic_output, write_bytes_atomic
from ..trt.sidecar import profile_entry, tensor_entry, write_sidecar
from ..trt.trt_api import trt_dtype_to_numpy

log = logging.getLogger(__name__)


class ParsedNetwork(object):
    """The builder, network and parser of one parse (TensorRT needs all three alive together),
    whether the parser accepted the ONNX, its errors, and the network's I/O entries."""

    def __init__(self, builder, network, parser, ok, errors):
        self.builder = builder
        self.network = network
        self.parser = parser
        self.ok = bool(ok)
        self.errors = errors
        self.io = tensor_entries(network) if self.ok else []

    @property
    def input_name_and_shape(self):
        tensor = self.network.get_input(0)
        return tensor.name, dims(tensor.shape)


# -- parse ---------------------------------------------------------------------------------------

def parser_errors(parser):
    # type: (tensorrt.OnnxParser) -> List[Dict[str, Any]]
    """[{"desc", "node", "code", and where the parser has them "node_name", "op"}]."""
    errors = []  # type: List[Dict[str, Any]]
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        entry = {"desc": err.desc(), "node": int(err.node()), "code": str(err.code())}  # type: Dict[str, Any]
        if hasattr(err, "node_name"):
            entry["node_name"] = err.node_name()
        if hasattr(err, "node_operator"):
            entry["op"] = err.node_operator()
        errors.append(entry)
    return errors


def parse_network(trt, caps, onnx_bytes, onnx_path, logger, strongly_typed=False, builder=None):
    # type: (Any, Any, bytes, str, tensorrt.ILogger, bool, Optional[tensorrt.Builder]) -> ParsedNetwork
    """Parse ONNX bytes with the real TensorRT parser into a new network of `builder` (a new
    Builder when None). Never raises for a parser failure: see `.ok` and `.errors`."""
    builder = builder if builder is not None else trt.Builder(logger)
    flags = network_creation_flags(trt, caps.features, strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    ok = bool(parser.parse(onnx_bytes, str(onnx_path)))
    return ParsedNetwork(builder, network, parser, ok, [] if ok else parser_errors(parser))


def dims(shape):
    # type: (tensorrt.Dims) -> List[int]
    """A TensorRT Dims as a list (by index: every version has len() and [])."""
    return [int(shape[i]) for i in range(len(shape))]


def tensor_entries(network):
    # type: (tensorrt.INetworkDefinition) -> List[Dict[str, Any]]
    """The network's inputs then outputs as sidecar entries (name, mode, shape, numpy dtype)."""
    io = []
    for i in range(network.num_inputs):
        t = network.get_input(i)
        io.append(tensor_entry(t.name, "input", dims(t.shape), trt_dtype_to_numpy(t.dtype).name))
    for i in range(network.num_outputs):
        t = network.get_output(i)
        io.append(tensor_entry(t.name, "output", dims(t.shape), trt_dtype_to_numpy(t.dtype).name))
    return io


# -- configure -----------------------------------------------------------------------------------

def configure_build(trt, plan, parsed, config=None):
    # type: (Any, Any, ParsedNetwork, Optional[tensorrt.IBuilderConfig]) -> tensorrt.IBuilderConfig
    """The builder config for `plan` (build_plan.BuildPlan); returns it. `plan.calibrator` is set
    to the INT8 calibrator attached, if any (free it after the build)."""
    caps, options = plan.caps, plan.options
    config = config if config is not None else parsed.builder.create_builder_config()
    kind, limit = workspace_setting(caps.features, options.workspace_mib)
    _set_workspace(trt, config, kind, limit)
    if limit:
        log.info("workspace limit %d MiB (%s)", limit >> 20, kind)
    for flag in plan.decision.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if caps.features.tf32_flag and not options.allow_tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
        log.info("TF32 off: FP32 layers compute in full FP32 (--tf32 allows TF32)")
    if plan.profile is not None:
        add_profile(parsed.builder, config, plan.profile)
        log.info("optimization profile %s: min %s opt %s max %s", *plan.profile)
    if options.opt_level is not None:
        config.builder_optimization_level = int(options.opt_level)
    _set_profiling_verbosity(trt, config, caps.features)
    if options.compute_capabilities:
        set_compute_targets(trt, config, plan.targets)
    if plan.cache_path is not None:
        load_timing_cache(config, plan.cache_path)
    plan.calibrator = None
    if plan.decision.needs_calibrator:
        # with only a cache, the calibrator hands TensorRT the cache and reads no images
        batches = plan.calib if plan.calib is not None else NoImages()
        in_name = parsed.input_name_and_shape[0]
        plan.calibrator = make_entropy_calibrator(trt, batches, plan.calib_cache, in_name)
        config.int8_calibrator = plan.calibrator
        if plan.profile is not None and caps.features.calibration_profile:
            shape = [batches.batch_size] + list(plan.profile[1][1:])
            add_profile(parsed.builder, config, (in_name, shape, shape, shape), calibration=True)
    return config


def profile_entries(plan):
    return [profile_entry(*plan.profile)] if plan.profile is not None else []


def set_compute_targets(trt, config, targets):
    # type: (Any, Any, Tuple[Tuple[int, int], ...]) -> None
    """TensorRT-RTX: build for exactly these compute capabilities (the default: portable)."""
    config.num_compute_capabilities = len(targets)
    for i, (major, minor) in enumerate(targets):
        member = getattr(trt.ComputeCapability, "SM%d%d" % (major, minor))
        if config.set_compute_capability(member, i) is False:
            raise EngineError("TensorRT-RTX refused the target SM %d.%d" % (major, minor))


def _set_workspace(trt, config, kind, limit):
    # type: (Any, tensorrt.IBuilderConfig, Optional[str], Optional[int]) -> None
    if kind == "pool":
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(limit or 0))
    elif kind == "max_workspace_size":
        # 8.2/8.3 only; the attribute is gone from 10.0 (and from the 10.x stubs)
        setattr(config, "max_workspace_size", int(limit or 0))


def add_profile(builder, config, profile, calibration=False):
    # type: (tensorrt.Builder, tensorrt.IBuilderConfig, Tuple[str, List[int], List[int], List[int]], bool) -> None
    name, lo, opt, hi = profile
    prof = builder.create_optimization_profile()
    # pybind converts a sequence of ints to Dims implicitly (all versions); the stubs want Dims
    prof.set_shape(name, tuple(lo), tuple(opt), tuple(hi))  # type: ignore[arg-type]
    if calibration:
        config.set_calibration_profile(prof)
    else:
        config.add_optimization_profile(prof)


def _set_profiling_verbosity(trt, config, features):
    # type: (Any, tensorrt.IBuilderConfig, Any) -> None
    if not features.profiling_verbosity:
        log.info("this TensorRT has no profiling verbosity setting: --inspect will show names only")
        return
    level = getattr(trt.ProfilingVerbosity, "DETAILED", None)
    if level is None:  # the pre-8.2 spelling
        level = getattr(trt.ProfilingVerbosity, "VERBOSE")
    config.profiling_verbosity = level


def load_timing_cache(config, path):
    # type: (tensorrt.IBuilderConfig, str) -> None
    """Load the timing cache at `path` (a fresh one when absent). A cache TensorRT cannot use is
    replaced by a fresh one with a warning: a damaged one (or one from another version) comes back
    from create_timing_cache as an EMPTY cache (older releases: None), one from another GPU is
    refused by set_timing_cache (False, as ignore_mismatch is off)."""
    blob = b""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            blob = f.read()
        log.info("timing cache %s (%d bytes) loaded", path, len(blob))
    cache = config.create_timing_cache(blob)
    unreadable = cache is None or (blob and _rejected(config, blob, cache))
    if unreadable or not config.set_timing_cache(cache, False):
        log.warning("the timing cache %s is unreadable or was made for another GPU/TensorRT: "
                    "starting a new one (it is overwritten after the build)", path)
        config.set_timing_cache(config.create_timing_cache(b""), False)


def _rejected(config, blob, cache):
    # type: (tensorrt.IBuilderConfig, bytes, tensorrt.ITimingCache) -> bool
    """True when TensorRT turned a non-empty cache file into an empty cache (it was damaged or from
    another version): the loaded cache serializes like a fresh one, the file did not."""
    empty = bytes(config.create_timing_cache(b"").serialize())
    return bytes(blob) != empty and bytes(cache.serialize()) == empty


def save_timing_cache(config, path):
    # type: (tensorrt.IBuilderConfig, str) -> int
    data = bytes(config.get_timing_cache().serialize())
    write_bytes_atomic(path, data)
    return len(data)


class NoImages(object):
    """Stands in for calibration images when a calibration cache already exists."""

    batch_size = 1

    def __len__(self):
        return 0

    def __iter__(self):
        raise EngineError("the calibration cache was not accepted by TensorRT and no "
                          "--calib-images were given: delete the cache and pass --calib-images")


# -- build and save ------------------------------------------------------------------------------

def build_serialized(parsed, config):
    # type: (ParsedNetwork, tensorrt.IBuilderConfig) -> Optional[bytes]
    """The serialized engine, or None where TensorRT failed (its log says why)."""
    blob = parsed.builder.build_serialized_network(parsed.network, config)
    if blob is None:
        return None
    return bytes(blob)


def save_engine(engine_path, engine_bytes, sidecar):
    """Write the engine and its sidecar atomically: both or neither."""
    try:
        with atomic_output(engine_path) as tmp:
            with open(tmp, "wb") as f:
                f.write(engine_bytes)
            write_sidecar(engine_path, sidecar)
    except (IOError, OSError) as exc:  # e.g. the disk filled up during the build
        raise EngineError("could not write the engine %s (%s)" % (engine_path, exc)) from None
    log.info("engine %s (%.1f MiB) and sidecar written", engine_path,
             len(engine_bytes) / float(1 << 20))
