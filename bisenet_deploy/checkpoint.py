"""Checkpoints: our self-describing safetensors format, CoinCheung `.pth` import, `load_model()`.

A deployable model is weights plus the facts needed to use them (architecture, classes, palette,
mean/std...). Our format keeps both in one `.safetensors` file: the tensors, and the metadata
record (`metadata.build_record`) as JSON under the safetensors metadata key `bisenet_deploy`.

Checkpoints are untrusted files. They are read with safetensors or `torch.load(weights_only=True)`
only, after a look at the first bytes, so a download error page, a truncated file or a pickle with
arbitrary objects is a clear `CheckpointError` and never a traceback from inside torch. Loading is
strict: every tensor in the file must be consumed by the network and every shape must match,
otherwise the error lists the missing, unexpected and mismatched keys.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import warnings
from typing import Any, Dict, Iterable, Mapping, NamedTuple, Optional, Tuple

from .datasets import as_dataset_info, get_dataset, resolve_dataset
from .errors import CheckpointError, InputError
from .metadata import (
    METADATA_KEY,
    ModelMetadata,
    build_record,
    dumps_record,
    loads_record,
)
from .portable.fileio import atomic_output, sha256_file

log = logging.getLogger(__name__)

COINCHEUNG_ARCH = "bisenetv2-coincheung"
MMSEG_ARCH = "bisenetv2-mmseg"
_MMSEG_BGA_BIAS = "bga.left1.2.bias"
_SOURCES = {COINCHEUNG_ARCH: "coincheung", MMSEG_ARCH: "mmsegmentation"}
_FAMILIES = {COINCHEUNG_ARCH: "a CoinCheung BiSeNetV2", MMSEG_ARCH: "an mmsegmentation BiSeNetV2"}
#: The arch used for a random initialisation when nothing names one.
RANDOM_INIT_DEFAULT_ARCH = "bisenetv2"
#: The classifier of the CoinCheung BiSeNetV2 main head; its first dimension is the class count.
COINCHEUNG_HEAD_KEY = "head.conv_out.1.weight"
#: Keys every CoinCheung BiSeNetV2 state dict has (used to recognise one).
_COINCHEUNG_MARKERS = ("detail.S1.0.conv.weight", "segment.S1S2.conv.conv.weight",
                       "bga.conv.0.weight", COINCHEUNG_HEAD_KEY)
_COINCHEUNG_PREFIXES = ("detail.", "segment.", "bga.", "head.", "aux2.", "aux3.", "aux4.", "aux5_4.")
#: The main head's 3x3 conv: its output width is the head's C_t (Fig. 7) in every architecture.
_HEAD_MID_KEY = "head.conv.conv.weight"
#: The main classifier of the paper networks, and their detail S1 width -> architecture name.
_PAPER_HEAD_KEY = "head.conv_out.0.weight"
_PAPER_ARCH_BY_WIDTH = {64: "bisenetv2", 128: "bisenetv2-large"}
RANDOM_WEIGHTS_WARNING = ("RANDOM WEIGHTS: for trying the pipeline only, predictions are "
                          "meaningless; pass --checkpoint")
# prefixes added by nn.DataParallel/DistributedDataParallel and torch.compile
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# keys under which training scripts commonly nest the state dict
_WRAPPER_KEYS = ("state_dict", "model", "net", "model_state_dict", "model_state", "network",
                 "weights", "params", "module")
_LIST_LIMIT = 8

__all__ = [
    "COINCHEUNG_ARCH",
    "RANDOM_WEIGHTS_WARNING",
    "LoadedModel",
    "load_model",
    "read_checkpoint_metadata",
    "save_checkpoint",
]


class LoadedModel(NamedTuple):
    """A network in eval mode and the metadata describing it (unpacks as `model, metadata`)."""

    model: Any
    metadata: ModelMetadata


# --- saving ------------------------------------------------------------------------------------

def save_checkpoint(path, model, metadata: ModelMetadata) -> str:
    """Write `model`'s weights and `metadata` to one `.safetensors` file, atomically.

    The weights are checked against `metadata.arch`/`num_classes` first, so a file that could not
    be loaded back is never written. Aux-head weights are kept if the model has them.
    """
    from safetensors.torch import save_file

    if not isinstance(metadata, ModelMetadata):
        raise TypeError("metadata must be a bisenet_deploy.metadata.ModelMetadata")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    # builds the reference network for the metadata and raises if the weights do not fit it
    _build_for_state(metadata.arch, metadata.num_classes, state, what="the model to save")
    header = {METADATA_KEY: dumps_record(build_record(metadata)), "format": "pt"}
    path = str(path)
    with atomic_output(path, suffix=".safetensors") as tmp:
        save_file(state, tmp, metadata=header)
    log.info("saved %s (%s, %d classes, %d tensors)", path, metadata.arch,
             metadata.num_classes, len(state))
    return path


# --- loading -----------------------------------------------------------------------------------

def load_model(path: Optional[str] = None, arch: Optional[str] = None, dataset=None,
               num_classes: Optional[int] = None, seed: int = 0) -> LoadedModel:
    """Load a checkpoint (ours or CoinCheung's) or, with `path=None`, build a seeded random model.

    - our `.safetensors`: arch, classes and dataset come from the file; an `arch`/`num_classes`
      that contradicts the file is an error; `dataset` may relabel it (same class count).
    - a PyTorch state dict (`.pth`, plain, `module.`-prefixed or nested under "state_dict",
      "model", "net"...): a CoinCheung BiSeNetV2 dict selects `bisenetv2-coincheung` by itself,
      an mmsegmentation one `bisenetv2-mmseg` (keys renamed, see `mmseg_checkpoint`; a plain dict
      of our paper networks selects `bisenetv2`/`bisenetv2-large` the same way); the class
      count is read from the head, the dataset guessed from it (or the file's meta) unless given.
    - None: `arch` (default "bisenetv2") with seeded random weights and a loud warning.
    The model is returned in eval mode on the CPU.
    """
    if num_classes is not None:
        num_classes = _positive_int(num_classes, "num_classes")
    if path is None:
        return _random_model(arch, dataset, num_classes, seed)
    path = _check_path(path)
    kind = _sniff(path)
    container = None
    if kind == "safetensors":
        state, record = _read_safetensors(path)
    else:
        (state, container), record = _read_torch(path), None
    state = _strip_prefixes(state)
    sha = sha256_file(path)
    if record is not None:
        return _load_ours(path, state, record, arch, dataset, num_classes, sha)
    from . import mmseg_checkpoint

    if mmseg_checkpoint.is_mmseg_state(state):
        state, described = mmseg_checkpoint.convert(path, state, container)
        dataset = described if dataset is None else dataset
    return _load_state_dict(path, state, arch, dataset, num_classes, sha)


def read_checkpoint_metadata(path) -> Optional[ModelMetadata]:
    """The metadata of one of our `.safetensors` files without building the network.

    Returns None for a file without our record (e.g. a CoinCheung `.pth`).
    """
    path = _check_path(path)
    if _sniff(path) != "safetensors":
        return None
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception as exc:  # safetensors raises SafetensorError (an Exception) for bad files
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({exc})") from None
    if METADATA_KEY not in header:
        return None
    metadata = _metadata_from_record(path, _parse_record(path, header[METADATA_KEY]))
    metadata.checkpoint_sha256 = sha256_file(path)
    return metadata


# --- random initialisation ---------------------------------------------------------------------

def _random_model(arch, dataset, num_classes, seed) -> LoadedModel:
    import torch

    arch = arch or RANDOM_INIT_DEFAULT_ARCH
    described = as_dataset_info(dataset)
    if num_classes is None:
        if dataset is None:
            num_classes = 19
        elif described is not None:
            num_classes = described.num_classes
        else:  # a preset name; "custom" without a class count is an InputError here
            num_classes = get_dataset(str(dataset)).num_classes
    info = resolve_dataset(dataset, num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = _build(arch, num_classes, aux=False)
    model.eval()
    metadata = info.to_model_metadata(arch, weights="random-init", source="random-init")
    log.warning("%s (arch %s, %d classes, seed %d)", RANDOM_WEIGHTS_WARNING, arch, num_classes,
                int(seed))
    return LoadedModel(model, metadata)


# --- our format --------------------------------------------------------------------------------

def _load_ours(path, state, record, arch, dataset, num_classes, sha) -> LoadedModel:
    from .model import ARCHITECTURES

    metadata = _metadata_from_record(path, record)
    if metadata.arch not in ARCHITECTURES:
        raise CheckpointError(
            f"{path} holds a {metadata.arch!r} model, an architecture this bisenet-deploy does "
            f"not know (it knows {', '.join(sorted(ARCHITECTURES))}); use the bisenet-deploy "
            f"version that wrote it (toolkit_version {record.get('toolkit_version', '?')})")
    if arch is not None and arch != metadata.arch:
        raise CheckpointError(
            f"{path} holds a {metadata.arch!r} model but --arch {arch} was given; drop --arch "
            f"(the checkpoint names its architecture)")
    if num_classes is not None and num_classes != metadata.num_classes:
        raise CheckpointError(
            f"{path} holds a {metadata.num_classes}-class model but --num-classes {num_classes} "
            f"was given; drop --num-classes")
    if dataset is not None:
        info = resolve_dataset(dataset, metadata.num_classes)
        # naming the file's own dataset keeps the file's record (its class names may be custom)
        if info.name != metadata.dataset or not isinstance(dataset, str):
            log.info("relabelling %s: dataset %s -> %s", path, metadata.dataset, info.name)
            metadata = info.to_model_metadata(metadata.arch, weights=metadata.weights,
                                              source=metadata.source)
    model = _build_for_state(metadata.arch, metadata.num_classes, state, what=path)
    metadata.checkpoint_sha256 = sha
    if metadata.weights == "random-init":
        log.warning("%s: %s", path, RANDOM_WEIGHTS_WARNING.replace(
            "pass --checkpoint", "this checkpoint was saved from a random initialisation"))
    log.info("loaded %s: %s, %d classes (%s), weights from %s", path, metadata.arch,
             metadata.num_classes, metadata.dataset, metadata.source)
    return LoadedModel(model, metadata)


def _metadata_from_record(path, record) -> ModelMetadata:
    try:
        return ModelMetadata.from_dict(record["model"])
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{path}: the bisenet_deploy metadata in the file is damaged "
                              f"({exc}); re-create the checkpoint") from None


def _parse_record(path, text) -> Dict[str, Any]:
    try:
        return loads_record(text)
    except InputError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


# --- plain state dicts (CoinCheung .pth and others) ---------------------------------------------

def _load_state_dict(path, state, arch, dataset, num_classes, sha) -> LoadedModel:
    guessed = _guess_arch(state)
    if arch is None:
        if guessed is None:
            raise CheckpointError(
                f"{path} is not a BiSeNetV2 checkpoint this toolkit knows: it holds "
                f"{len(state)} tensors named like {_format_list(sorted(state), 5)}, but a "
                f"CoinCheung/BiSeNet BiSeNetV2 state dict has {', '.join(_COINCHEUNG_MARKERS)}. "
                f"Pass a model_final_v2_*.pth, an mmsegmentation BiSeNetV2 .pth or a "
                f".safetensors written by bisenet-deploy (or --arch NAME if this is a plain state "
                f"dict of one of our architectures)")
        arch = guessed
        if arch not in _SOURCES:
            log.info("%s: a plain state dict of the %s network (recognised by its layout)",
                     path, arch)
    hint = ""
    if guessed is not None and arch != guessed:
        what = _FAMILIES.get(guessed, f"a {guessed!r}")
        hint = (f" This file looks like {what} checkpoint: drop --arch or pass "
                f"--arch {guessed}.")
    file_classes = _classes_in_state(arch, state)
    if file_classes is None:
        if num_classes is None:
            raise CheckpointError(
                f"{path}: cannot find the classifier of a {arch!r} network in the file "
                f"(it holds {_format_list(sorted(state), 5)}); is it a checkpoint for another "
                f"network? Pass the matching --arch.{hint}")
        file_classes = num_classes
    if num_classes is not None and num_classes != file_classes:
        raise CheckpointError(
            f"{path} has a {file_classes}-class head but --num-classes {num_classes} was given; "
            f"drop --num-classes (it is read from the checkpoint)")
    info = resolve_dataset(dataset, file_classes)
    model = _build_for_state(arch, file_classes, state, what=path, hint=hint)
    source = _SOURCES.get(arch, "bisenet-deploy")
    metadata = info.to_model_metadata(arch, weights="checkpoint", source=source,
                                      checkpoint_sha256=sha)
    log.info("loaded %s: %s, %d classes, dataset %s", path, arch, file_classes, info.name)
    return LoadedModel(model, metadata)


def _guess_arch(state) -> Optional[str]:
    """The architecture a plain state dict was saved from, by its layout, or None.

    The community variant's main classifier is `head.conv_out.1`, the paper networks' is
    `head.conv_out.0`; the paper networks differ in width (detail S1: 64 or 128 channels). A dict
    without either classifier but mostly named like these networks is taken for a damaged
    CoinCheung file, so that strict loading lists what is missing.
    """
    if COINCHEUNG_HEAD_KEY in state:  # mmsegmentation's form adds biases to the BGA's 1x1 convs
        return MMSEG_ARCH if _MMSEG_BGA_BIAS in state else COINCHEUNG_ARCH
    first = state.get("detail.S1.0.conv.weight")
    if _PAPER_HEAD_KEY in state and _ndim(first) == 4:
        return _PAPER_ARCH_BY_WIDTH.get(int(first.shape[0]))
    ours = sum(1 for k in state if k.startswith(_COINCHEUNG_PREFIXES))
    return COINCHEUNG_ARCH if ours >= max(1, len(state) // 2) else None


def _ndim(value) -> int:
    """The number of dimensions of a tensor-like value, -1 for anything else."""
    shape = getattr(value, "shape", None)
    return len(shape) if shape is not None else -1


def _classes_in_state(arch, state) -> Optional[int]:
    """The class count of the main head as stored in `state`, or None if not found."""
    if arch in _SOURCES:
        tensor = state.get(COINCHEUNG_HEAD_KEY)
        return int(tensor.shape[0]) if tensor is not None and tensor.dim() >= 1 else None
    # any architecture: the main-head tensors whose shape follows num_classes (shapes only, so
    # the two networks are built on the meta device: no time or memory spent on weights)
    import torch

    with torch.device("meta"):
        a = _build(arch, 3, aux=False).state_dict()
        b = _build(arch, 5, aux=False).state_dict()
    for key, ta in a.items():
        tb = b[key]
        if ta.shape == tb.shape or key not in state:
            continue
        dim = next(i for i, (x, y) in enumerate(zip(ta.shape, tb.shape)) if x != y)
        if state[key].dim() > dim:
            return int(state[key].shape[dim])
    return None


# --- building and strict matching --------------------------------------------------------------

def _build(arch, num_classes, aux, head_mid_channels=None):
    from .model import build_model

    return build_model(arch, int(num_classes), aux=aux, head_mid_channels=head_mid_channels)


def _head_mid_in_state(state) -> Optional[int]:
    """The main head's mid width C_t as stored (a model built with another C_t than the default)."""
    weight = state.get(_HEAD_MID_KEY)
    return int(weight.shape[0]) if _ndim(weight) == 4 and weight.shape[0] > 0 else None


def _build_for_state(arch, num_classes, state, what, hint=""):
    """Build `arch` (with aux heads only if `state` has their weights) and load `state` strictly.

    The main head's C_t is taken from the weights, so a model built with `head_mid_channels`
    saves and loads like any other.
    """
    mid = _head_mid_in_state(state)
    model = _build(arch, num_classes, aux=False, head_mid_channels=mid)
    expected = model.state_dict()
    extra = [k for k in state if k not in expected]
    if extra:
        with_aux = _build(arch, num_classes, aux=True, head_mid_channels=mid)
        aux_keys = set(with_aux.state_dict())
        if any(k in aux_keys for k in extra):
            model, expected = with_aux, with_aux.state_dict()
    prepared = _match(state, expected, arch, num_classes, what, hint)
    model.load_state_dict(prepared, strict=True)
    model.eval()
    return model


def _match(state, expected, arch, num_classes, what, hint="") -> Dict[str, Any]:
    """`state` completed for `expected`, or a CheckpointError listing every difference."""
    import torch

    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected and not k.endswith("num_batches_tracked")]
    mismatched = []
    for key, ref in expected.items():
        if key in state:
            got = state[key]
            if not torch.is_tensor(got) or tuple(got.shape) != tuple(ref.shape):
                mismatched.append(f"{key}: file {_shape(got)}, model {_shape(ref)}")
            elif got.dtype.is_floating_point != ref.dtype.is_floating_point:
                mismatched.append(f"{key}: file dtype {got.dtype}, model {ref.dtype}")
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {_format_list(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {_format_list(unexpected)}")
        if mismatched:
            parts.append(f"{len(mismatched)} with another shape: {_format_list(mismatched)}")
        matched = sum(1 for k in expected if k in state)
        verdict = ""
        if matched < len(expected) // 2:
            verdict = (f" Only {matched} of the {len(expected)} tensors of the network are in "
                       f"the file: it is probably a checkpoint of another network.")
        raise CheckpointError(
            f"{what} does not fit a {num_classes}-class {arch!r} network: "
            f"{'; '.join(parts)}.{verdict}{hint}")
    # only num_batches_tracked can be absent here: keep the model's own
    return {key: state.get(key, ref) for key, ref in expected.items()}


def _shape(tensor) -> str:
    shape = getattr(tensor, "shape", None)
    if shape is None:
        return type(tensor).__name__
    return "x".join(str(int(s)) for s in shape) or "scalar"


def _format_list(items: Iterable[str], limit: int = _LIST_LIMIT) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f", ... and {len(items) - limit} more"
    return shown


# --- reading files -----------------------------------------------------------------------------

def _positive_int(value, name) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive integer, got {value!r}") from None
    if number < 1 or isinstance(value, bool):
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return number


def _check_path(path) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):  # a usage error (exit 2), like every missing path
        raise InputError(f"checkpoint not found: {path} (check the path, or leave "
                         f"--checkpoint out to try the pipeline with random weights)")
    if not os.path.isfile(path):
        raise InputError(f"checkpoint {path} is not a file")
    return str(path)


def _sniff(path) -> str:
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


#: file types users pass as a checkpoint by mistake -> what to do instead
_OTHER_ARTIFACTS = {
    ".onnx": " (this looks like an ONNX graph: commands that take one have --onnx)",
    ".engine": " (this looks like a TensorRT engine: commands that take one have --engine)",
    ".plan": " (this looks like a TensorRT engine: commands that take one have --engine)",
    ".trt": " (this looks like a TensorRT engine: commands that take one have --engine)",
}


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


def _read_safetensors(path) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
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
    record = _parse_record(path, header[METADATA_KEY]) if METADATA_KEY in header else None
    return state, record


def _read_torch(path) -> Tuple[Dict[str, Any], Any]:
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
            from .mmseg_checkpoint import load_bookkeeping_inertly  # mmengine training files

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


def _strip_prefixes(state: Dict[str, Any]) -> Dict[str, Any]:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state
