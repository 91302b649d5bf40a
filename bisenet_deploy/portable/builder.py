"""Build a TensorRT engine from a bisenet-deploy ONNX, on any TensorRT from 8.2 (Jetson TX2) to 11.

`build_engine(onnx_path, record, options)` is the one entry point: the desktop CLI
(`bisenet-build-engine`) and the Jetson bundle (`jetson_run.py build`, through
`bisenet_trt.builder.build_engine`) both call it.

Steps, each logged with its duration:
1. checks that need no build work: TensorRT present and which API generation (feature tests, see
   trt_api.py), the GPU, the precision policy (precision.py), the ONNX's export target vs this
   TensorRT, the batch profile, INT8 calibration inputs;
2. parse the ONNX (errors name the failing node and the fix, e.g. the `--target` to re-export with);
3. configure: explicit-batch network where 8.x needs it, workspace via `max_workspace_size`
   (8.2/8.3) or the memory pool (8.4+), precision flags (none on 11), the optimization profile
   from the ONNX's dynamic batch or `--batch`, the builder optimization level (8.6+), detailed
   profiling verbosity (for `--inspect`), the timing cache;
4. `build_serialized_network`;
5. write the engine and its JSON sidecar atomically, and save the timing cache back.

The pure parts (profiles, ONNX/TensorRT compatibility, parser-error advice, reading the ONNX's
metadata without the onnx package) are module functions with unit tests.

Python 3.6 / numpy 1.19 compatible; tensorrt and pycuda are imported lazily.
"""

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from typing import Any, Dict, List, Optional, Tuple  # noqa: F401 - type comments

from .calibrator import CalibrationBatches, list_calibration_images, make_entropy_calibrator
from .cuda_context import import_pycuda_driver
from .engine_paths import (default_calibration_cache_path, default_engine_path,
                           default_timing_cache_path, sidecar_path)
from .errors import EngineError, InputError, UnusableFileError, UserError
from .fileio import (atomic_output, check_writable, require_file, sha256_bytes,
                     write_bytes_atomic)
from .gpu_info import query_gpu
from .ownership import check_replaceable
from .precision import decide_precision, default_precision, onnx_graph_precision
from .sidecar import make_sidecar, profile_entry, tensor_entry, write_sidecar
from .trt_api import (GEN_11, check_dtype_supported, detect_features, export_target_for_version,
                      import_tensorrt, installed_version, max_onnx_opset, parse_version,
                      trt_dtype_to_numpy, version_string)

log = logging.getLogger(__name__)

#: exports happen on the desktop; said wherever a message tells the user to re-export
JETSON_REEXPORT = (" (in a Jetson bundle: re-run `bisenet-export jetson` on the desktop and "
                   "copy the new bundle)")

METADATA_KEY = "bisenet_deploy"
TARGET_ORDER = ("trt8.2", "trt8.6", "trt10", "trt11")
DEFAULT_8_2_WORKSPACE_MIB = 1024


# -- options and results -------------------------------------------------------------------------

class BuildOptions(object):
    """What to build. Paths left None get the defaults of engine_paths.py; precision None builds
    the precision the ONNX was exported for (fp32 without metadata)."""

    def __init__(self, precision=None, output=None, workspace_mib=None, timing_cache=None,
                 batch=None, opt_level=None, calib_images=None, calib_cache=None,
                 calib_batch_size=None, calib_max_images=None, verbose=False,
                 engines_root="engines", gpu_index=0, use_timing_cache=True,
                 toolkit_version=None, allow_tf32=False):
        self.precision = precision
        self.output = output
        self.workspace_mib = workspace_mib
        self.timing_cache = timing_cache
        self.batch = tuple(batch) if batch is not None else None
        self.opt_level = opt_level
        self.calib_images = calib_images
        self.calib_cache = calib_cache
        self.calib_batch_size = calib_batch_size
        self.calib_max_images = calib_max_images
        self.verbose = bool(verbose)
        self.engines_root = engines_root
        self.gpu_index = int(gpu_index)
        self.use_timing_cache = bool(use_timing_cache)
        #: TensorRT computes FP32 layers in TF32 on Ampere and newer unless told not to; off by
        #: default so an "fp32" engine really is FP32 (and matches PyTorch FP32 as parity expects)
        self.allow_tf32 = bool(allow_tf32)
        #: the bisenet-deploy version doing the build (the desktop CLI passes its own)
        self.toolkit_version = toolkit_version

    def as_dict(self):
        return dict((k, list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items())


class BuildResult(object):
    def __init__(self, engine_path, sidecar_path, sidecar, seconds, steps):
        self.engine_path = engine_path
        self.sidecar_path = sidecar_path
        self.sidecar = sidecar
        self.seconds = seconds
        self.steps = steps  # [(step name, seconds)]


class _Steps(object):
    """Times and logs each build step."""

    def __init__(self):
        self.done = []

    @contextlib.contextmanager
    def step(self, name):
        start = time.time()
        log.info("%s ...", name)
        yield
        took = time.time() - start
        self.done.append((name, round(took, 3)))
        log.info("%s: done in %.1f s", name, took)


# -- ONNX without the onnx package (the Jetson has none) ----------------------------------------

def _varint(buf, pos):
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf):
    """Iterate (field number, wire type, value) over one protobuf message (no recursion)."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
            if pos > end:
                raise ValueError("truncated field")
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
        yield field, wire, value


def _text(value):
    return bytes(value).decode("utf-8", "replace")


def _text_fields(message, *numbers):
    """The string fields `numbers` of one protobuf message, in that order ("" where absent)."""
    found = {}
    for field, _, value in _fields(message):
        if field in numbers:
            found[field] = value
    return tuple(_text(found[n]) if n in found else "" for n in numbers)


def _value_info(buf):
    """ValueInfoProto -> (name, dims) with dims as ints (-1 for a symbolic/unknown dim)."""
    name, dims = "", []
    for field, _, value in _fields(buf):
        if field == 1:
            name = _text(value)
        elif field == 2:  # TypeProto
            for tf, _, tv in _fields(value):
                if tf != 1:  # tensor_type
                    continue
                for sf, _, sv in _fields(tv):
                    if sf != 2:  # shape
                        continue
                    for df, _, dv in _fields(sv):
                        if df != 1:
                            continue
                        dim = -1
                        for xf, xw, xv in _fields(dv):
                            if xf == 1 and xw == 0:
                                dim = int(xv)
                        dims.append(dim)
    return name, dims


def read_onnx_summary(data, name="this file"):
    """Read what the builder needs from serialized ONNX bytes without the onnx package.

    Returns {"metadata": {key: value}, "opset": int or None, "inputs": [(name, dims)],
    "outputs": [(name, dims)], "nodes": [(name, op_type)]}. Graph inputs that are initializers
    (old exporters list them) are left out.
    """
    buf = memoryview(data)
    summary = {"metadata": {}, "opset": None, "inputs": [], "outputs": [], "nodes": []}
    try:
        graph = None
        for field, wire, value in _fields(buf):
            if field == 14 and wire == 2:  # metadata_props: StringStringEntryProto key, value
                key, val = _text_fields(value, 1, 2)
                summary["metadata"][key] = val
            elif field == 8 and wire == 2:  # opset_import
                domain, version = "", None
                for f, _, v in _fields(value):
                    if f == 1:
                        domain = _text(v)
                    elif f == 2:
                        version = int(v)
                if domain in ("", "ai.onnx"):
                    summary["opset"] = version
            elif field == 7 and wire == 2:
                graph = value
        if graph is None:
            raise ValueError("no graph")
        initializers = set()
        inputs = []
        for field, wire, value in _fields(graph):
            if field == 1:  # NodeProto: name, op_type
                summary["nodes"].append(_text_fields(value, 3, 4))
            elif field == 5:  # initializer (TensorProto name is field 8)
                initializers.add(_text_fields(value, 8)[0])
            elif field == 11:
                inputs.append(_value_info(value))
            elif field == 12:
                summary["outputs"].append(_value_info(value))
        summary["inputs"] = [i for i in inputs if i[0] not in initializers]
    except (ValueError, IndexError) as exc:
        raise UnusableFileError("%s is not a readable ONNX model (%s): export it with "
                                "`bisenet-export onnx`" % (name, exc)) from None
    return summary


def record_from_summary(summary):
    """The bisenet_deploy metadata record of an ONNX summary, or None when it has none."""
    text = summary["metadata"].get(METADATA_KEY)
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise UnusableFileError("the ONNX's bisenet_deploy metadata is not valid JSON (%s)"
                                % exc) from None
    if not isinstance(record, dict) or "export" not in record or "model" not in record:
        raise UnusableFileError("the ONNX's bisenet_deploy metadata lacks its model/export "
                                "sections; re-export it with `bisenet-export onnx`")
    return record


# -- pure planning -------------------------------------------------------------------------------

def profile_for_input(input_name, input_shape, record=None, cli_batch=None):
    """The optimization profile of the (single) image input, or None for a static input.

    input_shape: the network input's dims as the parser sees them (-1 = dynamic). The batch range
    is `cli_batch` (MIN, OPT, MAX) if given, else the metadata record's dynamic batch, else 1:1:1.
    Returns (name, min_shape, opt_shape, max_shape).
    """
    dims = [int(d) for d in input_shape]
    if len(dims) != 4:
        raise InputError("the ONNX input %r has %d dimensions; a segmentation graph takes "
                         "N x 3 x H x W" % (input_name, len(dims)))
    if any(d < 0 for d in dims[1:]):
        raise InputError("the ONNX input %r has dynamic channel/height/width (%s); bisenet-deploy "
                         "engines have a fixed input size: re-export with `bisenet-export onnx "
                         "--input-size WxH`" % (input_name, "x".join(
                             "?" if d < 0 else str(d) for d in dims)))
    if dims[0] >= 0:
        if cli_batch is not None and tuple(cli_batch) != (dims[0],) * 3:
            raise InputError("this ONNX has a fixed batch of %d, so --batch %s cannot apply: "
                             "re-export it with `bisenet-export onnx --dynamic-batch MIN:OPT:MAX`, "
                             "or leave out --batch"
                             % (dims[0], ":".join(str(b) for b in cli_batch)))
        return None
    if cli_batch is not None:
        lo, opt, hi = [int(b) for b in cli_batch]
    else:
        batch = ((record or {}).get("export") or {}).get("batch") or {}
        if batch.get("dynamic"):
            lo, opt, hi = int(batch["min"]), int(batch["opt"]), int(batch["max"])
        else:
            log.warning("the ONNX input %r has a dynamic batch and no range is known: building "
                        "for batch 1 only (give --batch MIN:OPT:MAX for more)", input_name)
            lo = opt = hi = 1
    if not 1 <= lo <= opt <= hi:
        raise InputError("batch range %d:%d:%d needs 1 <= MIN <= OPT <= MAX" % (lo, opt, hi))
    rest = dims[1:]
    return (input_name, [lo] + rest, [opt] + rest, [hi] + rest)


def check_onnx_for_version(record, summary, trt_version):
    """Refuse an ONNX this TensorRT's parser cannot take; returns warnings for doubtful cases.

    Uses the metadata record (export target, input dtype) and the graph's opset.
    """
    version = parse_version(trt_version)
    want = export_target_for_version(version)
    fix = "re-export with `bisenet-export onnx --target %s`%s" % (want, JETSON_REEXPORT)
    trt = "TensorRT %s" % version_string(version)
    warnings = []
    opset = summary.get("opset") if summary else None
    if opset is None and record:
        opset = record["export"].get("opset")
    limit = max_onnx_opset(version)
    if opset is not None and limit is not None and int(opset) > limit:
        raise InputError("this ONNX uses opset %d but %s parses opset <= %d: %s"
                         % (int(opset), trt, limit, fix))
    if record:
        export = record["export"]
        check_dtype_supported_msg(export.get("input_dtype", "float32"), version, fix)
        target = export.get("target")
        if target in TARGET_ORDER and TARGET_ORDER.index(target) > TARGET_ORDER.index(want):
            warnings.append("this ONNX was exported for %s but this is %s: if parsing fails, %s"
                            % (target, trt, fix))
    return warnings


def check_dtype_supported_msg(dtype, version, fix):
    try:
        check_dtype_supported(dtype, version)
    except InputError as exc:
        raise InputError("the ONNX input is %s: %s; %s" % (dtype, exc, fix)) from None


#: parser message fragments -> why, for the advice line
_PARSER_HINTS = (
    ("UINT8", "a UINT8 input the parser does not take"),
    ("opset", "an opset this parser does not take"),
    ("No importer registered", "an operator this parser does not know"),
    ("Resize scales must be an initializer", "a Resize with computed scales"),
    ("INT64", "INT64 tensors"),
    ("Plugin", "a custom (plugin) operator"),
)


def explain_parser_errors(errors, record, trt_version, onnx_name="the ONNX", nodes=None):
    """One message for parser failures: each failing node (index, name, op) and the fix.

    errors: [{"node": int, "node_name": str or None, "desc": str, "code": str}]; nodes: the
    graph's [(name, op_type)] (from read_onnx_summary) to name nodes older parsers give by index.
    """
    version = parse_version(trt_version)
    target = export_target_for_version(version)
    parts = []
    reasons = []
    for err in errors:
        idx = err.get("node", -1)
        name = err.get("node_name") or None
        op = err.get("op") or None
        if nodes is not None and idx is not None and 0 <= idx < len(nodes):
            name = name or nodes[idx][0] or None
            op = op or nodes[idx][1] or None
        where = "node %d" % idx if idx is not None and idx >= 0 else "the graph"
        if name:
            where += " %r" % name
        if op:
            where += " (%s)" % op
        desc = str(err.get("desc", "")).strip()
        parts.append("%s: %s" % (where, desc))
        for fragment, reason in _PARSER_HINTS:
            if fragment.lower() in desc.lower() and reason not in reasons:
                reasons.append(reason)
    exported_for = (record or {}).get("export", {}).get("target")
    if exported_for and exported_for != target:
        fix = ("this ONNX was exported for %s; re-export it with `bisenet-export onnx --target "
               "%s`" % (exported_for, target))
    elif exported_for:
        fix = ("the export rules for %s should have prevented this: check the file with "
               "`bisenet-export check --target %s %s` and report it" % (target, target, onnx_name))
    else:
        fix = ("this ONNX was not exported by bisenet-deploy; export it with `bisenet-export onnx "
               "--target %s`, which keeps to what this parser takes" % target)
    why = (" (%s)" % "; ".join(reasons)) if reasons else ""
    return ("TensorRT %s could not parse %s: %s%s. Fix: %s%s"
            % (version_string(version), onnx_name, " | ".join(parts) or "no details", why, fix,
               JETSON_REEXPORT))


def network_creation_flags(trt, features, strongly_typed):
    """The create_network flag bits for this API generation."""
    flags = 0
    if features.explicit_batch_flag:  # 8.x: the ONNX parser needs an explicit-batch network
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if strongly_typed and features.generation != GEN_11:  # 11 is always strongly typed
        if not features.strongly_typed_flag:
            raise EngineError("this TensorRT cannot build strongly typed networks (FP16 ONNX): "
                              "build the FP32 ONNX with --fp16 instead")
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags


def workspace_setting(features, workspace_mib):
    """('pool' | 'max_workspace_size' | None, bytes) for the workspace limit.

    8.2/8.3 only have `max_workspace_size`, whose default 0 leaves TensorRT no scratch memory, so
    a default of 1024 MiB is set there; 8.4+ default to the device memory unless told.
    """
    if features.memory_pool_api:
        if workspace_mib is None:
            return None, None
        return "pool", int(workspace_mib) << 20
    if features.max_workspace_size:
        return "max_workspace_size", int(workspace_mib or DEFAULT_8_2_WORKSPACE_MIB) << 20
    raise EngineError("this TensorRT offers neither set_memory_pool_limit nor max_workspace_size")


def calibration_batch_size(profile, static_batch, options):
    if options.calib_batch_size is not None:
        wanted = int(options.calib_batch_size)
        if wanted < 1:
            raise InputError("the calibration batch size must be >= 1, got %d" % wanted)
        if profile is None and wanted != static_batch:
            raise InputError("this ONNX has a fixed batch of %d: the calibration batch must be %d"
                             % (static_batch, static_batch))
        if profile is not None and not profile[1][0] <= wanted <= profile[3][0]:
            raise InputError("calibration batch %d is outside the profile's batch range %d..%d"
                             % (wanted, profile[1][0], profile[3][0]))
        return wanted
    return static_batch if profile is None else profile[2][0]


# -- TensorRT glue -------------------------------------------------------------------------------
# Type comments name the `tensorrt` stub types (tensorrt-stubs) so mypy can check these calls;
# `tensorrt` is never imported at module level (the Jetson bundle must import without it), so the
# check runs on a copy with `import tensorrt` prepended (see the engine README section).

def _trt_logger(trt, verbose):
    return trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)


def _parser_errors(parser):
    # type: (tensorrt.OnnxParser) -> List[Dict[str, Any]]
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


def _parse_network(trt, builder, logger, flags, onnx_bytes, onnx_path):
    # type: (Any, tensorrt.Builder, tensorrt.ILogger, int, bytes, str) -> Tuple[tensorrt.INetworkDefinition, tensorrt.OnnxParser, bool]
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse(onnx_bytes, onnx_path)
    return network, parser, bool(ok)


def _input_shape(network):
    # type: (tensorrt.INetworkDefinition) -> Tuple[str, List[int]]
    tensor = network.get_input(0)
    return tensor.name, _dims(tensor.shape)


def _dims(shape):
    # type: (tensorrt.Dims) -> List[int]
    """A TensorRT Dims as a list (by index: every version has len() and [])."""
    return [int(shape[i]) for i in range(len(shape))]


def _tensor_entries(network):
    # type: (tensorrt.INetworkDefinition) -> List[Dict[str, Any]]
    io = []
    for i in range(network.num_inputs):
        t = network.get_input(i)
        io.append(tensor_entry(t.name, "input", _dims(t.shape), trt_dtype_to_numpy(t.dtype).name))
    for i in range(network.num_outputs):
        t = network.get_output(i)
        io.append(tensor_entry(t.name, "output", _dims(t.shape), trt_dtype_to_numpy(t.dtype).name))
    return io


def _set_workspace(trt, config, kind, limit):
    # type: (Any, tensorrt.IBuilderConfig, Optional[str], Optional[int]) -> None
    if kind == "pool":
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(limit or 0))
    elif kind == "max_workspace_size":
        # 8.2/8.3 only; the attribute is gone from 10.0 (and from the 10.x stubs)
        setattr(config, "max_workspace_size", int(limit or 0))


def _add_profile(builder, config, profile, calibration=False):
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


def _load_timing_cache(config, path):
    # type: (tensorrt.IBuilderConfig, str) -> None
    blob = b""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            blob = f.read()
        log.info("timing cache %s (%d bytes) loaded", path, len(blob))
    # a damaged cache, or one from another TensorRT version, is refused by create_timing_cache
    # (None); one from another GPU by set_timing_cache (False, as ignore_mismatch is off)
    cache = config.create_timing_cache(blob)
    if cache is None or not config.set_timing_cache(cache, False):
        log.warning("the timing cache %s is unreadable or was made for another GPU/TensorRT: "
                    "starting a new one (it is overwritten after the build)", path)
        config.set_timing_cache(config.create_timing_cache(b""), False)


def _save_timing_cache(config, path):
    # type: (tensorrt.IBuilderConfig, str) -> int
    data = bytes(config.get_timing_cache().serialize())
    write_bytes_atomic(path, data)
    return len(data)


def _build_serialized(builder, network, config):
    # type: (tensorrt.Builder, tensorrt.INetworkDefinition, tensorrt.IBuilderConfig) -> Optional[bytes]
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        return None
    return bytes(blob)


class _NoScope(object):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _cuda_scope(needed, device):
    """The primary CUDA context made current, for pycuda calibration buffers (INT8 only)."""
    if not needed:
        return _NoScope()
    from .cuda_context import CudaContext  # noqa: WPS433 - needs pycuda, lazily
    return CudaContext(device=device, mode="primary").open()


def build_engine(onnx_path, record, options, trt=None, gpu=None):
    """Build and save an engine + sidecar; returns a BuildResult. See the module docstring.

    record: the ONNX's bisenet_deploy metadata dict, or None to read it from the file itself.
    trt/gpu: injected module and GpuInfo (defaults: import tensorrt, query the GPU).
    """
    start = time.time()
    steps = _Steps()
    onnx_path = str(onnx_path)
    require_file(onnx_path, "ONNX file")

    # 1. everything that can be refused before any real work
    with steps.step("checks"):
        trt = trt or import_tensorrt()
        version = installed_version(trt)
        features = detect_features(trt)
        log.info("TensorRT %s, API generation %s", trt.__version__, features.generation)
        gpu = gpu or query_gpu(options.gpu_index)
        log.info("GPU %s", gpu.describe())
        with open(onnx_path, "rb") as f:
            onnx_bytes = f.read()
        summary = read_onnx_summary(onnx_bytes, onnx_path)
        if record is None:
            record = record_from_summary(summary)
        if record is None:
            log.warning("%s has no bisenet_deploy metadata: preprocessing and classes will be "
                        "unknown to the runtime; export with `bisenet-export onnx`", onnx_path)
        onnx_precision = onnx_graph_precision(record)
        requested = options.precision or default_precision(record)
        decision = decide_precision(requested, gpu.compute_capability, version,
                                    onnx_precision,
                                    strongly_typed_available=features.strongly_typed_flag)
        for message in check_onnx_for_version(record, summary, version):
            log.warning("%s", message)
        if len(summary["inputs"]) != 1:
            raise InputError("%s has %d inputs; bisenet-deploy engines take exactly one image "
                             "input" % (onnx_path, len(summary["inputs"])))
        in_name, in_dims = summary["inputs"][0]
        profile = profile_for_input(in_name, in_dims, record, options.batch)
        if options.workspace_mib is not None and int(options.workspace_mib) <= 0:
            raise InputError("--workspace must be a positive number of MiB, got %s"
                             % options.workspace_mib)
        if options.opt_level is not None:
            if not features.optimization_level:
                raise InputError("--opt-level needs TensorRT 8.6 or newer (this is %s)"
                                 % version_string(version))
            if not 0 <= int(options.opt_level) <= 5:
                raise InputError("--opt-level must be 0..5")
        engine_path = options.output or default_engine_path(
            onnx_path, gpu.name, gpu.compute_capability, version, decision.precision,
            options.engines_root)
        engine_path = os.path.abspath(str(engine_path))
        check_replaceable(engine_path, "engine")  # only an engine of ours, with its sidecar
        check_writable(engine_path, "the engine")
        cache_path = None
        if options.use_timing_cache:
            cache_path = options.timing_cache or default_timing_cache_path(engine_path)
            check_writable(cache_path, "the timing cache")
        calib = None
        calib_cache = None
        if decision.needs_calibrator:
            if not features.int8_calibrator:
                raise EngineError("this TensorRT has no INT8 entropy calibrator")
            if record is None:
                raise InputError("INT8 calibration needs the ONNX's bisenet_deploy metadata to "
                                 "prepare images exactly as the engine is fed: export with "
                                 "`bisenet-export onnx`")
            import_pycuda_driver()
            calib_cache = options.calib_cache or default_calibration_cache_path(engine_path)
            check_writable(calib_cache, "the calibration cache")
            if options.calib_images:
                paths = list_calibration_images(options.calib_images)
                batch_size = calibration_batch_size(profile, in_dims[0], options)
                calib = CalibrationBatches(paths, record, batch_size, options.calib_max_images)
                log.info("INT8 calibration: %d batch(es) of %d from %s", len(calib), batch_size,
                         options.calib_images)
            elif not os.path.isfile(calib_cache):
                raise InputError("INT8 needs calibration images (--calib-images DIR) or an existing "
                                 "calibration cache (%s)" % calib_cache)
        for message in decision.warnings:
            log.warning("%s", message)
        for message in decision.notes:
            log.info("%s", message)

    # 2. parse
    with steps.step("parse %s" % os.path.basename(onnx_path)):
        logger = _trt_logger(trt, options.verbose)
        builder = trt.Builder(logger)
        config = builder.create_builder_config()
        features = detect_features(trt, builder, config)  # the real objects decide from here on
        if features.platform_fast_flags:  # the builder's own answer overrides the SM table
            table_warnings = set(decision.warnings)
            decision = decide_precision(
                requested, gpu.compute_capability, version, onnx_precision,
                platform_fast_fp16=builder.platform_has_fast_fp16,
                platform_fast_int8=builder.platform_has_fast_int8,
                strongly_typed_available=features.strongly_typed_flag)
            for message in decision.warnings:
                if message not in table_warnings:
                    log.warning("%s", message)
        flags = network_creation_flags(trt, features, decision.strongly_typed)
        network, parser, ok = _parse_network(trt, builder, logger, flags, onnx_bytes, onnx_path)
        if not ok:
            raise EngineError(explain_parser_errors(
                _parser_errors(parser), record, version, os.path.basename(onnx_path),
                summary["nodes"]))
        if network.num_inputs != 1:
            raise InputError("the parsed network has %d inputs, expected 1" % network.num_inputs)
        in_name, in_shape = _input_shape(network)
        profile = profile_for_input(in_name, in_shape, record, options.batch)
        io = _tensor_entries(network)

    # 3. configure
    with steps.step("configure"):
        kind, limit = workspace_setting(features, options.workspace_mib)
        _set_workspace(trt, config, kind, limit)
        if limit:
            log.info("workspace limit %d MiB (%s)", limit >> 20, kind)
        for flag in decision.flags:
            config.set_flag(getattr(trt.BuilderFlag, flag))
        if features.tf32_flag and not options.allow_tf32:
            config.clear_flag(trt.BuilderFlag.TF32)
            log.info("TF32 off: FP32 layers compute in full FP32 (--tf32 allows TF32)")
        profiles = []
        if profile is not None:
            _add_profile(builder, config, profile)
            profiles.append(profile_entry(*profile))
            log.info("optimization profile %s: min %s opt %s max %s", *profile)
        if options.opt_level is not None:
            config.builder_optimization_level = int(options.opt_level)
        _set_profiling_verbosity(trt, config, features)
        if cache_path is not None and features.timing_cache:
            _load_timing_cache(config, cache_path)
        calibrator = None
        if decision.needs_calibrator:
            # with only a cache, the calibrator hands TensorRT the cache and reads no images
            batches = calib if calib is not None else _NoImages()
            calibrator = make_entropy_calibrator(trt, batches, calib_cache, in_name)
            config.int8_calibrator = calibrator
            if profile is not None and features.calibration_profile:
                shape = [batches.batch_size] + list(profile[1][1:])
                _add_profile(builder, config, (in_name, shape, shape, shape), calibration=True)

    # 4. build
    with steps.step("build (TensorRT %s, %s)" % (version_string(version), decision.precision)):
        with _cuda_scope(calibrator is not None, options.gpu_index):
            try:
                engine_bytes = _build_serialized(builder, network, config)
            finally:
                if calibrator is not None:
                    calibrator.free()  # inside the context its buffer was allocated in
        if calibrator is not None and calibrator.error is not None:
            raise _calibration_error(calibrator.error)
        if engine_bytes is None:
            raise EngineError("TensorRT could not build the engine (see TensorRT's messages above; "
                              "re-run with --verbose for its full log). Out of memory? try a "
                              "smaller --workspace or batch range")
        if not engine_bytes:
            raise EngineError("TensorRT returned an empty engine")

    # 5. save
    with steps.step("save"):
        seconds = time.time() - start
        sidecar = make_sidecar(
            engine_path, sha256_bytes(engine_bytes), len(engine_bytes), trt.__version__,
            features.generation, gpu.as_dict(), decision.precision, io, profiles, onnx_path,
            sha256_bytes(onnx_bytes), record, _options_record(options, decision, cache_path,
                                                              calib_cache, calib),
            seconds, toolkit_version=options.toolkit_version or (record or {}).get(
                "toolkit_version"),
            precision_decision=decision.as_dict(),
            built_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        try:
            with atomic_output(engine_path) as tmp:
                with open(tmp, "wb") as f:
                    f.write(engine_bytes)
                write_sidecar(engine_path, sidecar)
        except (IOError, OSError) as exc:  # e.g. the disk filled up during the build
            raise EngineError("could not write the engine %s (%s)" % (engine_path, exc)) from None
        log.info("engine %s (%.1f MiB) and sidecar written", engine_path,
                 len(engine_bytes) / float(1 << 20))
        if cache_path is not None and features.timing_cache:
            try:
                size = _save_timing_cache(config, cache_path)
                log.info("timing cache saved: %s (%d bytes)", cache_path, size)
            except (IOError, OSError) as exc:  # only a cache: the engine is written
                log.warning("could not save the timing cache %s (%s)", cache_path, exc)
    total = time.time() - start
    log.info("built in %.1f s (%s)", total, ", ".join("%s %.1f s" % s for s in steps.done))
    return BuildResult(engine_path, sidecar_path(engine_path), sidecar, total, steps.done)


def _calibration_error(exc):
    """The error a calibrator callback caught, as the one-line error the user sees."""
    if isinstance(exc, UserError):
        return exc
    return EngineError("INT8 calibration failed: %s" % (exc,))


class _NoImages(object):
    """Stands in for calibration images when a calibration cache already exists."""

    batch_size = 1

    def __len__(self):
        return 0

    def __iter__(self):
        raise EngineError("the calibration cache was not accepted by TensorRT and no "
                          "--calib-images were given: delete the cache and pass --calib-images")


def _options_record(options, decision, cache_path, calib_cache, calib):
    out = {
        "precision": decision.precision,
        "flags": list(decision.flags),
        "strongly_typed": decision.strongly_typed,
        "workspace_mib": options.workspace_mib,
        "batch": list(options.batch) if options.batch else None,
        "opt_level": options.opt_level,
        "timing_cache": cache_path,
        "profiling_verbosity": "detailed",
    }
    if decision.needs_calibrator:
        out["calibration"] = {"images": options.calib_images, "cache": calib_cache,
                              "batches": len(calib) if calib is not None else 0,
                              "batch_size": calib.batch_size if calib is not None else None,
                              "algorithm": "entropy2"}
    return out


# -- `python3 -m portable.builder` (the Jetson bundle; no desktop CLI there) ---------------------

def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python3 -m %s.builder" % (__package__ or "portable"),
        description="Build a TensorRT engine from a bisenet-deploy ONNX (portable builder).")
    parser.add_argument("onnx")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--fp32", dest="precision", action="store_const", const="fp32")
    group.add_argument("--fp16", dest="precision", action="store_const", const="fp16")
    group.add_argument("--int8", dest="precision", action="store_const", const="int8")
    parser.add_argument("--calib-images")
    parser.add_argument("-o", "--output")
    parser.add_argument("--workspace", type=int, help="MiB")
    parser.add_argument("--timing-cache")
    parser.add_argument("--batch", help="MIN:OPT:MAX")
    parser.add_argument("--opt-level", type=int)
    parser.add_argument("--record", help="the metadata record JSON (default: read from the ONNX)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        batch = None
        if args.batch:
            try:
                batch = tuple(int(b) for b in args.batch.split(":"))
                if len(batch) != 3:
                    raise ValueError
            except ValueError:
                raise InputError("--batch %r is not MIN:OPT:MAX" % args.batch)
        record = None
        if args.record:
            try:
                with open(args.record) as f:
                    record = json.load(f)
            except (IOError, OSError, ValueError) as exc:
                raise InputError("cannot read the metadata record %s (%s)" % (args.record, exc))
        options = BuildOptions(precision=args.precision, output=args.output,
                               workspace_mib=args.workspace, timing_cache=args.timing_cache,
                               batch=batch, opt_level=args.opt_level,
                               calib_images=args.calib_images, verbose=args.verbose)
        result = build_engine(args.onnx, record, options)
    except UserError as exc:
        log.error("error: %s", exc)
        return exc.exit_code
    sys.stdout.write(result.engine_path + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
