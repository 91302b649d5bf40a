"""Building the network a state dict is for, and loading it strictly.

Every tensor in a file must be consumed by the network and every shape must match; otherwise one
`CheckpointError` lists the missing, unexpected and mismatched keys, so a checkpoint of another
network or a damaged file is named as such instead of loading half its weights.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, NamedTuple, Optional

from ..errors import CheckpointError
from ..metadata import ModelMetadata

#: The main head's 3x3 conv: its output width is the head's C_t (Fig. 7) in every architecture.
HEAD_MID_KEY = "head.conv.conv.weight"
RANDOM_WEIGHTS_WARNING = ("RANDOM WEIGHTS: for trying the pipeline only, predictions are "
                          "meaningless; pass --checkpoint")
_LIST_LIMIT = 8


class LoadedModel(NamedTuple):
    """A network in eval mode and the metadata describing it (unpacks as `model, metadata`)."""

    model: Any
    metadata: ModelMetadata


def build(arch, num_classes, aux, head_mid_channels=None):
    from ..model import build_model

    return build_model(arch, int(num_classes), aux=aux, head_mid_channels=head_mid_channels)


def ndim(value) -> int:
    """The number of dimensions of a tensor-like value, -1 for anything else."""
    shape = getattr(value, "shape", None)
    return len(shape) if shape is not None else -1


def head_mid_in_state(state) -> Optional[int]:
    """The main head's mid width C_t as stored (a model built with another C_t than the default)."""
    weight = state.get(HEAD_MID_KEY)
    return int(weight.shape[0]) if ndim(weight) == 4 and weight.shape[0] > 0 else None


def build_for_state(arch, num_classes, state, what, hint=""):
    """Build `arch` (with aux heads only if `state` has their weights) and load `state` strictly.

    The main head's C_t is taken from the weights, so a model built with `head_mid_channels`
    saves and loads like any other.
    """
    mid = head_mid_in_state(state)
    model = build(arch, num_classes, aux=False, head_mid_channels=mid)
    expected = model.state_dict()
    extra = [k for k in state if k not in expected]
    if extra:
        with_aux = build(arch, num_classes, aux=True, head_mid_channels=mid)
        aux_keys = set(with_aux.state_dict())
        if any(k in aux_keys for k in extra):
            model, expected = with_aux, with_aux.state_dict()
    prepared = match(state, expected, arch, num_classes, what, hint)
    model.load_state_dict(prepared, strict=True)
    model.eval()
    return model


def match(state, expected, arch, num_classes, what, hint="") -> Dict[str, Any]:
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
            parts.append(f"{len(missing)} missing: {format_list(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {format_list(unexpected)}")
        if mismatched:
            parts.append(f"{len(mismatched)} with another shape: {format_list(mismatched)}")
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


def format_list(items: Iterable[str], limit: int = _LIST_LIMIT) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f", ... and {len(items) - limit} more"
    return shown
