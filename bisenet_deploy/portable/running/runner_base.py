"""The contract every inference backend implements, so one timing loop and one parity check serve all.

A runner is created cheaply, `activate()`d (load model, allocate buffers, create contexts),
fed with `infer(batch)` any number of times and `deactivate()`d, which frees everything; it is
also a context manager. `infer` takes the graph input exactly as the exported ONNX declares it
(N x 3 x H x W, dtype and value range per the export metadata) as a host numpy array and returns
host numpy arrays by output name ("labels": int32 N x H x W, "logits": float N x C x H x W).
Timing `infer` therefore measures end-to-end latency: host input -> host output.

Python 3.6 compatible (see the package docstring).
"""

from typing import Optional, Tuple  # noqa: F401 (type comments)

import numpy as np

from ..shared.errors import InputError, UserError


class TensorSpec(object):
    """Name, shape (-1 for a dynamic dimension) and numpy dtype of one model input or output."""

    def __init__(self, name, shape, dtype):
        self.name = str(name)
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)

    def __repr__(self):
        return "TensorSpec(%r, %r, %s)" % (self.name, self.shape, self.dtype.name)

    def __eq__(self, other):
        return (isinstance(other, TensorSpec) and self.name == other.name
                and self.shape == other.shape and self.dtype == other.dtype)

    def describe(self):
        dims = "x".join("?" if d < 0 else str(d) for d in self.shape)
        return "%s %s %s" % (self.name, dims, self.dtype.name)


class Runner(object):
    """Base class: subclasses implement `_activate`, `_deactivate`, `_infer` and the specs."""

    #: short backend name used in reports: "tensorrt", "onnxruntime", "torch"
    backend = "abstract"

    #: attributes the first activation may fill in from the model and keep (specs, metadata,
    #: what the backend chose): after deactivate() every other attribute is as before activate()
    model_facts = ()  # type: Tuple[str, ...]

    def __init__(self):
        self.is_active = False
        #: the bisenet_deploy metadata record (dict) of the model, when known
        self.metadata = None

    # -- lifecycle -----------------------------------------------------------------------------
    def activate(self):
        if not self.is_active:
            self._activate()
            self.is_active = True
        return self

    def deactivate(self):
        if self.is_active:
            try:
                self._deactivate()
            finally:
                self.is_active = False

    def __enter__(self):
        return self.activate()

    def __exit__(self, exc_type, exc, tb):
        self.deactivate()
        return False

    # -- description ---------------------------------------------------------------------------
    def describe(self):
        """One line for reports: backend, device, precision."""
        return self.backend

    def input_spec(self):
        """TensorSpec of the single image input."""
        raise NotImplementedError

    def output_specs(self):
        """List of TensorSpec, one per output, in the model's order."""
        raise NotImplementedError

    # -- inference -----------------------------------------------------------------------------
    def infer(self, batch):
        """Run one batch; returns {output name: host numpy array}."""
        if not self.is_active:
            raise UserError("the %s runner is not active: call activate() or use it as a "
                            "context manager" % self.backend)
        self.check_input(batch)
        return self._infer(batch)

    def last_device_time_ms(self):
        """Device compute time of the last `infer` (CUDA events), or None where not measured."""
        return None

    #: how `last_phase_times_ms` measures ("cuda-events" or "host-clock"), None: it does not
    phase_clock = None  # type: Optional[str]

    def last_phase_times_ms(self):
        """{"h2d", "compute", "d2h"} ms of the last `infer` (portable/shared/phase_timing.py), or None
        where the backend has no copies to separate (CPU) or does not measure them."""
        return None

    def check_input(self, batch):
        """Refuse a batch whose shape or dtype does not fit the model, naming both."""
        spec = self.input_spec()
        if not isinstance(batch, np.ndarray):
            raise InputError("input must be a numpy array, got %s" % type(batch).__name__)
        if batch.dtype != spec.dtype:
            raise InputError("input %r must be %s, got %s (the model was exported with this input "
                             "dtype)" % (spec.name, spec.dtype.name, batch.dtype.name))
        if batch.ndim != len(spec.shape) or any(
                want >= 0 and want != got for want, got in zip(spec.shape, batch.shape)):
            raise InputError("input %r must have shape %s, got %s" % (
                spec.name, "x".join("N" if d < 0 else str(d) for d in spec.shape),
                "x".join(str(d) for d in batch.shape)))
        self._check_batch_size(batch.shape[0])

    def _check_batch_size(self, n):
        """Subclasses with a batch range (dynamic profiles) refuse sizes outside it."""

    def _activate(self):
        raise NotImplementedError

    def _deactivate(self):
        raise NotImplementedError

    def _infer(self, batch):
        raise NotImplementedError


def specs_from_record(record):
    """(input TensorSpec, [output TensorSpec]) that a graph exported with this record declares.

    Labels are int32 N x H x W, logits float32 N x C x H x W (fp16 exports cast at the I/O
    boundary), at the graph input size; N is -1 for a dynamic batch.
    """
    export, model = record["export"], record["model"]
    width, height = int(export["input_size"][0]), int(export["input_size"][1])
    batch = export.get("batch") or {"dynamic": False, "size": 1}
    n = -1 if batch.get("dynamic") else int(batch.get("size", 1))
    in_dtype = np.uint8 if export["input_dtype"] == "uint8" else np.float32
    inp = TensorSpec(export.get("input_name", "image"), (n, 3, height, width), in_dtype)
    outs = []
    for name in export["output_names"]:
        if name == "labels":
            outs.append(TensorSpec(name, (n, height, width), np.int32))
        else:
            outs.append(TensorSpec(name, (n, int(model["num_classes"]), height, width),
                                   np.float32))
    return inp, outs
