"""Read and write the bisenet_deploy metadata record in an ONNX model's `metadata_props`.

The record (see `bisenet_deploy.metadata`) is stored as JSON under the key "bisenet_deploy", so
the engine builder, the runtimes and the Jetson bundle read preprocessing, classes and sizes from
the ONNX file itself. The parity numbers measured at export time go under a second key,
"bisenet_deploy_parity" (absent with --skip-parity).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Union

from ..errors import NoMetadataError, UnusableFileError
from ..portable.files.fileio import require_file
from ..metadata import METADATA_KEY, ONNX_REMEDY, dumps_record, loads_record

#: what to do about an ONNX whose record is damaged
# the parity numbers measured at export time (not part of the record's schema)
PARITY_KEY = "bisenet_deploy_parity"


def set_record(model: Any, record: Dict[str, Any]) -> None:
    """Store `record` in `model.metadata_props` (an onnx.ModelProto), replacing an older one."""
    keep = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    for prop in keep:
        model.metadata_props.add(key=prop.key, value=prop.value)
    model.metadata_props.add(key=METADATA_KEY, value=dumps_record(record))


def set_parity(model: Any, parity: Dict[str, Any]) -> None:
    """Store the parity numbers of the export (ParityReport.to_dict()) under PARITY_KEY.

    Kept apart from the record so the record's schema stays exactly as `metadata.py` defines it.
    """
    keep = [p for p in model.metadata_props if p.key != PARITY_KEY]
    del model.metadata_props[:]
    for prop in keep:
        model.metadata_props.add(key=prop.key, value=prop.value)
    model.metadata_props.add(key=PARITY_KEY, value=json.dumps(parity, sort_keys=True))


def get_parity(model: Any) -> Optional[Dict[str, Any]]:
    """The parity numbers stored at export time, or None (exported with --skip-parity)."""
    for prop in model.metadata_props:
        if prop.key == PARITY_KEY:
            try:
                return json.loads(prop.value)
            except ValueError:
                return None
    return None


def get_record(model: Any, source: str = "the ONNX model") -> Dict[str, Any]:
    """The record stored in an onnx.ModelProto, validated (a RecordError naming `source` and the
    field when it is damaged); NoMetadataError when there is none."""
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return loads_record(prop.value, source, require_export=True, remedy=ONNX_REMEDY)
    raise NoMetadataError(source)


def read_record(path_or_model: Union[str, os.PathLike, Any]) -> Dict[str, Any]:
    """The record of an ONNX file (path) or of a loaded onnx.ModelProto."""
    if isinstance(path_or_model, (str, os.PathLike)):
        model = load_onnx(path_or_model, load_weights=False)
        return get_record(model, source=str(path_or_model))
    return get_record(path_or_model)


def load_onnx(path: Union[str, os.PathLike], load_weights: bool = True) -> Any:
    """Load an ONNX file with a clear error for a missing or corrupt file."""
    import onnx

    path = str(path)
    require_file(path, "ONNX file")
    try:
        model = onnx.load(path, load_external_data=load_weights)
    except OSError as exc:  # the file system refused: nothing says the file itself is bad
        what = path if exc.filename in (None, path) else f"{exc.filename} (data of {path})"
        raise UnusableFileError(f"cannot read the ONNX file {what}: {exc.strerror or exc}; check "
                                f"that it is there and readable") from None
    except Exception as exc:  # onnx raises DecodeError and friends for corrupt files
        raise UnusableFileError(f"{path} is not a readable ONNX model ({type(exc).__name__}: "
                                f"{exc}): another kind of file, or a copy cut short; give the "
                                f".onnx file that `bisenet-export onnx` wrote") from None
    if not model.graph.node:  # protobuf parses an empty (or zeroed) file as an empty model
        raise UnusableFileError(f"{path} is not a readable ONNX model (it holds no graph): an "
                                f"empty file or a copy cut short; give the .onnx file that "
                                f"`bisenet-export onnx` wrote")
    return model
