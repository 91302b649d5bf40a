"""What TensorRT made of the network: per-layer precision and fusions, from the engine inspector.

Engines are built with detailed profiling verbosity, so the inspector's JSON lists every engine
layer with its type, I/O formats (which carry the precision) and the ONNX nodes fused into it.
That answers the questions users ask after an FP16/INT8 build: did the layers really run in FP16,
and what was fused. Parsing is pure and tested; only `inspect_engine` needs TensorRT.

Python 3.6 compatible.
"""

import json
import logging

from .errors import EngineError, EngineFileError
from .trt_api import import_tensorrt

log = logging.getLogger(__name__)

_PRECISION_WORDS = (
    ("FP32", "fp32"), ("FLOAT", "fp32"), ("FP16", "fp16"), ("HALF", "fp16"), ("BF16", "bf16"),
    ("FP8", "fp8"), ("UINT8", "uint8"), ("INT8", "int8"), ("INT32", "int32"), ("INT64", "int64"),
    ("BOOL", "bool"),
)


class LayerInfo(object):
    """One engine layer: name, TensorRT layer type, precision, and the original layers fused in."""

    def __init__(self, name, layer_type, precision, fused, tactic=None):
        self.name = name
        self.layer_type = layer_type
        self.precision = precision
        self.fused = list(fused)
        self.tactic = tactic

    def as_dict(self):
        return {"name": self.name, "type": self.layer_type, "precision": self.precision,
                "fused": list(self.fused), "tactic": self.tactic}


def precision_of_format(text):
    """'Row major linear FP16 format' / 'Channel major FP32 format where...' -> 'fp16'/'fp32'."""
    upper = str(text).upper()
    for word, name in _PRECISION_WORDS:
        if word in upper:
            return name
    return "?"


def fused_layers(name, metadata=None):
    """The source layers an engine layer fuses.

    Newer TensorRT lists the ONNX nodes in `Metadata` ('[ONNX Layer: /a/Conv]' entries separated by
    \\x1f); otherwise the engine layer name joins them with ' + ' ('Conv_3 + Relu_4'), with
    'PWN(...)' around pointwise fusions.
    """
    if metadata:
        parts = [p.strip() for p in str(metadata).split("\x1f") if p.strip()]
        names = []
        for part in parts:
            if part.startswith("[ONNX Layer:") and part.endswith("]"):
                part = part[len("[ONNX Layer:"):-1].strip()
            names.append(part)
        if names:
            return names
    text = str(name)
    if text.startswith("PWN(") and text.endswith(")"):
        text = text[4:-1]
    pieces = []
    for piece in text.split(" + "):
        piece = piece.strip()
        while piece.startswith("PWN(") and piece.endswith(")"):
            piece = piece[4:-1]
        for sub in piece.split(", "):
            if sub.strip():
                pieces.append(sub.strip().strip("()"))
    return pieces or [str(name)]


def parse_engine_information(text):
    """The inspector's JSON (`get_engine_information(LayerInformationFormat.JSON)`) -> LayerInfo list.

    With detailed verbosity `Layers` holds dicts; an engine built without it holds only names, and
    the precision is then unknown ('?').
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise EngineError("the engine inspector returned unreadable JSON (%s)" % exc) from None
    layers = data.get("Layers", []) if isinstance(data, dict) else []
    out = []
    for layer in layers:
        if isinstance(layer, str):
            out.append(LayerInfo(layer, "?", "?", fused_layers(layer)))
            continue
        name = layer.get("Name", "?")
        outputs = layer.get("Outputs") or []
        inputs = layer.get("Inputs") or []
        fmt = ""
        if outputs:
            fmt = outputs[0].get("Format/Datatype", "")
        elif inputs:
            fmt = inputs[0].get("Format/Datatype", "")
        precision = precision_of_format(fmt) if fmt else "?"
        out.append(LayerInfo(name, layer.get("LayerType", "?"), precision,
                             fused_layers(name, layer.get("Metadata")), layer.get("TacticName")))
    return out


def precision_summary(layers):
    """{'fp16': 120, 'fp32': 8, ...} counted over engine layers."""
    counts = {}
    for layer in layers:
        counts[layer.precision] = counts.get(layer.precision, 0) + 1
    return counts


def format_layer_table(layers, name_width=60):
    """A plain aligned table: index, precision, type, fused count, name; and a summary line."""
    rows = [("#", "precision", "type", "fused", "layer")]
    for i, layer in enumerate(layers):
        name = layer.name if len(layer.name) <= name_width else layer.name[:name_width - 3] + "..."
        rows.append((str(i), layer.precision, layer.layer_type, str(len(layer.fused)), name))
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(row[c].ljust(widths[c]) for c in range(4)) + "  " + row[4])
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 5)
    summary = precision_summary(layers)
    lines.append("%d engine layers: %s" % (len(layers), ", ".join(
        "%s %d" % (k, summary[k]) for k in sorted(summary))))
    return "\n".join(lines)


def engine_information(engine_path, trt=None):
    """Deserialize the engine and return the inspector's JSON text (needs TensorRT + a GPU)."""
    trt = trt or import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    with open(str(engine_path), "rb") as f:
        blob = f.read()
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(blob)
    if engine is None:
        raise EngineFileError("TensorRT could not load %s (built by another TensorRT version or "
                              "for another GPU? check its sidecar)" % engine_path)
    if not hasattr(engine, "create_engine_inspector"):
        raise EngineError("this TensorRT has no engine inspector (needs 8.2+)")
    inspector = engine.create_engine_inspector()
    return inspector.get_engine_information(trt.LayerInformationFormat.JSON)


def inspect_engine(engine_path, trt=None):
    """LayerInfo list of an engine file."""
    layers = parse_engine_information(engine_information(engine_path, trt))
    if layers and all(layer.precision == "?" for layer in layers):
        log.warning("the engine was built without detailed profiling verbosity: only layer names "
                    "are known; rebuild with bisenet-build-engine (./build_engine.sh --force in a "
                    "Jetson bundle) to see precisions")
    return layers
