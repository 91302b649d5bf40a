"""The served model's tensors and metadata in Triton's terms, shared by the exported repository
(`bisenet-export triton`), the PyTriton server (`bisenet-serve`) and the client runner.

A client learns everything it needs to prepare images and read results from the model's
configuration (`GET /v2/models/<name>/config`, open on every Triton): the full bisenet_deploy
record as JSON under the parameter "bisenet_deploy", and the readable parts (classes, palette,
mean/std, input size) as parameters of their own for people and other tools.

Pure: numpy only.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Optional

import numpy as np

from ..errors import InputError
from ..metadata import METADATA_KEY, dumps_record, loads_record

#: numpy dtype name -> KServe v2 / Triton datatype (the config's TYPE_ names add a prefix)
DATATYPES = {"float32": "FP32", "float16": "FP16", "float64": "FP64", "uint8": "UINT8",
             "int8": "INT8", "int32": "INT32", "int64": "INT64", "bool": "BOOL"}
#: the model name bisenet-serve and bisenet-export triton use unless told otherwise
DEFAULT_MODEL_NAME = "bisenet"
#: what Triton accepts as a model name (a folder name in the repository)
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def triton_datatype(dtype: Any) -> str:
    """numpy dtype -> 'FP32', 'UINT8', 'INT32'..."""
    name = np.dtype(dtype).name
    if name not in DATATYPES:
        raise InputError(f"tensors of type {name} cannot be served (Triton types: "
                         f"{', '.join(sorted(DATATYPES))})")
    return DATATYPES[name]


def numpy_dtype(datatype: str) -> np.dtype:
    """'FP32' or 'TYPE_FP32' -> numpy dtype."""
    key = str(datatype).upper()
    key = key[5:] if key.startswith("TYPE_") else key
    for name, triton in DATATYPES.items():
        if triton == key:
            return np.dtype(name)
    raise InputError(f"the served model has a tensor of type {datatype}, which bisenet-deploy "
                     f"does not handle")


def check_model_name(name: str) -> str:
    if not name or not _MODEL_NAME.match(name):
        raise InputError(f"model name {name!r}: use letters, digits, '_', '.' and '-' (it is a "
                         f"folder name in the model repository and part of every URL)")
    return name


def metadata_parameters(record: Dict[str, Any]) -> Dict[str, str]:
    """The model configuration's `parameters`: the whole record, then its readable parts."""
    model = record["model"]
    export = record.get("export") or {}
    params = {METADATA_KEY: dumps_record(record),
              "num_classes": str(model["num_classes"]),
              "class_names": json.dumps(list(model["class_names"])),
              "palette": json.dumps([list(c) for c in model["palette"]]),
              "mean": json.dumps(list(model["mean"])),
              "std": json.dumps(list(model["std"])),
              "weights": str(model.get("weights", "checkpoint"))}
    if export:
        params.update({
            "input_size": "%dx%d" % tuple(export["input_size"]),
            "input_dtype": str(export["input_dtype"]),
            "channel_order": str(export["channel_order"]),
            "normalize": str(export["normalize"]),
            "outputs": ",".join(export["output_names"]),
        })
    return params


#: config parameters of `bisenet-serve` saying how it runs the model, so that `bisenet-bench
#: --server` can compare the served model with a direct runner set up the same way
SERVING_KEYS = ("serving_backend", "serving_instances", "serving_threads")


def serving_parameters(backend: str, instances: int, threads: Any) -> Dict[str, str]:
    """The runner family, the instance count and the CPU threads per instance (0: the
    library's default, all cores)."""
    return {"serving_backend": str(backend), "serving_instances": str(int(instances)),
            "serving_threads": str(int(threads or 0))}


def serving_from_parameters(parameters: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """{"backend", "instances", "threads"} from a served model's configuration, or None when the
    server did not say (a repository from `bisenet-export triton`, another server)."""
    values = {}
    for key in SERVING_KEYS:
        entry = (parameters or {}).get(key)
        values[key] = entry.get("string_value") if isinstance(entry, dict) else entry
    try:
        return {"backend": str(values["serving_backend"]),
                "instances": max(1, int(values["serving_instances"])),
                "threads": max(0, int(values["serving_threads"]))}
    except (TypeError, ValueError):
        return None


def record_from_parameters(parameters: Dict[str, Any], where: str) -> Dict[str, Any]:
    """The record in a model configuration's parameters ({key: {"string_value": ...}} as Triton's
    JSON gives them, or plain strings); a clear error for a model that carries none."""
    entry = (parameters or {}).get(METADATA_KEY)
    text = entry.get("string_value") if isinstance(entry, dict) else entry
    if not text:
        raise InputError(f"{where} carries no bisenet_deploy metadata (config parameter "
                         f"{METADATA_KEY!r}): serve it with `bisenet-serve` or a repository from "
                         f"`bisenet-export triton`")
    return loads_record(text, where, require_export=True,
                        remedy="serve it again from an ONNX or engine made by bisenet-deploy")



def check_batches_fit(count: int, batch: int, record: Dict[str, Any], what: str, fix: str) -> None:
    """Refuse (exit 2, one line, before any request) `count` batches of `batch` images in flight
    at once (their input, labels and logits at the model's input size) when this machine cannot
    hold them: `bisenet-serve --max-batch` (one batch per instance) and `bisenet-bench --server
    --concurrency` (one request per client)."""
    from ..portable.shared.memory import check_fits

    export = record.get("export") or {}
    width, height = (int(v) for v in export.get("input_size") or (0, 0))
    classes = int((record.get("model") or {}).get("num_classes") or 1)
    itemsize = np.dtype(export.get("input_dtype") or "float32").itemsize
    per_image = width * height * (3 * itemsize + 4 + 4 * classes)  # input, labels, logits at most
    check_fits(int(count) * int(batch) * per_image,
               f"{what} ({count} x {batch} image(s) of {width}x{height} in flight)", fix)
