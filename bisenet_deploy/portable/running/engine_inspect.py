"""What TensorRT made of the network: per-layer precision and fusions, from the engine inspector.

Engines are built with detailed profiling verbosity, so the inspector's JSON lists every engine
layer with its type, I/O formats (which carry the precision) and the ONNX nodes fused into it.
That answers the questions users ask after an FP16/INT8 build: did the layers really run in FP16,
and what was fused. Parsing is pure and tested; only `inspect_engine` needs TensorRT (and a GPU:
an engine is only deserialized on one, TensorRT-RTX's included).

The JSON differs by version: full TensorRT up to 10.x describes each input/output with one
"Format/Datatype" string; TensorRT 11 and TensorRT-RTX split it into "Datatype" and "Format".
Both are read.

Python 3.6 compatible.
"""

import json
import logging
import re

from .engine_load import engine_from_path, import_for_engine, load_sidecar
from ..shared.errors import EngineError

log = logging.getLogger(__name__)

_PRECISION_WORDS = (
    ("FP32", "fp32"), ("FLOAT", "fp32"), ("FP16", "fp16"), ("HALF", "fp16"), ("BF16", "bf16"),
    ("FP8", "fp8"), ("UINT8", "uint8"), ("INT8", "int8"), ("INT32", "int32"), ("INT64", "int64"),
    ("BOOL", "bool"),
)


#: the "precision" of a layer with no data inputs/outputs (TensorRT-RTX's stream signal/wait)
NO_DATA = "-"


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


def tensor_type_text(tensor):
    """The text naming one I/O tensor's data type: 'Format/Datatype' (TensorRT <= 10.x), else
    'Datatype' (TensorRT 11, TensorRT-RTX; 'Format' then holds only the layout)."""
    if not isinstance(tensor, dict):
        return ""
    return str(tensor.get("Format/Datatype") or tensor.get("Datatype") or "")


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
        tensors = (layer.get("Outputs") or []) + (layer.get("Inputs") or [])
        fmt = tensor_type_text(tensors[0]) if tensors else ""
        precision = precision_of_format(fmt) if fmt else ("?" if tensors or "Inputs" not in layer
                                                          else NO_DATA)
        out.append(LayerInfo(name, layer.get("LayerType", "?"), precision,
                             fused_layers(name, layer.get("Metadata")), layer.get("TacticName")))
    return out


_DATATYPE = re.compile(r"Datatype: (\w+)")
_ONNX_LAYER = re.compile(r"\[ONNX Layer: ([^\]]*)\]")


def _between(line, start, end):
    i = line.find(start)
    j = line.find(end, i + len(start)) if i >= 0 else -1
    return line[i + len(start):j] if i >= 0 and j >= 0 else ""


def parse_build_log_layers(text):
    """The layer list a build logs at VERBOSE severity with detailed profiling verbosity
    ("Layers:" then one "Name: ..., LayerType: ..., Inputs: [...], ..., Outputs: [...],
    TacticName: ..., Metadata: ..." line per layer) -> LayerInfo list. TensorRT-RTX logs it at
    build time without a GPU, where its engines cannot be inspected; [] when the text has none."""
    out = []
    for line in str(text).splitlines():
        if not line.startswith("Name: ") or ", LayerType: " not in line:
            continue
        name = line[len("Name: "):line.find(", LayerType: ")]
        layer_type = _between(line, ", LayerType: ", ",") or "?"
        types = (_DATATYPE.findall(_between(line, "Outputs: [", "], TacticName:"))
                 or _DATATYPE.findall(_between(line, "Inputs: [", "], Constants:")))
        no_io = "Inputs: [], " in line and "Outputs: [], " in line
        fused = _ONNX_LAYER.findall(line[line.find("Metadata: "):]) if "Metadata: " in line else []
        precision = precision_of_format(types[0]) if types else (NO_DATA if no_io else "?")
        out.append(LayerInfo(name, layer_type, precision,
                             fused or fused_layers(name),
                             _between(line, "TacticName: ", ",") or None))
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
    """Deserialize the engine and return the inspector's JSON text (needs TensorRT + a GPU). The
    TensorRT flavour is the one the engine's sidecar (or header) names."""
    if trt is None:
        sidecar = load_sidecar(str(engine_path))[1]
        trt = import_for_engine(str(engine_path), sidecar)
    engine, _runtime = engine_from_path(trt, engine_path)  # the runtime outlives the engine
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
