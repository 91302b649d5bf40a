"""mmsegmentation BiSeNetV2 checkpoints: recognise them, rename their keys, read their `meta`.

An mmsegmentation checkpoint is `{"meta": {...}, "state_dict": {...}}` (files saved by a training
run also hold "optimizer", "message_hub"...). Its keys are `backbone.*` (the BiSeNetV2 backbone),
`decode_head.*` (the FCN head: one 3x3 conv-BN-ReLU, the 1x1 classifier `conv_seg`) and
`auxiliary_head.*` (booster heads, training only). `convert()` renames the inference tensors to the
`bisenetv2-mmseg` network's keys (the CoinCheung layout plus the aggregation layer's two 1x1
biases), checks the booster heads and leaves them out, and picks the dataset from what `meta` says.

Reading: the `meta` of mmcv-1.x files (the published model-zoo checkpoints) is plain data, which
`torch.load(weights_only=True)` reads as it is. Files saved by mmengine (mmsegmentation 1.x
trainings) also hold the message hub's `HistoryBuffer` objects and numpy values, which weights_only
refuses. When every refused global is such bookkeeping (`load_bookkeeping_inertly`), the file is
read again, still with weights_only, with those globals replaced by an inert placeholder class:
no mmengine or numpy code runs, and the tensors are unaffected.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, Mapping, NamedTuple, Optional, Sequence

from ..datasets import DatasetInfo, custom_dataset, get_dataset
from ..errors import CheckpointError

log = logging.getLogger(__name__)

MMSEG_ARCH = "bisenetv2-mmseg"
MMSEG_PREFIXES = ("backbone.", "decode_head.", "auxiliary_head.")
#: keys every mmsegmentation BiSeNetV2 checkpoint has
MARKERS = ("backbone.detail.detail_branch.0.0.conv.weight",
           "backbone.semantic.stage1.conv_first.conv.weight", "backbone.bga.conv.conv.weight",
           "decode_head.conv_seg.weight")
#: mmsegmentation's default normalization (its configs give it on 0..255), RGB
MMSEG_MEAN_255 = (123.675, 116.28, 103.53)
MMSEG_STD_255 = (58.395, 57.12, 57.375)


def _conv_bn(source: str, target: str, first: int = 0) -> tuple:
    """mmcv's ConvModule names its layers `conv` and `bn`; our networks hold the same two in an
    nn.Sequential, at `first` and `first + 1`."""
    return ((source + r"conv\.", f"{target}{first}."), (source + r"bn\.", f"{target}{first + 1}."))


#: (pattern, replacement) applied in order to every inference key (each at most once)
_RENAMES = tuple((re.compile(p), r) for p, r in (
    (r"^backbone\.detail\.detail_branch\.0\.", "detail.S1."),
    (r"^backbone\.detail\.detail_branch\.1\.", "detail.S2."),
    (r"^backbone\.detail\.detail_branch\.2\.", "detail.S3."),
    (r"^backbone\.semantic\.stage1\.conv_first\.", "segment.S1S2.conv."),
    (r"^backbone\.semantic\.stage1\.convs\.", "segment.S1S2.left."),
    (r"^backbone\.semantic\.stage1\.fuse_last\.", "segment.S1S2.fuse."),
    (r"^backbone\.semantic\.stage4_CEBlock\.gap\.1\.", "segment.S5_5.bn."),
    (r"^backbone\.semantic\.stage4_CEBlock\.", "segment.S5_5."),
    (r"^backbone\.semantic\.stage2\.", "segment.S3."),
    (r"^backbone\.semantic\.stage3\.", "segment.S4."),
    (r"^backbone\.semantic\.stage4\.", "segment.S5_4."),
    # GE layers: the first of a stage has stride 2 (two depthwise convs, a shortcut)
    (r"^(segment\.S\w+\.0\.)dwconv\.0\.", r"\1dwconv1."),
    (r"^(segment\.S\w+\.0\.)dwconv\.1\.", r"\1dwconv2."),
    (r"^(segment\.S\w+\.\d+\.)dwconv\.0\.", r"\1dwconv."),
    *_conv_bn(r"\.(dwconv1|dwconv2|dwconv)\.", r".\1."),
    *_conv_bn(r"\.conv2\.0\.", ".conv2."),
    *_conv_bn(r"\.shortcut\.0\.depthwise_conv\.", ".shortcut."),
    *_conv_bn(r"\.shortcut\.0\.pointwise_conv\.", ".shortcut.", first=2),
    # aggregation layer
    (r"^backbone\.bga\.detail_dwconv\.0\.", "bga.left1."),
    (r"^backbone\.bga\.detail_down\.0\.", "bga.left2."),
    (r"^backbone\.bga\.semantic_conv\.0\.", "bga.right1."),
    (r"^backbone\.bga\.semantic_dwconv\.0\.", "bga.right2."),
    *_conv_bn(r"^(bga\.(?:left1|right2))\.depthwise_conv\.", r"\1."),
    (r"^(bga\.(?:left1|right2))\.pointwise_conv\.conv\.", r"\1.2."),  # no BN: a biased 1x1 conv
    *_conv_bn(r"^(bga\.(?:left2|right1))\.", r"\1."),
    *_conv_bn(r"^backbone\.bga\.conv\.", "bga.conv."),
    # FCN decode head
    (r"^decode_head\.convs\.0\.", "head.conv."),
    (r"^decode_head\.conv_seg\.", "head.conv_out.1."),
))
_BN = r"bn\.(?:weight|bias|running_mean|running_var|num_batches_tracked)"
_DECODE_KEY = re.compile(rf"^decode_head\.(?:convs\.0\.(?:conv\.weight|{_BN})|"
                         rf"conv_seg\.(?:weight|bias))$")
_AUX_KEY = re.compile(rf"^auxiliary_head\.(?:(\d+)\.)?(?:convs\.\d+\.(?:conv\.weight|{_BN})|"
                      rf"conv_seg\.(?:weight|bias))$")


class Converted(NamedTuple):
    """The state dict in `bisenetv2-mmseg` keys and the dataset its `meta` describes."""

    state: Dict[str, Any]
    dataset: DatasetInfo


def is_mmseg_state(state: Mapping[str, Any]) -> bool:
    """True for a state dict named like an mmsegmentation segmentor (any network): a backbone
    and a decode head, and mostly their (and the auxiliary heads') keys."""
    ours = sum(1 for k in state if k.startswith(MMSEG_PREFIXES))
    return (any(k.startswith("backbone.") for k in state)
            and any(k.startswith("decode_head.") for k in state)
            and ours >= max(1, len(state) // 2))


def rename_key(key: str) -> str:
    """An mmsegmentation BiSeNetV2 inference key -> the `bisenetv2-mmseg` network's key."""
    for pattern, replacement in _RENAMES:
        key = pattern.sub(replacement, key, count=1)
    return key


def convert(path: str, state: Mapping[str, Any], container: Any = None) -> Converted:
    """Rename an mmsegmentation BiSeNetV2 state dict; check and drop its booster heads.

    `container` is the object the file held (for its "meta"). Anything that is not mmsegmentation's
    BiSeNetV2 with its FCN head is a CheckpointError saying what the file is.
    """
    missing = [k for k in MARKERS if k not in state]
    if missing:
        backbone = sorted(k for k in state if k.startswith("backbone."))[:3]
        raise CheckpointError(
            f"{path} is an mmsegmentation checkpoint of another network (no {missing[0]}; its "
            f"backbone holds {', '.join(backbone) or 'nothing'}...): bisenet-deploy loads "
            f"mmsegmentation's BiSeNetV2 (configs/bisenetv2) only")
    other_head = sorted(k for k in state if k.startswith("decode_head.")
                        and not _DECODE_KEY.match(k))
    if other_head:
        raise CheckpointError(
            f"{path}: the mmsegmentation decode head is not the FCN head of the BiSeNetV2 configs "
            f"(one 3x3 conv, concat_input=False): it also holds {', '.join(other_head[:3])}; "
            f"bisenet-deploy cannot build that head")
    classifier = state["decode_head.conv_seg.weight"]
    if classifier.dim() != 4:
        raise CheckpointError(f"{path}: decode_head.conv_seg.weight has shape "
                              f"{tuple(classifier.shape)}, not classes x channels x 1 x 1; the "
                              f"checkpoint is damaged")
    num_classes = int(classifier.shape[0])
    aux = {k: v for k, v in state.items() if k.startswith("auxiliary_head.")}
    _check_aux(path, aux, num_classes)
    renamed = {rename_key(k): v for k, v in state.items() if k not in aux}
    if aux:
        log.info("%s: left out the %d tensors of the %d auxiliary (booster) heads: training only",
                 path, len(aux), len({_AUX_KEY.match(k).group(1) for k in aux}))
    meta = container.get("meta") if isinstance(container, Mapping) else None
    return Converted(renamed, dataset_from_meta(meta, num_classes, path))


def _check_aux(path: str, aux: Mapping[str, Any], num_classes: int) -> None:
    """Booster heads must be FCN heads predicting the decode head's classes (a damaged or foreign
    file otherwise); they are not loaded, so this is all that is checked."""
    odd = sorted(k for k in aux if not _AUX_KEY.match(k))
    if odd:
        raise CheckpointError(f"{path}: unexpected auxiliary-head tensors for mmsegmentation's "
                              f"BiSeNetV2 ({', '.join(odd[:3])}); is it another network's file?")
    for key, tensor in aux.items():
        classes = int(tensor.shape[0]) if tensor.dim() >= 1 else None
        if key.endswith("conv_seg.weight") and classes != num_classes:
            raise CheckpointError(
                f"{path}: {key} predicts {classes} classes but decode_head.conv_seg "
                f"{num_classes}; the checkpoint is damaged or mixes two models")


# --- meta: classes, palette, normalization -----------------------------------------------------

def dataset_from_meta(meta: Any, num_classes: int, path: str = "") -> DatasetInfo:
    """The dataset an mmsegmentation checkpoint was trained on, from its meta when it says.

    Cityscapes' classes (or 19 classes and no class list) -> the `cityscapes-mmseg` preset;
    other classes -> a custom dataset with the file's class names and palette. The normalization
    is the config's (`mean=[...]`, `std=[...]`, `to_rgb`/`bgr_to_rgb`) when the file holds its
    config, mmsegmentation's default ImageNet values otherwise.
    """
    meta = meta if isinstance(meta, Mapping) else {}
    dataset_meta = meta.get("dataset_meta") if isinstance(meta.get("dataset_meta"), Mapping) else {}
    classes = _names(dataset_meta.get("classes", meta.get("CLASSES")))
    palette = _colours(dataset_meta.get("palette", meta.get("PALETTE")))
    if classes is not None and len(classes) != num_classes:
        log.warning("%s: meta lists %d classes but the head predicts %d; ignoring the list",
                    path, len(classes), num_classes)
        classes = None
    city = get_dataset("cityscapes-mmseg")
    if (classes is None and num_classes == city.num_classes) or (
            classes is not None and [c.lower() for c in classes] == city.class_names):
        info = city
    else:
        usable = palette is not None and len(palette) == num_classes
        info = custom_dataset(num_classes, classes, palette=palette if usable else None)
    text = meta.get("cfg", meta.get("config"))
    norm = normalization_from_config(text) if isinstance(text, str) else None
    if norm is not None:
        mean, std, order = norm
        if (order != info.channel_order or max(abs(a - b) for a, b in zip(mean + std, info.mean
                                                                             + info.std)) > 1e-6):
            log.info("%s: normalization from its config: mean %s, std %s (pixel / 255), %s",
                     path, [round(v, 4) for v in mean], [round(v, 4) for v in std], order)
            info = info.replace(name="custom" if info.name == city.name else info.name,
                                mean=mean, std=std, channel_order=order)
    return info


def normalization_from_config(text: str) -> Optional[tuple]:
    """(mean, std for pixel / 255, channel order) from an mmsegmentation config's text, or None.

    mmsegmentation reads images as BGR; `to_rgb=True` (0.x) / `bgr_to_rgb=True` (1.x) flips them
    to RGB before normalizing, so the network sees RGB; False means it was trained on BGR.
    """
    mean = _floats_after(text, "mean")
    std = _floats_after(text, "std")
    if mean is None or std is None or any(s <= 0 for s in std):
        return None
    flip = re.search(r"\b(?:bgr_)?to_rgb\s*=\s*(True|False)", text)
    order = "bgr" if flip is not None and flip.group(1) == "False" else "rgb"
    return [v / 255.0 for v in mean], [v / 255.0 for v in std], order


def _floats_after(text: str, name: str) -> Optional[list]:
    found = re.search(rf"\b{name}\s*=\s*[\[(]([^\])]*)[\])]", text)
    if found is None:
        return None
    try:
        values = [float(v) for v in found.group(1).replace("\n", " ").split(",") if v.strip()]
    except ValueError:
        return None
    return values if len(values) == 3 else None


def _names(value: Any) -> Optional[list]:
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    return None


def _colours(value: Any) -> Optional[list]:
    try:
        colours = [[int(c) for c in rgb] for rgb in value]
    except (TypeError, ValueError):
        return None
    ok = all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in colours)
    return colours if colours and ok else None


# --- reading files saved by mmengine -----------------------------------------------------------

#: globals of OpenMMLab training bookkeeping (message hub, numpy scalars/arrays in it)
_BOOKKEEPING = re.compile(r"^(?:mmengine\.|mmcv\.|numpy\.|builtins\.getattr$|_codecs\.encode$)")


class _Inert:
    """Stands in for a bookkeeping object: accepts any arguments and state, does nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def load_bookkeeping_inertly(path: str) -> Optional[Any]:
    """The file's object read with weights_only, OpenMMLab bookkeeping globals made inert; None
    when the file refers to any other global, cannot be read so, or this torch cannot list them."""
    import torch

    lister = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    context = getattr(torch.serialization, "safe_globals", None)
    if lister is None or context is None:
        return None
    try:
        names: Sequence[str] = lister(path)
    except Exception:  # an unreadable file: the caller reports the original error
        return None
    if not names or not all(_BOOKKEEPING.match(n) for n in names):
        return None
    log.info("%s: training bookkeeping (%s) replaced by placeholders; only tensors and plain "
             "data are read", path, ", ".join(sorted(names)[:4]))
    try:
        with context([(_Inert, name) for name in names]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # still refused or damaged: the caller reports the first error
        return None
