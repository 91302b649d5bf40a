"""Backend specifications on the command line and opening them through the runtime factory.

A spec is ``BACKEND[:PATH][@PRECISION]``: ``onnxruntime:model.onnx``, ``tensorrt:m.plan@fp16``,
``torch`` (uses --checkpoint), ``torch-cuda@fp16``. Without a path the backend takes the model
file from the shared options (--checkpoint for torch, --onnx for onnxruntime, --engine for
tensorrt). The precision after ``@`` selects the tolerance table (and, for torch-cuda and
onnxruntime-trt, the precision they run at); without one it is read from the runner.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Dict, Optional, Tuple

from ..errors import InputError

log = logging.getLogger(__name__)

BACKENDS = ("torch", "torch-cuda", "onnxruntime", "onnxruntime-cuda", "onnxruntime-trt",
            "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")


class BackendSpec:
    def __init__(self, backend: str, path: Optional[str] = None, precision: Optional[str] = None,
                 text: Optional[str] = None):
        self.backend = backend
        self.path = path
        self.precision = precision
        self.text = text or backend

    @property
    def family(self) -> str:
        return self.backend.split("-")[0]

    def __repr__(self) -> str:
        return f"BackendSpec({self.text!r})"


def parse_spec(text: str) -> BackendSpec:
    raw = str(text).strip()
    body, precision = raw, None
    if "@" in raw:
        body, precision = raw.rsplit("@", 1)
        precision = precision.lower()
        if precision not in PRECISIONS:
            raise InputError(f"backend {raw!r}: precision {precision!r} after '@' must be one of "
                             f"{', '.join(PRECISIONS)}")
    backend, path = body, None
    if ":" in body:
        backend, path = body.split(":", 1)
        path = path or None
    backend = backend.lower()
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r} in {raw!r}: choose from "
                         f"{', '.join(BACKENDS)} (as BACKEND[:PATH][@PRECISION])")
    return BackendSpec(backend, path, precision, raw)


def resolve_path(spec: BackendSpec, *, checkpoint: Optional[str] = None, onnx: Optional[str] = None,
                 engine: Optional[str] = None) -> Optional[str]:
    """The model file of a spec: its own path, else the matching shared option."""
    if spec.path:
        return spec.path
    if spec.family == "tensorrt":
        if not engine:
            raise InputError(f"{spec.text}: the tensorrt backend needs an engine: "
                             f"tensorrt:PATH or --engine PATH (build one with "
                             f"`bisenet-build-engine`)")
        return engine
    if spec.family == "onnxruntime":
        if not onnx:
            raise InputError(f"{spec.text}: the onnxruntime backends need an ONNX file: "
                             f"{spec.backend}:PATH or --onnx PATH (make one with "
                             f"`bisenet-export onnx`)")
        return onnx
    return checkpoint  # torch: None means seeded random weights


def record_for_reference(record: Dict[str, Any]) -> Dict[str, Any]:
    """A candidate's record for the torch reference: same graph, fp32, both outputs."""
    rec = copy.deepcopy(record)
    export = rec["export"]
    export["output"] = "both"
    export["output_names"] = ["labels", "logits"]
    export["precision"] = "fp32"
    return rec


def network_size(image_size: Tuple[int, int], protocol: str) -> Tuple[int, int]:
    """Network input size for a protocol: full = the image size, paper = half of it (both
    rounded to multiples of 32, as BiSeNet V2 requires)."""
    w, h = image_size
    if protocol == "paper":
        w, h = w // 2, h // 2
    w32, h32 = max(32, int(round(w / 32.0)) * 32), max(32, int(round(h / 32.0)) * 32)
    return w32, h32


class ModelSource:
    """The model files and options a command was given; opens runners for backend specs.

    The PyTorch weights are loaded once (honouring --arch/--dataset/--num-classes) and shared by
    every torch runner the command opens, each with the record of the graph it must run.
    """

    def __init__(self, checkpoint=None, onnx=None, engine=None, arch=None, dataset=None,
                 num_classes=None, threads=None):
        self.checkpoint = checkpoint
        self.onnx = onnx
        self.engine = engine
        self.arch = arch
        self.dataset = dataset
        self.num_classes = num_classes
        self.threads = threads
        #: True once a command said itself whether the weights match (compare does)
        self.quiet_provenance = False
        self._loaded: Dict[Any, Any] = {}

    @classmethod
    def from_args(cls, args) -> "ModelSource":
        return cls(getattr(args, "checkpoint", None), getattr(args, "onnx", None),
                   getattr(args, "engine", None), getattr(args, "arch", None),
                   getattr(args, "dataset", None), getattr(args, "num_classes", None),
                   getattr(args, "threads", None))

    def loaded(self, checkpoint: Optional[str], like: Optional[Dict[str, Any]] = None):
        """(model, ModelMetadata) of a checkpoint, cached.

        Without a checkpoint: seeded random weights (the seed `bisenet-export onnx` uses), with
        the architecture and classes of `like` (a graph's model metadata) unless given.
        """
        arch, dataset, num_classes = self.arch, self.dataset, self.num_classes
        if checkpoint is None and like:
            arch = arch or like.get("arch")
            num_classes = num_classes or like.get("num_classes")
            if dataset is None and like.get("dataset") not in (None, "custom"):
                dataset = like.get("dataset")
        key = (checkpoint, arch, dataset, num_classes)
        for (ckpt, *_), (model, meta) in self._loaded.items():  # already loaded under other words
            if ckpt == checkpoint and arch in (None, meta.arch) and \
                    num_classes in (None, meta.num_classes) and dataset in (None, meta.dataset):
                return model, meta
        if key not in self._loaded:
            from ..checkpoint import load_model

            lm = load_model(checkpoint, arch=arch, dataset=dataset, num_classes=num_classes)
            self._loaded[key] = (lm.model, lm.metadata)
        return self._loaded[key]

    def torch_record(self, spec: BackendSpec, input_size, model_size, output="labels"):
        """The record for a torch spec's graph at these sizes (the default export's settings)."""
        from ..metadata import build_record
        from ..runtime.torch_runner import default_export_info

        _, meta = self.loaded(resolve_path(spec, checkpoint=self.checkpoint))
        record = build_record(meta)
        record["export"] = default_export_info(record["model"], input_size=list(input_size),
                                               model_size=list(model_size), output=output)
        return record

    def open(self, spec: BackendSpec, record: Optional[Dict[str, Any]] = None):
        """An inactive runner; torch specs need `record` (the graph to run)."""
        from ..runtime.factory import open_runner

        path = resolve_path(spec, checkpoint=self.checkpoint, onnx=self.onnx, engine=self.engine)
        options: Dict[str, Any] = {}
        if spec.precision == "fp16" and spec.backend in ("torch-cuda", "onnxruntime-trt"):
            options["precision"] = "fp16"
        if self.threads is not None and spec.family in ("torch", "onnxruntime"):
            options["threads"] = self.threads
        if spec.family == "tensorrt":
            return open_runner(spec.backend, engine=path, require_metadata=True, **options)
        if spec.family == "onnxruntime":
            return open_runner(spec.backend, onnx=path, require_metadata=True, **options)
        if record is None:
            raise InputError(f"{spec.text}: internal: a torch runner needs the graph record")
        wanted = (record.get("model") or {})
        model, meta = self.loaded(path, wanted)
        if wanted.get("weights") == "checkpoint" and meta.weights == "random-init":
            raise InputError(
                f"{spec.text}: the graph was exported from trained weights but no --checkpoint "
                f"was given, so PyTorch would run random weights: pass the checkpoint it was "
                f"exported from")
        if wanted.get("num_classes") not in (None, meta.num_classes):
            raise InputError(
                f"{spec.text}: the PyTorch model has {meta.num_classes} classes but the graph "
                f"it must reproduce has {wanted['num_classes']}: give the --checkpoint the ONNX/"
                f"engine was exported from")
        sha = wanted.get("checkpoint_sha256")
        if sha and meta.checkpoint_sha256 and sha != meta.checkpoint_sha256 and \
                not self.quiet_provenance:
            log.warning("the checkpoint %s is not the one the graph was exported from (sha256 "
                        "%s... vs %s...): expect differences", path, meta.checkpoint_sha256[:12],
                        sha[:12])
        return open_runner(spec.backend, record=record, model=model, **options)
