"""The pure decisions of an engine build, made before TensorRT does any work.

Optimization profile from the ONNX's dynamic batch or `--batch`; whether this TensorRT can take
the ONNX at all (opset ceiling, I/O dtypes, export target); the TensorRT-RTX compute-capability
targets; network creation flags and the workspace setting per API generation; the calibration
batch; and the one-line advice for parser failures. Every rule comes from the capabilities object
(capabilities.py), so each function is testable without TensorRT.

Python 3.6 compatible; pure.
"""

import logging

from ..trt.capabilities import format_targets
from ..shared.errors import EngineError, InputError
from ..trt.precision import parse_compute_capability
from ..shared.shell_words import quote_path
from ..trt.trt_api import GEN_11

log = logging.getLogger(__name__)

#: exports happen on the desktop; said wherever a message tells the user to re-export
JETSON_REEXPORT = (" (in a Jetson bundle: re-run `bisenet-export jetson` on the desktop and "
                   "copy the new bundle)")

TARGET_ORDER = ("trt8.2", "trt8.6", "trt10", "trt11")
DEFAULT_8_2_WORKSPACE_MIB = 1024


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


def check_onnx_supported(record, summary, caps):
    """Refuse an ONNX this TensorRT's parser cannot take; returns warnings for doubtful cases.

    Uses the metadata record (export target, input dtype), the graph's opset and the
    capabilities `caps` of the TensorRT that will parse it.
    """
    want = caps.export_target
    fix = "re-export with `bisenet-export onnx --target %s`%s" % (want, JETSON_REEXPORT)
    warnings = []
    opset = summary.get("opset") if summary else None
    if opset is None and record:
        opset = record["export"].get("opset")
    limit = caps.max_opset
    if opset is not None and limit is not None and int(opset) > limit:
        raise InputError("this ONNX uses opset %d but %s parses opset <= %d: %s"
                         % (int(opset), caps.label, limit, fix))
    if record:
        export = record["export"]
        dtype = export.get("input_dtype", "float32")
        try:
            caps.check_io_dtype(dtype, fix)
        except InputError as exc:
            raise InputError("the ONNX input is %s: %s" % (dtype, exc)) from None
        target = export.get("target")
        if target in TARGET_ORDER and TARGET_ORDER.index(target) > TARGET_ORDER.index(want):
            warnings.append("this ONNX was exported for %s but this is %s: if parsing fails, %s"
                            % (target, caps.label, fix))
    return warnings


def resolve_targets(caps, requested=None, gpu=None):
    """The compute capabilities an ahead-of-time (TensorRT-RTX) build targets, or None for a build
    for the GPU at hand (full TensorRT).

    requested: None (the portable default) or compute capabilities ('7.5', (8, 6), ...). A GPU
    here outside the targets gets a warning (the engine is for other machines), not a refusal.
    """
    if not caps.builds_without_gpu:
        if requested:
            raise InputError("%s builds for the GPU it runs on: --compute-capability chooses the "
                             "targets of a TensorRT-RTX build (--trt-flavour tensorrt-rtx), or goes "
                             "with --trtexec" % caps.label)
        return None
    available = caps.compute_targets or ()
    if requested:
        chosen = []
        for value in requested:
            cc = parse_compute_capability(value)
            if cc not in available:
                raise InputError(
                    "%s cannot build for SM %d.%d: it targets %s only. Pascal (GTX 1080 Ti) needs "
                    "full TensorRT 8.6, Jetson boards JetPack's TensorRT, data-centre GPUs full "
                    "TensorRT (`--trt-flavour tensorrt` on that machine)"
                    % (caps.label, cc[0], cc[1], format_targets(available)))
            if cc not in chosen:
                chosen.append(cc)
        targets = tuple(chosen)
    else:
        targets = caps.portable_targets
    if gpu is not None and tuple(gpu.compute_capability) not in targets:
        log.warning("this GPU (%s, SM %d.%d) is not among the engine's targets (%s): it will not "
                    "run here; add --compute-capability %d.%d to build for it", gpu.name,
                    gpu.compute_capability[0], gpu.compute_capability[1], format_targets(targets),
                    gpu.compute_capability[0], gpu.compute_capability[1])
    return targets


#: parser message fragments -> why, for the advice line
_PARSER_HINTS = (
    ("UINT8", "a UINT8 input the parser does not take"),
    ("opset", "an opset this parser does not take"),
    ("No importer registered", "an operator this parser does not know"),
    ("Resize scales must be an initializer", "a Resize with computed scales"),
    ("INT64", "INT64 tensors"),
    ("Plugin", "a custom (plugin) operator"),
)


def describe_parser_errors(errors, nodes=None):
    """"node 3 '/a/Resize' (Resize): message | ..." for parser errors (explain_parser_errors)."""
    parts = []
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
        parts.append("%s: %s" % (where, str(err.get("desc", "")).strip()))
    return " | ".join(parts) or "no details"


def explain_parser_errors(errors, record, caps, onnx_name="the ONNX", nodes=None):
    """One message for parser failures: each failing node (index, name, op) and the fix.

    errors: [{"node": int, "node_name": str or None, "desc": str, "code": str}]; nodes: the
    graph's [(name, op_type)] (from read_onnx_summary) to name nodes older parsers give by index.
    caps: the parsing TensorRT's capabilities.
    """
    target = caps.export_target
    reasons = []
    for err in errors:
        desc = str(err.get("desc", "")).strip()
        for fragment, reason in _PARSER_HINTS:
            if fragment.lower() in desc.lower() and reason not in reasons:
                reasons.append(reason)
    exported_for = (record or {}).get("export", {}).get("target")
    if exported_for and exported_for != target:
        fix = ("this ONNX was exported for %s; re-export it with `bisenet-export onnx --target "
               "%s`" % (exported_for, target))
    elif exported_for:
        fix = ("the export rules for %s should have prevented this: check the file with "
               "`bisenet-export check --target %s %s` and report it"
               % (target, target, quote_path(onnx_name)))
    else:
        fix = ("this ONNX was not exported by bisenet-deploy; export it with `bisenet-export onnx "
               "--target %s`, which keeps to what this parser takes" % target)
    why = (" (%s)" % "; ".join(reasons)) if reasons else ""
    return ("%s could not parse %s: %s%s. Fix: %s%s"
            % (caps.label, onnx_name, describe_parser_errors(errors, nodes), why, fix,
               JETSON_REEXPORT))


def network_creation_flags(trt, features, strongly_typed):
    """The create_network flag bits for this API generation (features: trt_api.BuilderFeatures)."""
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
