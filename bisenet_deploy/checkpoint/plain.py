"""Plain PyTorch state dicts (CoinCheung `.pth` and others): the architecture from the layout.

A state dict carries no record, so the architecture is recognised by its keys, the class count
read from the main classifier and the dataset guessed from the class count unless one is given.
"""

from __future__ import annotations

import logging
from typing import Optional

from ..datasets import resolve_dataset
from ..errors import CheckpointError
from .matching import LoadedModel, build, build_for_state, format_list, ndim
from .mmseg import MMSEG_ARCH

log = logging.getLogger(__name__)

COINCHEUNG_ARCH = "bisenetv2-coincheung"
_MMSEG_BGA_BIAS = "bga.left1.2.bias"
_SOURCES = {COINCHEUNG_ARCH: "coincheung", MMSEG_ARCH: "mmsegmentation"}
_FAMILIES = {COINCHEUNG_ARCH: "a CoinCheung BiSeNetV2", MMSEG_ARCH: "an mmsegmentation BiSeNetV2"}
#: The classifier of the CoinCheung BiSeNetV2 main head; its first dimension is the class count.
COINCHEUNG_HEAD_KEY = "head.conv_out.1.weight"
#: Keys every CoinCheung BiSeNetV2 state dict has (used to recognise one).
_COINCHEUNG_MARKERS = ("detail.S1.0.conv.weight", "segment.S1S2.conv.conv.weight",
                       "bga.conv.0.weight", COINCHEUNG_HEAD_KEY)
_COINCHEUNG_PREFIXES = ("detail.", "segment.", "bga.", "head.", "aux2.", "aux3.", "aux4.", "aux5_4.")
#: The main classifier of the paper networks, and their detail S1 width -> architecture name.
_PAPER_HEAD_KEY = "head.conv_out.0.weight"
_PAPER_ARCH_BY_WIDTH = {64: "bisenetv2", 128: "bisenetv2-large"}


def load_state_dict(path, state, arch, dataset, num_classes, sha) -> LoadedModel:
    guessed = guess_arch(state)
    if arch is None:
        if guessed is None:
            raise CheckpointError(
                f"{path} is not a BiSeNetV2 checkpoint this toolkit knows: it holds "
                f"{len(state)} tensors named like {format_list(sorted(state), 5)}, but a "
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
    file_classes = classes_in_state(arch, state)
    if file_classes is None:
        if num_classes is None:
            raise CheckpointError(
                f"{path}: cannot find the classifier of a {arch!r} network in the file "
                f"(it holds {format_list(sorted(state), 5)}); is it a checkpoint for another "
                f"network? Pass the matching --arch.{hint}")
        file_classes = num_classes
    if num_classes is not None and num_classes != file_classes:
        raise CheckpointError(
            f"{path} has a {file_classes}-class head but --num-classes {num_classes} was given; "
            f"drop --num-classes (it is read from the checkpoint)")
    info = resolve_dataset(dataset, file_classes)
    model = build_for_state(arch, file_classes, state, what=path, hint=hint)
    source = _SOURCES.get(arch, "bisenet-deploy")
    metadata = info.to_model_metadata(arch, weights="checkpoint", source=source,
                                      checkpoint_sha256=sha)
    log.info("loaded %s: %s, %d classes, dataset %s", path, arch, file_classes, info.name)
    return LoadedModel(model, metadata)


def guess_arch(state) -> Optional[str]:
    """The architecture a plain state dict was saved from, by its layout, or None.

    The community variant's main classifier is `head.conv_out.1`, the paper networks' is
    `head.conv_out.0`; the paper networks differ in width (detail S1: 64 or 128 channels). A dict
    without either classifier but mostly named like these networks is taken for a damaged
    CoinCheung file, so that strict loading lists what is missing.
    """
    if COINCHEUNG_HEAD_KEY in state:  # mmsegmentation's form adds biases to the BGA's 1x1 convs
        return MMSEG_ARCH if _MMSEG_BGA_BIAS in state else COINCHEUNG_ARCH
    first = state.get("detail.S1.0.conv.weight")
    if _PAPER_HEAD_KEY in state and ndim(first) == 4:
        return _PAPER_ARCH_BY_WIDTH.get(int(first.shape[0]))
    ours = sum(1 for k in state if k.startswith(_COINCHEUNG_PREFIXES))
    return COINCHEUNG_ARCH if ours >= max(1, len(state) // 2) else None


def classes_in_state(arch, state) -> Optional[int]:
    """The class count of the main head as stored in `state`, or None if not found."""
    if arch in _SOURCES:
        tensor = state.get(COINCHEUNG_HEAD_KEY)
        return int(tensor.shape[0]) if tensor is not None and tensor.dim() >= 1 else None
    # any architecture: the main-head tensors whose shape follows num_classes (shapes only, so
    # the two networks are built on the meta device: no time or memory spent on weights)
    import torch

    with torch.device("meta"):
        a = build(arch, 3, aux=False).state_dict()
        b = build(arch, 5, aux=False).state_dict()
    for key, ta in a.items():
        tb = b[key]
        if ta.shape == tb.shape or key not in state:
            continue
        dim = next(i for i, (x, y) in enumerate(zip(ta.shape, tb.shape)) if x != y)
        if state[key].dim() > dim:
            return int(state[key].shape[dim])
    return None
