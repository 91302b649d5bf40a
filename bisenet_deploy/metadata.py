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
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from . import __version__
from .errors import InputError
from .portable.files.record_schema import (  # noqa: F401  (the allowed values live there, once)
    CHANNEL_ORDERS,
    INPUT_DTYPES,
    MAX_CLASSES,
    METADATA_KEY,
    NORMALIZE_MODES,
    OUTPUT_KINDS,
    SCHEMA_VERSION,
    dataset_fields_problem,
    palette_problem,
    parse_record,
)


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
        # the same checks as the record's validator (portable/files/record_schema.py), so a record
        # the toolkit writes is one it reads back
        if not 1 <= self.num_classes <= MAX_CLASSES:
            raise InputError(f"num_classes must be 1..{MAX_CLASSES}, got {self.num_classes}")
        if len(self.class_names) != self.num_classes:
            raise InputError(
                f"{len(self.class_names)} class names given for {self.num_classes} classes")
        problem = dataset_fields_problem(self.dataset_fields(), self.num_classes)
        if problem:
            raise InputError(f"{problem[0]} {problem[1]}")

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
    #: precision "int8" only: the Q/DQ graph's calibration, agreement with the FP32 graph and
    #: layers kept float (export/int8_export.py documents the keys); absent otherwise
    int8: Optional[Dict[str, Any]] = None

    def to_dict(self) -> Dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["int8"] is None:
            del data["int8"]
        return data

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


#: what a damaged or missing record in an ONNX file asks for (export/onnx_metadata.py and the
#: onnxruntime runner, ort_runner.py, both read ONNX records)
ONNX_REMEDY = "export it again with `bisenet-export onnx`"


def dumps_record(record: Dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True)


def loads_record(text: str, source: str = "the model file", require_export: bool = False,
                 remedy: Optional[str] = None) -> Dict[str, Any]:
    """Parse and validate a record read from `source` (named in the error): every field checked
    by `portable.files.record_schema` (one validator for every artifact); a damaged record is a
    RecordError (exit 5) naming the file and the field, a newer schema's says to upgrade."""
    if remedy is None:
        return parse_record(text, source, require_export)
    return parse_record(text, source, require_export, remedy)
