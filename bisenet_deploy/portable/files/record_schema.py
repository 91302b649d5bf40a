"""The metadata record's one validator, run wherever a record is read from disk or the network.

A record (docs/DESIGN.md "The metadata record") decides how images are prepared, how big the
buffers are and what the outputs mean, so a damaged or forged one must be refused before anything
is allocated or drawn: a 100000x100000 input size would exhaust memory, an unknown channel order
would flip the channels silently, a short palette would draw classes black. Every loader (the
safetensors checkpoint, the ONNX `metadata_props`, an engine sidecar's "onnx_metadata", a Triton
model configuration) goes through `validate_record`; a violation is one `RecordError` (exit 5)
naming the file and the field.

The allowed values and bounds are defined here once; `metadata.py`, the export options and the
builder read them from here. Python 3.6 compatible (it runs in the Jetson bundle too).
"""

import json
import math
import numbers
import re

from ..shared.errors import UnusableFileError

METADATA_KEY = "bisenet_deploy"
SCHEMA_VERSION = 1

CHANNEL_ORDERS = ("rgb", "bgr")
NORMALIZE_MODES = ("in-graph", "none")
OUTPUT_KINDS = ("labels", "logits", "both")
#: the graph's output names per output kind (graph order)
OUTPUT_NAMES = {"labels": ("labels",), "logits": ("logits",), "both": ("labels", "logits")}
INPUT_DTYPES = ("float32", "uint8")
#: the export targets (TensorRT versions) a record may name; export/targets.py holds their rules
TARGET_NAMES = ("trt8.2", "trt8.6", "trt10", "trt11")
#: export.precision, the precision asked for at export: a new precision is added here
PRECISIONS = ("fp32", "fp16", "int8")
#: export.int8.calibration.method (export/quantize.py CALIBRATION_METHODS)
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
WEIGHTS = ("checkpoint", "random-init")
EXPORTERS = ("dynamo", "torchscript")

#: the largest image side (pixels) of input_size, model_size and train_size, as export allows it
MAX_SIDE = 16384
#: the most classes: the logits and the evaluation's confusion matrix grow with it
MAX_CLASSES = 4096
#: the largest batch a record may declare (static size or a dynamic profile's max)
MAX_BATCH = 1024
#: ONNX default-domain opsets (the exporters write 11..24)
OPSET_RANGE = (7, 64)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

#: what to do about a damaged record, per artifact that carries one
REMEDY = "make the file again with bisenet-deploy (`bisenet-export onnx` for an ONNX)"


class RecordError(UnusableFileError):
    """A metadata record that is not valid JSON, lacks a section or has a field of the wrong type,
    out of range or inconsistent with another; `field` names it ("model.palette")."""

    def __init__(self, message, field=None):
        super(RecordError, self).__init__(message)
        self.field = field


class _Problem(Exception):
    def __init__(self, field, text):
        Exception.__init__(self, field, text)
        self.field, self.text = field, text


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _int(section, name, low, high, where, required=True):
    field = "%s.%s" % (where, name)
    if name not in section:
        if required:
            raise _Problem(field, "is missing")
        return None
    value = section[name]
    if not _is_int(value):
        raise _Problem(field, "must be a whole number, got %s" % _shown(value))
    if not low <= value <= high:
        raise _Problem(field, "is %d, outside %d..%d" % (value, low, high))
    return value


def _text(section, name, where, choices=None, required=True, default=None):
    field = "%s.%s" % (where, name)
    if name not in section:
        if required:
            raise _Problem(field, "is missing")
        return default
    value = section[name]
    if not isinstance(value, str) or not value:
        raise _Problem(field, "must be a non-empty string, got %s" % _shown(value))
    if choices is not None and value not in choices:
        raise _Problem(field, "is %r, not one of %s" % (value, ", ".join(choices)))
    return value


def _size(section, name, where, required=True):
    """[width, height], whole numbers 1..MAX_SIDE."""
    field = "%s.%s" % (where, name)
    if name not in section:
        if required:
            raise _Problem(field, "is missing")
        return None
    value = section[name]
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(_is_int(v) for v in value)):
        raise _Problem(field, "must be [width, height] in whole pixels, got %s" % _shown(value))
    if not all(1 <= v <= MAX_SIDE for v in value):
        raise _Problem(field, "is %dx%d: each side must be 1..%d pixels"
                       % (value[0], value[1], MAX_SIDE))
    return value


def _three_numbers(section, name, where, positive=False):
    field = "%s.%s" % (where, name)
    if name not in section:
        raise _Problem(field, "is missing")
    value = section[name]
    if (not isinstance(value, (list, tuple)) or len(value) != 3 or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
            for v in value)):
        raise _Problem(field, "must be 3 finite numbers (one per channel), got %s"
                       % _shown(value))
    if positive and not all(v > 0 for v in value):
        raise _Problem(field, "must be > 0 for every channel, got %s" % _shown(value))


def _shown(value, limit=60):
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def palette_problem(palette, num_classes):
    """None for a palette of `num_classes` [R, G, B] colours with values 0..255, else what is
    wrong with it, in words a person can act on."""
    problem = _palette_text(palette, num_classes)
    return None if problem is None else "the palette " + problem


def _palette_text(palette, num_classes):
    if not isinstance(palette, (list, tuple)):
        return "must be a list of [R, G, B] colours, got %s" % _shown(palette)
    if len(palette) != num_classes:
        return ("has %d colour(s) for %d class(es): it needs one [R, G, B] colour per class"
                % (len(palette), num_classes))
    for i, colour in enumerate(palette):
        if not isinstance(colour, (list, tuple)) or len(colour) != 3 or not all(
                _is_int(v) and 0 <= v <= 255 for v in colour):
            return ("colour %d is %s: each colour is [R, G, B] with whole numbers 0..255"
                    % (i, _shown(colour)))
    return None


def dataset_fields_problem(fields, num_classes, where="model"):
    """(field, what is wrong) for the dataset fields of a model section (class_names, palette,
    mean, std, channel_order, ignore_index, train_size), or None. ModelMetadata checks itself
    with this too, so what the toolkit writes passes what it reads."""
    try:
        _check_dataset_fields(fields, num_classes, where)
    except _Problem as problem:
        return problem.field, problem.text
    return None


def _check_dataset_fields(section, num_classes, where):
    names = section.get("class_names")
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise _Problem(where + ".class_names", "must be a list of names (strings), got %s"
                       % _shown(names))
    if len(names) != num_classes:
        raise _Problem(where + ".class_names", "has %d name(s) for %d class(es)"
                       % (len(names), num_classes))
    problem = _palette_text(section.get("palette"), num_classes)
    if problem:
        raise _Problem(where + ".palette", problem)
    _three_numbers(section, "mean", where)
    _three_numbers(section, "std", where, positive=True)
    _text(section, "channel_order", where, CHANNEL_ORDERS, required=False)
    _int(section, "ignore_index", -1, 65535, where, required=False)
    _size(section, "train_size", where, required=False)


def _check_model(model):
    if not isinstance(model, dict):
        raise _Problem("model", "must be an object, got %s" % type(model).__name__)
    _text(model, "arch", "model")
    num_classes = _int(model, "num_classes", 1, MAX_CLASSES, "model")
    _text(model, "dataset", "model")
    _check_dataset_fields(model, num_classes, "model")
    _text(model, "weights", "model", WEIGHTS, required=False)
    _text(model, "source", "model", required=False)
    sha = model.get("checkpoint_sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA256.match(sha)):
        raise _Problem("model.checkpoint_sha256", "must be 64 hex digits or null, got %s"
                       % _shown(sha))


def _check_batch(export):
    batch = export.get("batch")
    if not isinstance(batch, dict):
        raise _Problem("export.batch", "must be an object ({\"dynamic\": false, \"size\": N} or "
                       "{\"dynamic\": true, \"min\", \"opt\", \"max\"}), got %s" % _shown(batch))
    dynamic = batch.get("dynamic")
    if not isinstance(dynamic, bool):
        raise _Problem("export.batch.dynamic", "must be true or false, got %s" % _shown(dynamic))
    if not dynamic:
        _int(batch, "size", 1, MAX_BATCH, "export.batch")
        return
    low, opt, high = (_int(batch, key, 1, MAX_BATCH, "export.batch")
                      for key in ("min", "opt", "max"))
    if not low <= opt <= high:
        raise _Problem("export.batch", "needs min <= opt <= max, got %d, %d, %d" % (low, opt, high))


def _check_export(export):
    if not isinstance(export, dict):
        raise _Problem("export", "must be an object, got %s" % type(export).__name__)
    _text(export, "input_name", "export")
    _size(export, "input_size", "export")
    _size(export, "model_size", "export")
    _text(export, "input_dtype", "export", INPUT_DTYPES)
    _text(export, "channel_order", "export", CHANNEL_ORDERS)
    normalize = _text(export, "normalize", "export", NORMALIZE_MODES)
    if export["input_dtype"] == "uint8" and normalize != "in-graph":
        raise _Problem("export.normalize", "is %r, but a uint8 input holds raw pixels and needs "
                       "'in-graph'" % normalize)
    output = _text(export, "output", "export", OUTPUT_KINDS)
    names = export.get("output_names")
    if (not isinstance(names, (list, tuple)) or len(set(map(repr, names))) != len(names)
            or sorted(map(repr, names)) != sorted(map(repr, OUTPUT_NAMES[output]))):
        raise _Problem("export.output_names", "must name the outputs of output %r (%s), got %s"
                       % (output, ", ".join(OUTPUT_NAMES[output]), _shown(names)))
    _text(export, "target", "export", TARGET_NAMES)
    _text(export, "precision", "export", PRECISIONS)
    _int(export, "opset", OPSET_RANGE[0], OPSET_RANGE[1], "export")
    _check_batch(export)
    if export.get("exporter") is not None:
        _text(export, "exporter", "export", EXPORTERS)
    _check_int8(export)


def _percent(section, name, where):
    field = "%s.%s" % (where, name)
    value = section.get(name)
    if (not isinstance(value, numbers.Real) or isinstance(value, bool) or value != value
            or not 0 <= value <= 100):
        raise _Problem(field, "must be a percentage 0..100, got %s" % _shown(value))
    return value


def _check_int8(export):
    """export.int8: present exactly for precision int8 (a Q/DQ graph, export/int8_export.py)."""
    int8 = export.get("int8")
    if export["precision"] != "int8":
        if int8 is not None:
            raise _Problem("export.int8", "is only for precision 'int8', this record says %r"
                           % export["precision"])
        return
    if not isinstance(int8, dict):
        raise _Problem("export.int8", "must be an object (calibration, agreement, min_agreement, "
                       "keep_float, qdq_pairs) for precision 'int8', got %s" % _shown(int8))
    calibration = int8.get("calibration")
    if not isinstance(calibration, dict):
        raise _Problem("export.int8.calibration", "must be an object, got %s"
                       % _shown(calibration))
    _text(calibration, "method", "export.int8.calibration", CALIBRATION_METHODS)
    _int(calibration, "images", 1, 10 ** 6, "export.int8.calibration")
    agreement = int8.get("agreement")
    if not isinstance(agreement, dict):
        raise _Problem("export.int8.agreement", "must be an object, got %s" % _shown(agreement))
    _percent(agreement, "percent", "export.int8.agreement")
    _percent(agreement, "worst_image_percent", "export.int8.agreement")
    _int(agreement, "images", 1, 10 ** 6, "export.int8.agreement")
    _percent(int8, "min_agreement", "export.int8")
    keep = int8.get("keep_float")
    if not isinstance(keep, list) or not all(isinstance(k, str) and k for k in keep):
        raise _Problem("export.int8.keep_float", "must be a list of layer names, got %s"
                       % _shown(keep))
    _text(int8, "keep_float_dtype", "export.int8", ("fp16", "fp32"), required=False)
    _int(int8, "qdq_pairs", 0, 10 ** 6, "export.int8")


def record_problem(record, require_export=True):
    """(field, what is wrong) for the first violation in `record`, or None for a valid record.
    Fields are named by their path ("model.palette", "export.batch.max"); unknown extra fields are
    left alone (a later version of the same schema may add some)."""
    try:
        if not isinstance(record, dict):
            raise _Problem("record", "must be a JSON object, got %s" % type(record).__name__)
        schema = record.get("schema")
        if not _is_int(schema) or schema < 1:
            raise _Problem("schema", "must be a whole number >= 1, got %s" % _shown(schema))
        version = record.get("toolkit_version")
        if version is not None and not isinstance(version, str):
            raise _Problem("toolkit_version", "must be a string, got %s" % _shown(version))
        if "model" not in record:
            raise _Problem("model", "is missing (the section saying what the model is)")
        _check_model(record["model"])
        if "export" in record or require_export:
            if "export" not in record:
                raise _Problem("export", "is missing (the section saying how the graph is fed)")
            _check_export(record["export"])
    except _Problem as problem:
        return problem.field, problem.text
    return None


def validate_record(record, source, require_export=True, remedy=REMEDY):
    """`record` when it is valid, else a one-line RecordError naming `source` and the field.
    A record written by a newer, incompatible schema says to upgrade instead."""
    schema = record.get("schema") if isinstance(record, dict) else None
    if _is_int(schema) and schema > SCHEMA_VERSION:
        raise RecordError("%s: its metadata was written by a newer bisenet-deploy (schema %d, "
                          "this one reads %d): upgrade bisenet-deploy"
                          % (source, schema, SCHEMA_VERSION), "schema")
    problem = record_problem(record, require_export)
    if problem is not None:
        field, text = problem
        raise RecordError("%s: the bisenet_deploy metadata in the file is damaged: %s %s; %s"
                          % (source, field, text, remedy), field)
    return record


def parse_record(text, source, require_export=True, remedy=REMEDY):
    """The record in JSON `text` (str or bytes), validated (see validate_record)."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        record = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise RecordError("%s: the bisenet_deploy metadata in the file is not valid JSON (%s); %s"
                          % (source, _first_line(exc), remedy), "record") from None
    return validate_record(record, source, require_export, remedy)


def read_record_file(path, key="record", remedy="make the Jetson bundle again"):
    """The record stored under `key` in the JSON file `path` (a Jetson bundle's
    `model/<stem>.json`), validated; an unreadable file is a RecordError too."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (IOError, OSError) as exc:
        raise RecordError("cannot read %s (%s); %s" % (path, exc.strerror or exc, remedy),
                          "record") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise RecordError("%s is not valid JSON (%s); %s" % (path, _first_line(exc), remedy),
                          "record") from None
    record = data.get(key) if isinstance(data, dict) else None
    return validate_record(record, path, True, remedy)


def _first_line(exc):
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
