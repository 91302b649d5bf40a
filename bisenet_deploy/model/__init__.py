"""The PyTorch reference networks: BiSeNet V2 as the paper draws it, its large form, the
community variant of the public CoinCheung/BiSeNet checkpoints and mmsegmentation's form.

`build_model(arch, num_classes)` is the one entry point. Importing this package does not import
torch (the architecture table is plain data); torch is loaded when a model is built.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from ..errors import InputError

ARCHITECTURES: Dict[str, str] = {
    "bisenetv2": "BiSeNet V2 as in the paper (Table 1, Figs 3-7): GE gather conv expands 6x, "
                 "bilinear aggregation, head mid width C_t=384",
    "bisenetv2-large": "BiSeNetV2-Large: the paper's network with width multiplier alpha=2.0 and "
                       "depth multiplier d=3.0 (Tables 5-6)",
    "bisenetv2-coincheung": "the variant of the public CoinCheung/BiSeNet checkpoints "
                            "(model_final_v2_city/coco/ade20k.pth); state_dict keys match them",
    "bisenetv2-mmseg": "mmsegmentation's BiSeNetV2 + FCN head (the community variant with biased "
                       "1x1 convs and bilinear upsampling in the aggregation layer); its "
                       "checkpoints' keys are renamed on loading",
}

DEFAULT_ARCH = "bisenetv2"

#: network input height and width must be multiples of this (the semantic branch downsamples 32x)
SIZE_MULTIPLE = 32


def nearest_sizes(width: int, height: int) -> str:
    """The accepted WIDTHxHEIGHT sizes nearest to a refused one, e.g. "480x288, 512x288, ..."
    (a side that is already a positive multiple of 32 is kept)."""

    def near(value: int) -> List[int]:
        if value > 0 and value % SIZE_MULTIPLE == 0:
            return [value]
        lower = (value // SIZE_MULTIPLE) * SIZE_MULTIPLE
        return [v for v in (lower, lower + SIZE_MULTIPLE) if v > 0]

    return ", ".join(f"{w}x{h}" for w in near(int(width)) for h in near(int(height)))


def build_model(arch: str, num_classes: int = 19, *, aux: bool = True,
                head_mid_channels: Optional[int] = None):
    """Build a freshly initialised network in training mode (call `.eval()` for inference).

    aux=False leaves out the booster heads entirely (no parameters, no state_dict keys);
    head_mid_channels sets the main segmentation head's mid width C_t (Fig. 7).
    """
    if arch not in ARCHITECTURES:
        raise InputError(f"unknown architecture {arch!r}; choose one of: "
                         f"{', '.join(sorted(ARCHITECTURES))}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"num_classes must be a positive integer, got {num_classes!r}")
    if head_mid_channels is not None and (isinstance(head_mid_channels, bool)
                                          or not isinstance(head_mid_channels, int)
                                          or head_mid_channels < 1):
        raise InputError(f"head_mid_channels must be a positive integer, got {head_mid_channels!r}")
    if arch == "bisenetv2-coincheung":
        from . import coincheung
        return coincheung.build(num_classes, aux=aux, head_mid_channels=head_mid_channels)
    if arch == "bisenetv2-mmseg":
        from . import mmseg
        return mmseg.build(num_classes, aux=aux, head_mid_channels=head_mid_channels)
    from . import paper
    if arch == "bisenetv2-large":
        return paper.build(num_classes, aux=aux, head_mid_channels=head_mid_channels,
                           alpha=2.0, depth=3.0, arch=arch)
    return paper.build(num_classes, aux=aux, head_mid_channels=head_mid_channels, arch=arch)


__all__ = ["ARCHITECTURES", "DEFAULT_ARCH", "SIZE_MULTIPLE", "build_model", "nearest_sizes"]
