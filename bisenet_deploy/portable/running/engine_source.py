"""What a TensorRT runner runs: an engine file, a serialized engine in memory, or a deserialized one.

The runner contract promises cheap construction, so `EngineSource` only sorts the model into one
of the three kinds; the file (and its sidecar) is read when the runner is activated. A file
source knows its sidecar and its flavour (from the sidecar, else the file's header); bytes and an
already-deserialized engine have no sidecar unless one is named; their flavour is the sidecar's,
else the bytes' header or the engine's module (`tensorrt_rtx*`: TensorRT-RTX).

Python 3.6 compatible; imports no TensorRT.
"""

import os
import types

from .engine_load import RTX_ENGINE_MAGIC, engine_flavour, import_for_engine, load_sidecar
from ..shared.errors import InputError
from ..trt.flavours import FULL, RTX, flavour_of, import_flavour
from ..trt.sidecar import refuse_onnx_as_engine

PATH, BYTES, ENGINE = "path", "bytes", "engine"


class EngineSource(object):
    """An engine path (str or os.PathLike), serialized engine bytes, or an ICudaEngine."""

    def __init__(self, model):
        if isinstance(model, (bytes, bytearray, memoryview)):
            self.kind, self.path, self._blob, self.engine = BYTES, None, bytes(model), None
        elif isinstance(model, (str, os.PathLike)):
            self.kind, self.path, self._blob, self.engine = PATH, os.fspath(model), None, None
            refuse_onnx_as_engine(self.path)  # by its name: construction stays cheap
        elif hasattr(model, "create_execution_context"):
            self.kind, self.path, self._blob, self.engine = ENGINE, None, None, model
        else:
            raise InputError("a TensorRT runner takes an engine path, serialized engine bytes or "
                             "a deserialized engine, got %s" % type(model).__name__)

    def label(self):
        """How messages name the engine."""
        if self.kind == PATH:
            return self.path
        if self.kind == BYTES:
            return "the serialized engine (%d bytes)" % len(self._blob)
        return "the deserialized engine"

    def check_exists(self):
        """A missing engine file is the user's to fix (exit code 2); a stat, no reading."""
        if self.kind == PATH and not os.path.isfile(self.path):
            raise InputError("engine file %s does not exist: build it first "
                             "(`bisenet-build-engine`, or `./build_engine.sh` in a Jetson bundle)"
                             % self.path)

    def sidecar(self, sidecar_path=None):
        """(path, dict) of the sidecar: beside a file, or the one named; (None, None) if none."""
        if self.kind == PATH:
            return load_sidecar(self.path, sidecar_path)
        if sidecar_path:
            return load_sidecar(sidecar_path, sidecar_path)
        return None, None

    def flavour(self, sidecar=None):
        """FULL or RTX: the sidecar's, else the file's or bytes' header, else the engine's module."""
        if self.kind == PATH:
            return engine_flavour(self.path, sidecar)
        if sidecar is not None:
            return engine_flavour(None, sidecar)
        if self.kind == BYTES:
            return RTX if self._blob.startswith(RTX_ENGINE_MAGIC) else FULL
        return flavour_of(types.SimpleNamespace(__name__=type(self.engine).__module__))

    def import_tensorrt(self, sidecar=None):
        """The TensorRT module that loads (or made) this engine."""
        if self.kind == PATH:
            return import_for_engine(self.path, sidecar)
        return import_flavour(self.flavour(sidecar))  # an engine's own flavour: its module's

    def blob(self):
        """The serialized engine: read from the file now (at activation), or the bytes given."""
        if self.kind == BYTES:
            return self._blob
        with open(self.path, "rb") as fh:
            return fh.read()

