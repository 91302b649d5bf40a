"""What the engine builder needs from an ONNX file, read without the onnx package.

The Jetson TX2 has no `onnx` Python package (and JetPack's Python 3.6 cannot install a current
one), so the builder reads the few fields it needs straight from the protobuf wire format: the
`bisenet_deploy` metadata record, the opset, the graph inputs/outputs with their dims, and the node
names and op types (to name the node a parser error points at).

Python 3.6 compatible; pure.
"""

from ..shared.errors import UnusableFileError
from .record_schema import METADATA_KEY, parse_record


def _varint(buf, pos):
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf):
    """Iterate (field number, wire type, value) over one protobuf message (no recursion)."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
            if pos > end:
                raise ValueError("truncated field")
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
        yield field, wire, value


def _text(value):
    return bytes(value).decode("utf-8", "replace")


def _text_fields(message, *numbers):
    """The string fields `numbers` of one protobuf message, in that order ("" where absent)."""
    found = {}
    for field, _, value in _fields(message):
        if field in numbers:
            found[field] = value
    return tuple(_text(found[n]) if n in found else "" for n in numbers)


def _value_info(buf):
    """ValueInfoProto -> (name, dims) with dims as ints (-1 for a symbolic/unknown dim)."""
    name, dims = "", []
    for field, _, value in _fields(buf):
        if field == 1:
            name = _text(value)
        elif field == 2:  # TypeProto
            for tf, _, tv in _fields(value):
                if tf != 1:  # tensor_type
                    continue
                for sf, _, sv in _fields(tv):
                    if sf != 2:  # shape
                        continue
                    for df, _, dv in _fields(sv):
                        if df != 1:
                            continue
                        dim = -1
                        for xf, xw, xv in _fields(dv):
                            if xf == 1 and xw == 0:
                                dim = int(xv)
                        dims.append(dim)
    return name, dims


def read_onnx_summary(data, name="this file"):
    """Read what the builder needs from serialized ONNX bytes without the onnx package.

    Returns {"metadata": {key: value}, "opset": int or None, "inputs": [(name, dims)],
    "outputs": [(name, dims)], "nodes": [(name, op_type)]}. Graph inputs that are initializers
    (old exporters list them) are left out.
    """
    buf = memoryview(data)
    summary = {"metadata": {}, "opset": None, "inputs": [], "outputs": [], "nodes": []}
    try:
        graph = None
        for field, wire, value in _fields(buf):
            if field == 14 and wire == 2:  # metadata_props: StringStringEntryProto key, value
                key, val = _text_fields(value, 1, 2)
                summary["metadata"][key] = val
            elif field == 8 and wire == 2:  # opset_import
                domain, version = "", None
                for f, _, v in _fields(value):
                    if f == 1:
                        domain = _text(v)
                    elif f == 2:
                        version = int(v)
                if domain in ("", "ai.onnx"):
                    summary["opset"] = version
            elif field == 7 and wire == 2:
                graph = value
        if graph is None:
            raise ValueError("no graph")
        initializers = set()
        inputs = []
        for field, wire, value in _fields(graph):
            if field == 1:  # NodeProto: name, op_type
                summary["nodes"].append(_text_fields(value, 3, 4))
            elif field == 5:  # initializer (TensorProto name is field 8)
                initializers.add(_text_fields(value, 8)[0])
            elif field == 11:
                inputs.append(_value_info(value))
            elif field == 12:
                summary["outputs"].append(_value_info(value))
        summary["inputs"] = [i for i in inputs if i[0] not in initializers]
    except (ValueError, IndexError) as exc:
        raise UnusableFileError("%s is not a readable ONNX model (%s): export it with "
                                "`bisenet-export onnx`" % (name, exc)) from None
    return summary


def record_from_summary(summary, source="the ONNX model"):
    """The bisenet_deploy metadata record of an ONNX summary, validated (record_schema: a
    RecordError naming `source` and the field), or None when it has none."""
    text = summary["metadata"].get(METADATA_KEY)
    if not text:
        return None
    return parse_record(text, source, require_export=True,
                        remedy="export it again with `bisenet-export onnx`")
