"""The metadata record that travels with a model: checkpoint -> ONNX `metadata_props` -> engine sidecar.

One record is built once and written into every artifact by that artifact's own mechanism, so
every tool downstream (runtime, calibrator, Jetson bundle, eval) reads preprocessing, class names
and sizes from the artifact instead of guessing. On disk it is plain JSON:

    {"schema": 1, "toolkit_version": "...", "model": {ModelMetadata}, "export": {ExportInfo}}

Code in `bisenet_deploy.portable` (Jetson, Python 3.6) reads the same JSON as plain dicts.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from . import __version__
from .errors import InputError, UnusableFileError

METADATA_KEY = "bisenet_deploy"
SCHEMA_VERSION = 1

CHANNEL_ORDERS = ("rgb", "bgr")
NORMALIZE_MODES = ("in-graph", "none")
OUTPUT_KINDS = ("labels", "logits", "both")
INPUT_DTYPES = ("float32", "uint8")


def palette_problem(palette: Any, num_classes: int) -> Optional[str]:
    """None for a palette of `num_classes` [R, G, B] colours with values 0..255, else what is
    wrong with it, in words a person can act on."""
    if not isinstance(palette, (list, tuple)):
        return f"the palette must be a list of [R, G, B] colours, got {palette!r}"
    if len(palette) != num_classes:
        return (f"the palette needs one [R, G, B] colour per class: {num_classes} for "
                f"{num_classes} class(es), got {len(palette)}")
    for i, colour in enumerate(palette):
        if not isinstance(colour, (list, tuple)) or len(colour) != 3 or not all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) and 0 <= v <= 255
                for v in colour):
            shown = list(colour) if isinstance(colour, tuple) else colour
            return (f"palette colour {i} is {shown!r}: each colour is [R, G, B] with whole "
                    f"numbers 0..255")
    return None


@dataclass
class DatasetFields:
    """The fields a model shares with the dataset it was trained on (`datasets.DatasetInfo`):
    what its output channels mean and how its input must be prepared, declared once for both.

    `mean`/`std` apply to pixel values scaled to 0..1 (pixel / 255), per channel, in the channel
    order given by `channel_order` (the order the network was trained on). `train_size` is
    [width, height]. Dataclass fields come from the last base to the first, so
    `ModelMetadata(DatasetFields, _ModelIdentity)` keeps its field order: _ModelIdentity's,
    these, then its own (DatasetInfo does the same with its `name`).
    """

    class_names: List[str]
    palette: List[List[int]]
    mean: List[float]
    std: List[float]
    channel_order: str = "rgb"
    ignore_index: int = 255
    train_size: List[int] = field(default_factory=lambda: [1024, 512])

    def dataset_fields(self) -> Dict[str, Any]:
        """These fields as fresh values (lists copied), e.g. to build the other class from."""
        return {f.name: _copied(getattr(self, f.name)) for f in dataclasses.fields(DatasetFields)}


def _copied(value: Any) -> Any:
    return [_copied(v) for v in value] if isinstance(value, (list, tuple)) else value


@dataclass
class _ModelIdentity:
    """ModelMetadata's leading fields (they come before the DatasetFields)."""

    arch: str
    num_classes: int
    dataset: str


@dataclass
class ModelMetadata(DatasetFields, _ModelIdentity):
    """What a deployable model is and how its input must be prepared.

    Fields, in order: arch, num_classes, dataset, the DatasetFields (class_names, palette, mean,
    std, channel_order, ignore_index, train_size [width, height]), then the ones below.
    """

    # "checkpoint" for trained weights, "random-init" for the seeded random initialisation
    weights: str = "checkpoint"
    # where the weights came from: "bisenet-deploy", "coincheung", "random-init"
    source: str = "bisenet-deploy"
    checkpoint_sha256: Optional[str] = None

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise InputError(f"num_classes must be >= 1, got {self.num_classes}")
        if len(self.class_names) != self.num_classes:
            raise InputError(
                f"{len(self.class_names)} class names given for {self.num_classes} classes")
        problem = palette_problem(self.palette, self.num_classes)
        if problem:
            raise InputError(problem)
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise InputError("mean and std need 3 values each, std > 0")
        if self.channel_order not in CHANNEL_ORDERS:
            raise InputError(f"channel_order must be one of {CHANNEL_ORDERS}")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ModelMetadata":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class ExportInfo:
    """How an ONNX graph (and the engines built from it) expects to be fed and what it returns.

    The graph input is N x 3 x H x W (NCHW) at `input_size`; with `normalize == "in-graph"` it
    holds pixel values 0..255 in `channel_order`, with "none" it is already normalized exactly as
    the PyTorch model takes it. `batch` is {"dynamic": False, "size": N} or
    {"dynamic": True, "min": a, "opt": b, "max": c} (the engine builder's optimization profile).
    """

    input_name: str
    input_size: List[int]
    model_size: List[int]
    input_dtype: str
    channel_order: str
    normalize: str
    output: str
    output_names: List[str]
    target: str
    precision: str
    opset: int
    batch: Dict[str, Any]
    #: which PyTorch exporter wrote the graph: "dynamo" (torch.export-based) or "torchscript";
    #: None in records made before the choice existed or without an ONNX export
    exporter: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ExportInfo":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def build_record(model: ModelMetadata, export: Optional[ExportInfo] = None) -> Dict[str, Any]:
    """The JSON-able record written into artifacts."""
    record: Dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "toolkit_version": __version__,
        "model": model.to_dict(),
    }
    if export is not None:
        record["export"] = export.to_dict()
    return record


def dumps_record(record: Dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True)


def loads_record(text: str) -> Dict[str, Any]:
    """Parse a record; a record from a newer, incompatible schema is refused clearly."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnusableFileError(f"the bisenet_deploy metadata is not valid JSON ({exc})") from None
    if not isinstance(record, dict) or "model" not in record:
        raise UnusableFileError("the bisenet_deploy metadata has no 'model' section")
    if int(record.get("schema", 0)) > SCHEMA_VERSION:
        raise UnusableFileError(
            f"the metadata was written by a newer bisenet-deploy (schema {record['schema']}, "
            f"this one reads {SCHEMA_VERSION}): upgrade bisenet-deploy")
    return record
