"""The JSON sidecar written beside every engine, and the check that stops an engine's misuse.

A serialized TensorRT engine runs only on the GPU model and TensorRT version that built it;
anything else fails deep inside TensorRT with "Version tag does not match" or "expecting compute
6.1 got 7.5". The sidecar records what the engine is (TensorRT version, GPU, precision, I/O
tensors, profiles), where it came from (ONNX sha256 and its bisenet_deploy metadata record) and how
it was built, so the runtime can refuse a mismatch with a message naming both sides, and every
tool reads preprocessing from the artifact itself. The engine file stays a plain TensorRT plan.

Schema 2 adds the flavour (full TensorRT or TensorRT-RTX, whose engines neither loads of the
other) and, for TensorRT-RTX, the compute capabilities the engine was built for (`targets`); its
`gpu` is the build machine's GPU, or null for an ahead-of-time build without one. Schema 1
sidecars (full TensorRT only) are still read.

Python 3.6 compatible; pure (no TensorRT).
"""

import json
import shlex
import os

from .capabilities import format_targets
from ..shared.errors import EngineError, EngineFileError, IncompatibleEngineError
from .engine_paths import sidecar_path
from ..files.fileio import sha256_file, write_json_atomic
from ..files.ownership import SIDECAR_KIND
from .flavours import FULL, RTX, flavour_label
from .gpu_info import slug
from ..shared.install_hints import pip_extra
from .precision import format_compute_capability, parse_compute_capability
from ..files.record_schema import parse_record, validate_record
from .trt_api import version_string

SIDECAR_SCHEMA = 2

REQUIRED_KEYS = ("schema", "kind", "tensorrt_version", "gpu", "precision", "io")

#: what to do about an engine that cannot be used here; the same code runs on the desktop (with the
#: `bisenet-build-engine` command) and inside the Jetson bundle (which has `./build_engine.sh`)
REBUILD_HINT = ("rebuild the engine on this machine (`bisenet-build-engine`, or "
                "`./build_engine.sh --force` in a Jetson bundle)")


def tensor_entry(name, mode, shape, dtype):
    """One I/O tensor: mode 'input'/'output', shape with -1 for dynamic dims, numpy dtype name."""
    if mode not in ("input", "output"):
        raise ValueError("mode must be 'input' or 'output'")
    return {"name": str(name), "mode": mode, "shape": [int(d) for d in shape], "dtype": str(dtype)}


def profile_entry(input_name, min_shape, opt_shape, max_shape):
    return {"input": str(input_name), "min": [int(d) for d in min_shape],
            "opt": [int(d) for d in opt_shape], "max": [int(d) for d in max_shape]}


def make_sidecar(engine_file, engine_sha256, engine_bytes, trt_version, api_generation, gpu,
                 precision, io, profiles, onnx_file, onnx_sha256, onnx_metadata, build_options,
                 build_seconds, builder="bisenet-build-engine", toolkit_version=None,
                 precision_decision=None, built_utc=None, flavour=FULL, targets=None,
                 capabilities=None, layer_precisions=None):
    """The sidecar dict. `gpu` is a dict with at least name and compute_capability ('8.6'), or
    None (TensorRT-RTX built without a GPU); `targets`: the compute capabilities a TensorRT-RTX
    engine runs on; `capabilities`: TensorRTCapabilities.as_dict() of the building TensorRT;
    `layer_precisions`: {precision: engine layers} from the build's own layer log, when it had one
    ("-": layers without data, such as stream synchronization)."""
    if gpu is not None:
        gpu = dict(gpu)
        gpu["compute_capability"] = format_compute_capability(gpu["compute_capability"])
    elif flavour != RTX:
        raise EngineError("a %s engine's sidecar needs the GPU it was built on"
                          % flavour_label(flavour))
    return {
        "schema": SIDECAR_SCHEMA,
        "kind": SIDECAR_KIND,
        "engine": {"file": os.path.basename(str(engine_file)), "sha256": engine_sha256,
                   "bytes": int(engine_bytes) if engine_bytes is not None else None},
        "flavour": flavour,
        "tensorrt_version": str(trt_version),
        "api_generation": api_generation,
        "targets": [format_compute_capability(t) for t in targets] if targets else None,
        "capabilities": capabilities,
        "gpu": gpu,
        "precision": precision,
        "precision_decision": precision_decision,
        "layer_precisions": layer_precisions,
        "io": list(io),
        "profiles": list(profiles),
        "onnx": {"file": os.path.basename(str(onnx_file)) if onnx_file else None,
                 "sha256": onnx_sha256},
        "onnx_metadata": onnx_metadata,
        "build": {"builder": builder, "options": dict(build_options),
                  "seconds": None if build_seconds is None else round(float(build_seconds), 3),
                  "built_utc": built_utc, "toolkit_version": toolkit_version},
    }


def write_sidecar(engine_path, sidecar):
    """Write the sidecar beside `engine_path` atomically; returns its path."""
    path = sidecar_path(engine_path)
    write_json_atomic(path, sidecar)
    return path


def refuse_onnx_as_engine(path):
    """An ONNX given where an engine is asked: say so (exit 5), instead of asking for the
    "engine's" sidecar to be rebuilt or saying it "was built with TensorRT"."""
    if str(path).lower().endswith(".onnx"):
        raise EngineFileError("%s is an ONNX model, not a TensorRT engine: build an engine from it "
                              "with `bisenet-build-engine %s` and give that engine, or give the "
                              "ONNX where an ONNX is asked (--onnx)" % (path, shlex.quote(str(path))))


def read_sidecar(engine_path):
    """Read and validate the sidecar of `engine_path` (or a sidecar .json path itself).

    A missing or corrupt sidecar is an EngineFileError (exit 5) saying how to get a good one.
    """
    engine_path = str(engine_path)
    refuse_onnx_as_engine(engine_path)
    path = engine_path if engine_path.endswith(".json") else sidecar_path(engine_path)
    rebuild = REBUILD_HINT + ", which writes the sidecar beside the engine"
    if not os.path.exists(path):
        raise EngineFileError("the engine's sidecar %s is missing, so nothing says which GPU, "
                              "TensorRT version and preprocessing the engine was built for; %s"
                              % (path, rebuild))
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise EngineFileError("the engine sidecar %s is corrupt (%s); %s"
                              % (path, exc, rebuild)) from None
    if not isinstance(data, dict) or data.get("kind") != SIDECAR_KIND:
        raise EngineFileError("%s is not a bisenet-deploy engine sidecar; %s" % (path, rebuild))
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise EngineFileError("the engine sidecar %s lacks %s; %s"
                              % (path, ", ".join(missing), rebuild))
    if int(data.get("schema", 0)) > SIDECAR_SCHEMA:
        raise EngineFileError("the engine sidecar %s was written by a newer bisenet-deploy "
                              "(schema %s, this one reads %d): upgrade bisenet-deploy"
                              % (path, data.get("schema"), SIDECAR_SCHEMA))
    flavour = data.setdefault("flavour", FULL)
    if flavour not in (FULL, RTX):
        raise EngineFileError("the engine sidecar %s names an unknown TensorRT flavour %r; %s"
                              % (path, flavour, rebuild))
    gpu = data.get("gpu")
    has_gpu = isinstance(gpu, dict) and "name" in gpu and "compute_capability" in gpu
    if flavour == RTX:
        targets = data.get("targets")
        if not isinstance(targets, list) or not targets or not (gpu is None or has_gpu):
            raise EngineFileError("the engine sidecar %s has no compute-capability targets; %s"
                                  % (path, rebuild))
    elif not has_gpu:
        raise EngineFileError("the engine sidecar %s has no GPU record; %s" % (path, rebuild))
    data["onnx_metadata"] = sidecar_record(data, path)
    return data


def sidecar_record(sidecar, source="the engine sidecar"):
    """The metadata record a sidecar carries ("onnx_metadata", a dict or its JSON text),
    validated like every record (record_schema: a RecordError naming `source` and the field), or
    None for an engine built from an ONNX without one."""
    record = sidecar.get("onnx_metadata") if isinstance(sidecar, dict) else None
    if record is None:
        return None
    remedy = "rebuild the engine from an ONNX made by `bisenet-export onnx`"
    if isinstance(record, str):
        return parse_record(record, source, require_export=True, remedy=remedy)
    return validate_record(record, source, require_export=True, remedy=remedy)


def sidecar_flavour(sidecar):
    """The flavour that built the engine ('tensorrt' for schema 1 sidecars)."""
    return (sidecar or {}).get("flavour") or FULL


def sidecar_targets(sidecar):
    """The compute capabilities (tuples) a TensorRT-RTX engine runs on, None for full TensorRT."""
    targets = (sidecar or {}).get("targets")
    return tuple(parse_compute_capability(t) for t in targets) if targets else None


def check_engine_file(engine_path, sidecar):
    """Refuse an engine file that is not the one the sidecar describes (replaced or truncated)."""
    want = (sidecar.get("engine") or {}).get("sha256")
    if not want:
        return
    got = sha256_file(engine_path)
    if got != want:
        raise EngineFileError("the engine %s does not match its sidecar (sha256 %s..., sidecar "
                              "says %s...): the engine was replaced or is damaged; %s"
                              % (engine_path, got[:12], want[:12], REBUILD_HINT))


def check_engine_compatible(sidecar, trt_version, gpu_name, compute_capability, flavour=FULL):
    """Raise IncompatibleEngineError if the engine was built for another TensorRT or GPU.

    The flavours must match (full TensorRT and TensorRT-RTX cannot load each other's engines).
    TensorRT versions are compared on MAJOR.MINOR.PATCH. A full TensorRT engine's GPU is compared on
    compute capability and model name (case and punctuation ignored); a TensorRT-RTX engine runs on
    any GPU among its targets. A `gpu_name`/`compute_capability` of None skips that part (e.g.
    nothing could identify the GPU); the TensorRT version is always required.
    """
    built_flavour = sidecar_flavour(sidecar)
    built_trt = sidecar.get("tensorrt_version")
    if built_flavour != flavour:
        raise IncompatibleEngineError(
            "this engine was built with %s %s and cannot be loaded by %s %s: the two do not read "
            "each other's engines. Run it where %s is installed (`%s`), or rebuild it here with "
            "`bisenet-build-engine --trt-flavour %s`%s"
            % (flavour_label(built_flavour), version_string(built_trt), flavour_label(flavour),
               version_string(trt_version), flavour_label(built_flavour),
               pip_extra("rtx" if built_flavour == RTX else "trt"), flavour, _onnx_hint(sidecar)))
    problems = []
    if version_string(built_trt) != version_string(trt_version):
        problems.append("it was built with %s %s and this machine has %s %s"
                        % (flavour_label(flavour), version_string(built_trt),
                           flavour_label(flavour), version_string(trt_version)))
    targets = sidecar_targets(sidecar)
    gpu = sidecar.get("gpu") or {}
    if targets is not None:
        if compute_capability is not None:
            here = parse_compute_capability(compute_capability)
            if here not in targets:
                problems.append("it was built for %s and this GPU is %s (SM %d.%d); rebuild with "
                                "`bisenet-build-engine --trt-flavour tensorrt-rtx "
                                "--compute-capability "
                                "%d.%d`" % (format_targets(targets), gpu_name or "unknown",
                                            here[0], here[1], here[0], here[1]))
    else:
        built_cc = parse_compute_capability(gpu.get("compute_capability"))
        built_name = gpu.get("name", "?")
        if compute_capability is not None:
            here_cc = parse_compute_capability(compute_capability)
            if here_cc != built_cc:
                problems.append("it was built for %s (SM %d.%d) and this GPU is %s (SM %d.%d)"
                                % (built_name, built_cc[0], built_cc[1], gpu_name or "unknown",
                                   here_cc[0], here_cc[1]))
                gpu_name = None  # already reported together with the capability
        if gpu_name is not None and slug(gpu_name) != slug(built_name):
            problems.append("it was built on a %s and this GPU is a %s" % (built_name, gpu_name))
    if problems:
        raise IncompatibleEngineError(
            "this engine cannot run here: %s. TensorRT engines only run on the GPU and TensorRT "
            "version they were built for: %s from the ONNX%s"
            % ("; ".join(problems), REBUILD_HINT, _onnx_hint(sidecar)))


def _onnx_hint(sidecar):
    onnx = (sidecar.get("onnx") or {}).get("file")
    return " (%s)" % onnx if onnx else ""


def summarize(sidecar):
    """One line for logs: precision, GPU (or targets), TensorRT flavour and version, input shape."""
    gpu = sidecar.get("gpu") or {}
    inputs = [t for t in sidecar.get("io", []) if t.get("mode") == "input"]
    shape = "x".join("N" if d < 0 else str(d) for d in inputs[0]["shape"]) if inputs else "?"
    targets = sidecar_targets(sidecar)
    where = (format_targets(targets) if targets is not None else
             "%s (SM %s)" % (gpu.get("name", "?"), gpu.get("compute_capability", "?")))
    return "%s engine for %s, %s %s, input %s" % (
        str(sidecar.get("precision", "?")).upper(), where,
        flavour_label(sidecar_flavour(sidecar)), sidecar.get("tensorrt_version", "?"), shape)
