"""Bring a graph from the torch.export-based exporter (opset 18) to a TensorRT target's opset.

onnx's version converter (`onnx.version_converter.convert_version`) does the conversion; on these
graphs it falls short in four ways (onnx 1.23), which the passes here cover:

* It walks the opset down one version at a time and stops at the first op whose schema changed
  in that version unless it has an adapter, even where the change only widened the accepted types
  ("No Adapter From Version $14 for Sub", also Add/Mul/Relu 14, BatchNormalization 15).
  `VERSION_NEUTRAL_OPS` lists the ops whose node form means the same thing at every opset from 11
  to 18 for the tensors a deploy graph has (float32, int32/int64); their nodes are kept out of the
  converter's reach (moved to a private domain for the call) and come back unchanged.
* Opset 18 added attributes that older opsets do not know: Resize antialias and
  keep_aspect_ratio_policy, ReduceMean noop_with_empty_axes (which the converter's ReduceMean
  adapter leaves behind, so its result fails onnx.checker). `NEW_ATTRIBUTES` drops them where they
  hold their default, i.e. where the older node means the same; any other value is an error.
* Resize below opset 13 needs its `roi` and `scales` inputs present (an empty tensor when
  `sizes` is used), where opset 13+ takes empty names; Resize is handled here entirely.
* Its Softmax adapter below 13 keeps `axis` although its meaning changed (opset 13: over that
  axis; before: over all axes from it on), which silently changes the result. Softmax,
  LogSoftmax and Hardmax over the last axis mean the same at every opset and are passed through
  with an explicit axis; over another axis they are refused below 13.

What the converter still does itself: ReduceMean with constant `axes` as an input (opset 18)
becomes ReduceMean with an `axes` attribute (what TensorRT 8.2 reads), and any op of other graphs
that is not in the tables (Squeeze, Split, ...). Going up (--opset 19/20) is the converter alone.
The result is checked by the caller (onnx.checker with strict shape inference, the target rules
and parity against PyTorch), never trusted blindly.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from ..errors import ExportError

#: ops whose nodes mean the same at every opset 11..18: their schema changes in that range only
#: widened the types (bfloat16, small ints) or added an attribute listed in NEW_ATTRIBUTES
VERSION_NEUTRAL_OPS = frozenset({
    "Abs", "Add", "ArgMax", "AveragePool", "BatchNormalization", "Cast", "Ceil", "Clip", "Concat",
    "Constant", "Conv", "ConvTranspose", "DepthToSpace", "Div", "Equal", "Erf", "Exp", "Expand",
    "Flatten", "Floor", "Gather", "GatherElements", "Gemm", "GlobalAveragePool", "GlobalMaxPool",
    "Greater", "Identity", "LeakyRelu", "Less", "Log", "MatMul", "Max", "MaxPool", "Min", "Mul",
    "Neg", "Pow", "PRelu", "Relu", "Reshape", "Resize", "Shape", "Sigmoid", "Slice", "Sqrt",
    "Sub", "Tanh", "Tile", "Transpose", "Where",
    # over the last axis only (check_softmax_axes)
    "Softmax", "LogSoftmax", "Hardmax",
})
SOFTMAX_OPS = ("Softmax", "LogSoftmax", "Hardmax")

#: op -> the opsets in 12..18 that changed its node form (an attribute became an input, or an
#: attribute's meaning changed); between them only the accepted types changed. The converter
#: crosses these with its adapters; elsewhere the op is version-neutral.
FORM_CHANGES: Dict[str, Tuple[int, ...]] = {
    "ReduceMean": (18,), "ReduceMax": (18,), "ReduceMin": (18,), "ReduceProd": (18,),
    "ReduceSum": (13,), "Squeeze": (13,), "Unsqueeze": (13,), "Split": (13, 18),
}

#: (op, attribute) -> (opset that introduced it, the value that means "as before")
NEW_ATTRIBUTES: Dict[Tuple[str, str], Tuple[int, Any]] = {
    ("ArgMax", "select_last_index"): (12, 0),
    ("BatchNormalization", "training_mode"): (14, 0),
    ("Reshape", "allowzero"): (14, 0),
    ("Shape", "start"): (15, 0),
    ("ReduceSum", "noop_with_empty_axes"): (13, 0),
    ("ReduceMean", "noop_with_empty_axes"): (18, 0),
    ("ReduceMax", "noop_with_empty_axes"): (18, 0),
    ("ReduceMin", "noop_with_empty_axes"): (18, 0),
    ("ReduceProd", "noop_with_empty_axes"): (18, 0),
    ("Resize", "antialias"): (18, 0),
    ("Resize", "keep_aspect_ratio_policy"): (18, "stretch"),
}

MIN_OPSET = 11
SOURCE_OPSET = 18
_HIDDEN_DOMAIN = "bisenet_deploy.version_neutral"
_EMPTY_FLOAT = "bisenet_deploy_empty_float"


def default_opset(model: Any) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ExportError("the exported graph declares no default-domain opset")


def _attribute_value(attr: Any) -> Any:
    import onnx

    value = onnx.helper.get_attribute_value(attr)
    return value.decode() if isinstance(value, bytes) else value


def drop_new_attributes(model: Any, opset: int) -> int:
    """Remove attributes newer than `opset` that hold their default; refuse any other value."""
    dropped = 0
    for node in model.graph.node:
        keep = []
        for attr in node.attribute:
            since, default = NEW_ATTRIBUTES.get((node.op_type, attr.name), (0, None))
            if since <= opset:
                keep.append(attr)
                continue
            value = _attribute_value(attr)
            if value != default:
                raise ExportError(
                    f"{node.op_type} node {node.name!r} has {attr.name}={value!r}, which opset "
                    f"{opset} cannot express (it arrived in opset {since})")
            dropped += 1
        if len(keep) != len(node.attribute):
            del node.attribute[:]
            node.attribute.extend(keep)
    return dropped


def check_opset18_forms(model: Any) -> None:
    """Refuse node forms that do mean something else at older opsets (none in our graphs)."""
    for node in model.graph.node:
        if node.op_type == "BatchNormalization" and len(node.output) != 1:
            raise ExportError(f"BatchNormalization node {node.name!r} is in training form")
        if node.op_type == "Resize" and any(a.name == "axes" for a in node.attribute):
            raise ExportError(f"Resize node {node.name!r} resizes selected axes (opset 18 only)")
        if node.op_type == "Shape" and any(a.name == "end" for a in node.attribute):
            raise ExportError(f"Shape node {node.name!r} takes a slice of the shape (opset 15+)")


def check_softmax_axes(model: Any, opset: int) -> None:
    """Below opset 13, keep Softmax-like nodes only where they work on the last axis (the one
    case whose meaning did not change), with that axis written out (the default moved from 1
    to -1)."""
    import onnx

    if opset >= 13 or not any(n.op_type in SOFTMAX_OPS for n in model.graph.node):
        return
    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {v.name: len(v.type.tensor_type.shape.dim)
             for v in list(inferred.graph.value_info) + list(inferred.graph.input)
             if v.type.tensor_type.HasField("shape")}
    for node in model.graph.node:
        if node.op_type not in SOFTMAX_OPS:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        rank = ranks.get(node.input[0])
        if axis != -1 and (rank is None or axis != rank - 1):
            raise ExportError(f"{node.op_type} node {node.name!r} works on axis {axis}, not the "
                              f"last one: before opset 13 that op meant something else; export "
                              f"at opset >= 13")
        if not any(a.name == "axis" for a in node.attribute):
            node.attribute.append(onnx.helper.make_attribute("axis", -1))


def fill_resize_inputs(model: Any) -> int:
    """Below opset 13 Resize needs roi and scales present: give empty names an empty tensor."""
    import numpy as np
    from onnx import numpy_helper

    graph = model.graph
    changed = 0
    for node in graph.node:
        if node.op_type != "Resize":
            continue
        inputs = list(node.input) + [""] * (3 - len(node.input))
        for index in (1, 2):  # roi, scales
            if not inputs[index]:
                inputs[index] = _EMPTY_FLOAT
                changed += 1
        del node.input[:]
        node.input.extend(inputs)
    if changed and _EMPTY_FLOAT not in {i.name for i in graph.initializer}:
        graph.initializer.append(numpy_helper.from_array(np.zeros(0, np.float32), _EMPTY_FLOAT))
    return changed


def _set_opset(model: Any, domain: str, version: int) -> None:
    """Set (version 0: remove) `domain`'s entry in the model's opset imports."""
    names = ("", "ai.onnx") if domain == "" else (domain,)
    entries = [o for o in model.opset_import if o.domain not in names]
    del model.opset_import[:]
    model.opset_import.extend(entries)
    if version:
        model.opset_import.add(domain=domain, version=version)


def _hidden_from_converter(op_type: str, high: int, low: int) -> bool:
    """True when a node of `op_type` means the same at opsets `low`..`high` (no adapter needed)."""
    if op_type in VERSION_NEUTRAL_OPS:
        return True
    changes = FORM_CHANGES.get(op_type)
    return changes is not None and not any(low < c <= high for c in changes)


def _convert_with_onnx(model: Any, high: int, low: int) -> Any:
    """onnx's converter from `high` down to `low`, on every node that needs an adapter there;
    the others are moved to a private domain for the call and come back unchanged."""
    import onnx
    from onnx import version_converter

    work = onnx.ModelProto()
    work.CopyFrom(model)
    hidden = 0
    for node in work.graph.node:
        if node.domain in ("", "ai.onnx") and _hidden_from_converter(node.op_type, high, low):
            node.domain = _HIDDEN_DOMAIN
            hidden += 1
    if hidden == len(work.graph.node):  # nothing for the converter to do
        for node in work.graph.node:
            node.domain = ""
        _set_opset(work, "", low)
        return work
    _set_opset(work, _HIDDEN_DOMAIN, 1)
    try:
        converted = version_converter.convert_version(work, low)
    except Exception as exc:
        message = (str(exc).strip().splitlines() or [""])[-1]
        raise ExportError(f"onnx's version converter cannot bring the graph from opset {high} "
                          f"to {low}: {type(exc).__name__}: {message}") from None
    for node in converted.graph.node:
        if node.domain == _HIDDEN_DOMAIN:
            node.domain = ""
    _set_opset(converted, _HIDDEN_DOMAIN, 0)
    return converted


def convert_opset(model: Any, opset: int) -> Any:
    """A copy of `model` (an onnx.ModelProto) at `opset`, in the forms that opset defines."""
    import onnx
    from onnx import version_converter

    source = default_opset(model)
    if opset == source:
        return model
    if opset > source:
        try:
            return version_converter.convert_version(model, opset)
        except Exception as exc:
            raise ExportError(f"onnx's version converter cannot bring the graph from opset "
                              f"{source} up to {opset}: {type(exc).__name__}: {exc}") from None
    if opset < MIN_OPSET or source > SOURCE_OPSET:
        raise ExportError(f"bringing a graph from opset {source} down to {opset} is not "
                          f"supported (from at most {SOURCE_OPSET} to at least {MIN_OPSET})")
    work = onnx.ModelProto()
    work.CopyFrom(model)
    check_opset18_forms(work)
    drop_new_attributes(work, opset)
    check_softmax_axes(work, opset)
    if opset < 13:
        fill_resize_inputs(work)
    # one converter call per stretch between form changes, so that every op is either converted
    # across its form change or hidden where it does not change
    stops = sorted({c for cs in FORM_CHANGES.values() for c in cs if opset < c < source},
                   reverse=True) + [opset]
    high = source
    for low in stops:
        work = _convert_with_onnx(work, high, low)
        high = low
    converted = work
    del converted.graph.value_info[:]  # annotations of the old opset; inference redoes them
    return converted
