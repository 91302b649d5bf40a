"""Deserializing an engine, and what comes before and around it: its sidecar, its flavour, and
TensorRT-RTX's caches.

- `engine_from_path` / `engine_from_bytes` are the one way engines are deserialized (runner,
  inspector, the sidecar of a trtexec build): with the process's one TensorRT logger, TensorRT-RTX's
  validity check first, and a refusal that quotes TensorRT's own error lines.
- `sidecar_from_engine` writes, for an engine another tool built (trtexec, on the desktop and in
  the Jetson bundle), the sidecar our builder writes, read off the engine itself.

- The sidecar beside an engine says which TensorRT flavour, version and GPU (or TensorRT-RTX
  targets) it was built for; an engine without one is recognised as TensorRT-RTX by its header.
- The flavour decides which TensorRT to import. An engine whose flavour is not installed here is
  refused in one line saying what to install, and that the other flavour cannot stand in.
- TensorRT-RTX compiles its kernels on the GPU when a context is created; the runtime cache beside
  the engine (`<engine-stem>.sm<XY>.runtime.cache`) keeps them, so that happens once per GPU.

Python 3.6 compatible; TensorRT is passed in or imported lazily.
"""

import logging
import os
import time

from ..trt.engine_paths import runtime_cache_path, sidecar_path as default_sidecar_path
from ..shared.errors import (EngineError, EngineFileError, IncompatibleEngineError, InputError,
                     MissingDependencyError)
from ..files.fileio import sha256_file, write_bytes_atomic
from ..trt.flavours import (FULL, RTX, available_flavours, flavour_label, import_flavour,
                            install_hint)
from ..trt.sidecar import (check_engine_compatible, check_engine_file, make_sidecar, profile_entry,
                      read_sidecar, sidecar_flavour, sidecar_record, tensor_entry)
from ..trt.trt_api import api_generation
from ..trt.trt_logger import errors as tensorrt_errors, quote, tensorrt_logger

log = logging.getLogger(__name__)

#: the first bytes of a TensorRT-RTX engine (full TensorRT plans start differently)
RTX_ENGINE_MAGIC = b"vtrt"


def record_from_sidecar(sidecar):
    """The bisenet_deploy metadata record stored in a sidecar dict ("onnx_metadata"), validated
    (read_sidecar validated it already where the sidecar came from a file)."""
    return sidecar_record(sidecar)


def load_sidecar(engine_path, sidecar_path=None):
    """(path, dict) of the engine's sidecar, or (None, None) when there is none beside it.

    An explicitly given sidecar must exist; a corrupt one is an EngineFileError either way.
    """
    path = sidecar_path or default_sidecar_path(engine_path)
    if not os.path.isfile(path):
        if sidecar_path:
            raise EngineFileError("the engine sidecar %s does not exist" % sidecar_path)
        return None, None
    return path, read_sidecar(path if path.endswith(".json") else engine_path)


def check_sidecar(engine_path, sidecar, trt_version, gpu_name, compute_capability, flavour=FULL):
    """Refuse an engine that is not the sidecar's file or was built for another flavour, GPU or
    TensorRT version (the checks live in portable/trt/sidecar.py)."""
    check_engine_file(engine_path, sidecar)
    check_engine_compatible(sidecar, trt_version, gpu_name, compute_capability, flavour)


def engine_flavour(engine_path, sidecar=None):
    """The flavour that built the engine: its sidecar's, else read from the file's header."""
    if sidecar is not None:
        return sidecar_flavour(sidecar)
    try:
        with open(str(engine_path), "rb") as f:
            head = f.read(len(RTX_ENGINE_MAGIC))
    except (IOError, OSError):
        return FULL
    return RTX if head == RTX_ENGINE_MAGIC else FULL


def import_for_engine(engine_path, sidecar=None):
    """The TensorRT module that can load this engine, or a one-line MissingDependencyError: the
    flavour that built it is missing (and, when the other flavour is here, that it cannot stand
    in)."""
    flavour = engine_flavour(engine_path, sidecar)
    try:
        return import_flavour(flavour)
    except MissingDependencyError:
        others = [f for f in available_flavours() if f != flavour]
        if not others:
            raise
        built = (sidecar or {}).get("tensorrt_version")
        raise MissingDependencyError(
            "%s was built with %s%s, which is not installed here, and the %s installed here cannot "
            "load it (neither loads the other's engines): %s, or rebuild the engine with "
            "`bisenet-build-engine --trt-flavour %s`"
            % (engine_path, flavour_label(flavour), " " + built if built else "",
               flavour_label(others[0]), install_hint(flavour), others[0])) from None


def check_engine_validity(trt, runtime, blob, engine_path):
    """Where the runtime can tell (TensorRT-RTX's get_engine_validity), refuse an engine this
    machine cannot run before deserializing it, naming TensorRT's reasons."""
    if not hasattr(runtime, "get_engine_validity"):
        return
    try:
        validity, diagnostics = runtime.get_engine_validity(blob)
    except Exception as exc:  # an older binding without this call: deserialize will tell
        log.debug("get_engine_validity: %s", exc)
        return
    verdict = getattr(validity, "name", str(validity)).split(".")[-1]
    if verdict == "SUBOPTIMAL":
        log.warning("TensorRT-RTX says %s runs, but not at its best, on this GPU: build it for "
                    "this GPU (`bisenet-build-engine --compute-capability X.Y`)", engine_path)
    if verdict != "INVALID":
        return
    reasons = []
    enum = getattr(trt, "EngineInvalidityDiagnostics", None)
    for name, member in (getattr(enum, "__members__", None) or {}).items():
        try:
            if int(diagnostics) & int(member):
                reasons.append(name.lower().replace("_", " "))
        except (TypeError, ValueError):
            break
    raise IncompatibleEngineError(
        "%s cannot run %s here (%s): rebuild it with `bisenet-build-engine` for this GPU"
        % (trt.__name__.split(".")[0], engine_path, ", ".join(reasons) or "invalid engine"))


def engine_from_bytes(trt, blob, source, message=None, error=EngineFileError):
    """(engine, runtime) deserialized from `blob` with the process's one TensorRT logger; keep the
    runtime as long as the engine. `source` names the engine in messages. An engine TensorRT
    refuses raises `error(message)`, TensorRT's own error lines appended; the default message says
    the usual causes."""
    runtime = trt.Runtime(tensorrt_logger(trt))
    check_engine_validity(trt, runtime, blob, source)
    with tensorrt_errors(tensorrt_logger(trt)) as said:
        engine = runtime.deserialize_cuda_engine(blob)
    if engine is None:
        if message is None:
            message = ("TensorRT could not load %s: built by another TensorRT version or for "
                       "another GPU (check its sidecar), or no GPU here (engines, TensorRT-RTX's "
                       "too, are only loaded on a GPU)" % source)
        raise error(message + quote(said))
    return engine, runtime


def engine_from_path(trt, path, message=None, error=EngineFileError):
    """engine_from_bytes of the file at `path`."""
    with open(str(path), "rb") as f:
        blob = f.read()
    return engine_from_bytes(trt, blob, str(path), message, error)


def sidecar_from_engine(trt, engine_file, engine_path, gpu, precision, onnx_path, record, options,
                        seconds, builder="trtexec", precision_decision=None):
    """The sidecar our builder writes, for the engine in `engine_file` that another tool built
    (full TensorRT only). `engine_path`: where the engine will live (a temporary file is often
    read); `gpu`: the GpuInfo it was built on; `options`: what the sidecar records of the build."""
    from .engine_io import engine_io  # numpy: only when there is an engine to read

    refused = "TensorRT cannot load the engine %s wrote (%s)" % (builder, engine_file)
    engine, _runtime = engine_from_path(trt, engine_file, refused, EngineError)
    io, profiles = [], []
    for t in engine_io(engine, trt):
        io.append(tensor_entry(t.name, "input" if t.is_input else "output", t.shape,
                               t.dtype.name))
        if t.is_input and t.profile is not None:
            profiles.append(profile_entry(t.name, *t.profile))
    del engine
    return make_sidecar(
        engine_path, sha256_file(engine_file), os.path.getsize(engine_file), trt.__version__,
        api_generation(trt), gpu.as_dict(), precision, io, profiles, onnx_path,
        sha256_file(onnx_path), record, options, seconds, builder=builder,
        toolkit_version=(record or {}).get("toolkit_version"),
        precision_decision=precision_decision,
        built_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


class RuntimeCache(object):
    """TensorRT-RTX's runtime cache of one engine on one GPU, loaded from and saved to a file."""

    def __init__(self, engine_path, compute_capability):
        self.path = runtime_cache_path(engine_path, compute_capability)
        self.config = None
        self.cache = None
        self.loaded_bytes = 0

    def runtime_config(self, engine):
        """The engine's IRuntimeConfig with the cache attached (loaded from disk when present)."""
        self.config = engine.create_runtime_config()
        self.cache = self.config.create_runtime_cache()
        if os.path.isfile(self.path):
            with open(self.path, "rb") as f:
                blob = f.read()
            if self.cache.deserialize(blob):
                self.loaded_bytes = len(blob)
                log.info("runtime cache %s loaded (%d bytes): no kernel compilation", self.path,
                         len(blob))
            else:
                log.warning("the runtime cache %s was made for another GPU, driver or "
                            "TensorRT-RTX: compiling the kernels again (it is replaced)", self.path)
        if not self.config.set_runtime_cache(self.cache):
            log.warning("TensorRT-RTX did not accept a runtime cache: kernels are compiled on "
                        "every load")
            self.cache = None
        return self.config

    def save(self):
        """Write the cache beside the engine (atomically); a failure only costs compile time."""
        if self.cache is None:
            return 0
        try:
            data = bytes(self.cache.serialize())
            if data and len(data) != self.loaded_bytes:
                write_bytes_atomic(self.path, data)
                log.info("runtime cache saved: %s (%d bytes)", self.path, len(data))
            return len(data)
        except (IOError, OSError, InputError) as exc:  # InputError: a folder that cannot be made
            log.warning("could not save the runtime cache %s (%s)", self.path, exc)
            return 0
