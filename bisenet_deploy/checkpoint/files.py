"""Reading untrusted checkpoint files: sniff the first bytes, then safetensors or weights_only.

A download error page, a truncated file, a TorchScript archive or a pickle with arbitrary objects
becomes one `CheckpointError` saying what the file is, never a traceback from inside torch.
"""

from __future__ import annotations

import os
import re
import struct
import warnings
from typing import Any, Dict, Mapping, Optional, Tuple

from ..errors import CheckpointError, InputError
from ..metadata import METADATA_KEY
from .ours import parse_record

# the prefix added by nn.DataParallel/DistributedDataParallel
_WRAPPER_PREFIX = "module."
# torch.compile keeps the compiled module under this attribute, so a model with a compiled
# submodule saves keys like "segment._orig_mod.S3..."; no network here has a module of that name
_COMPILED = "_orig_mod"
# keys under which training scripts commonly nest the state dict
_WRAPPER_KEYS = ("state_dict", "model", "net", "model_state_dict", "model_state", "network",
                 "weights", "params", "module")
#: file types users pass as a checkpoint by mistake -> what to do instead
_OTHER_ARTIFACTS = {
    ".onnx": " (this looks like an ONNX graph: commands that take one have --onnx)",
    ".engine": " (this looks like a TensorRT engine: commands that take one have --engine)",
    ".plan": " (this looks like a TensorRT engine: commands that take one have --engine)",
    ".trt": " (this looks like a TensorRT engine: commands that take one have --engine)",
}


def positive_int(value, name) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive integer, got {value!r}") from None
    if number < 1 or isinstance(value, bool):
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return number


def check_path(path) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):  # a usage error (exit 2), like every missing path
        raise InputError(f"checkpoint not found: {path} (check the path, or leave "
                         f"--checkpoint out to try the pipeline with random weights)")
    if not os.path.isfile(path):
        raise InputError(f"checkpoint {path} is not a file")
    return str(path)


def sniff(path) -> str:
    """"safetensors" or "torch" from the first bytes; anything else is a CheckpointError."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise CheckpointError(f"cannot read the checkpoint {path}: {exc.strerror or exc}; check "
                              f"its permissions") from None
    if size == 0:
        raise CheckpointError(f"{path} is an empty file, not a checkpoint (an interrupted "
                              f"download or copy?)")
    if head[:4] == b"PK\x03\x04":
        return "torch"  # torch.save's zip format (PyTorch >= 1.6)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "torch"  # the legacy pickle format
    if len(head) >= 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if header_len + 8 > size:
            raise CheckpointError(
                f"{path} is a truncated safetensors file ({size} bytes, its header alone needs "
                f"{header_len + 8}); copy or download it again")
        return "safetensors"
    description = _describe_bytes(head)
    hint = _OTHER_ARTIFACTS.get(os.path.splitext(path)[1].lower(), "")
    raise CheckpointError(
        f"{path} is not a checkpoint: it {description}; expected a PyTorch .pth/.pt state dict "
        f"(zip or pickle) or a .safetensors file{hint}")


def _describe_bytes(head: bytes) -> str:
    text = head[:40]
    if text and all(32 <= c < 127 or c in (9, 10, 13) for c in text):
        snippet = text.decode("ascii").strip().splitlines()[0][:40] if text.strip() else ""
        lowered = snippet.lower()
        if lowered.startswith(("<!doctype", "<html", "<?xml")):
            return f"is an HTML/XML page (starts with {snippet!r}; a failed download?)"
        if lowered.startswith("version https://git-lfs"):
            return "is a Git LFS pointer, not the file itself (run `git lfs pull`)"
        return f"is a text file (starts with {snippet!r})"
    if head[:4] == b"\x1f\x8b\x08\x00" or head[:2] == b"\x1f\x8b":
        return "is gzip-compressed (unpack it first)"
    return "starts with the bytes " + head[:8].hex(" ")


def check_finite(path, state: Mapping[str, Any]) -> None:
    """Refuse weights holding NaN or Inf (a diverged training, a damaged file): every output of
    the network would be garbage, and the export would blame itself for the mismatch."""
    for key, tensor in state.items():
        if not (hasattr(tensor, "is_floating_point") and tensor.is_floating_point()):
            continue
        finite = tensor.isfinite()
        if bool(finite.all()):
            continue
        bad = tensor[~finite]
        kinds = " and ".join(k for k, hit in (("NaN", bool(bad.isnan().any())),
                                              ("Inf", bool(bad.isinf().any()))) if hit)
        raise CheckpointError(
            f"{path}: tensor {key!r} holds {kinds} ({int(bad.numel())} of {tensor.numel()} "
            f"values): the weights are damaged (a diverged training?); use another checkpoint")


def read_safetensors(path) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
    """(the tensors, our record or None for a safetensors file another tool wrote)."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as handle:
            header = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # SafetensorError and friends: a damaged file
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({exc}); copy or "
                              f"download it again") from None
    if not state:
        raise CheckpointError(f"{path} is a safetensors file without any tensors")
    record = parse_record(path, header[METADATA_KEY]) if METADATA_KEY in header else None
    return state, record


def read_torch(path) -> Tuple[Dict[str, Any], Any]:
    """(the state dict, the whole object the file holds: e.g. a dict with "meta" beside it)."""
    import pickle

    import torch

    try:
        with warnings.catch_warnings():  # e.g. "looks like a TorchScript archive": reported below
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found or ("Weights only load failed" in str(exc) and "GLOBAL" in str(exc)):
            from .mmseg import load_bookkeeping_inertly  # mmengine training files

            obj = load_bookkeeping_inertly(path)
            if obj is not None:
                return _state_of(path, obj), obj
            what = found.group(1) if found else "a Python object"
            raise CheckpointError(
                f"{path} contains pickled Python objects ({what}) besides tensors; "
                f"bisenet-deploy never unpickles arbitrary objects. Where you trust the file, "
                f"re-save only the weights: torch.save(model.state_dict(), 'weights.pth')") from None
        raise CheckpointError(f"{path} is corrupt: it could not be read as a PyTorch "
                              f"checkpoint ({_first_line(exc)})") from None
    except Exception as exc:  # RuntimeError (bad zip), EOFError, IndexError...: a damaged file
        if "TorchScript" in str(exc):
            raise CheckpointError(
                f"{path} is a TorchScript archive (torch.jit.save), not a state dict; where you "
                f"trust the file, load it with torch.jit.load and save its weights: "
                f"torch.save(module.state_dict(), 'weights.pth')") from None
        raise CheckpointError(
            f"{path} is truncated or corrupt: it could not be read as a PyTorch checkpoint "
            f"({type(exc).__name__}: {_first_line(exc)}); copy or download it again") from None
    return _state_of(path, obj), obj


def _state_of(path, obj) -> Dict[str, Any]:
    state = _find_state_dict(obj)
    if state is None:
        raise CheckpointError(f"{path} holds {_describe_object(obj)}, not a state dict of "
                              f"tensors; expected a model state dict (plain or under "
                              f"'state_dict', 'model' or 'net')")
    return state


def _first_line(exc) -> str:
    """The first sentence of an exception's message: torch adds paragraphs of advice."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    sentence = lines[0].split(". ")[0].rstrip(".")
    return sentence[:200]


def _is_state_dict(obj) -> bool:
    import torch

    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()))


def _find_state_dict(obj, depth: int = 0) -> Optional[Dict[str, Any]]:
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping) and depth < 3:
        for key in _WRAPPER_KEYS:
            if key in obj:
                found = _find_state_dict(obj[key], depth + 1)
                if found is not None:
                    return found
    return None


def _describe_object(obj) -> str:
    if isinstance(obj, Mapping):
        keys = [str(k) for k in list(obj)[:6]]
        more = ", ..." if len(obj) > 6 else ""
        return f"a dict with keys [{', '.join(keys)}{more}]" if obj else "an empty dict"
    return f"a {type(obj).__name__}"


def strip_prefixes(state: Dict[str, Any]) -> Dict[str, Any]:
    """`state` without the wrappers' key prefixes: `module.` (DataParallel) when every key has
    it, and torch.compile's `_orig_mod` wherever it stands (a whole model or a submodule compiled)."""
    if any(_COMPILED in k.split(".") for k in state):
        state = {".".join(p for p in k.split(".") if p != _COMPILED): v for k, v in state.items()}
    while state and all(k.startswith(_WRAPPER_PREFIX) for k in state):
        state = {k[len(_WRAPPER_PREFIX):]: v for k, v in state.items()}
    return state
