"""`bisenetv2-mmseg`: BiSeNetV2 as mmsegmentation builds it (its `BiSeNetV2` backbone + FCN head).

mmsegmentation's network is the community variant of `coincheung.py` (same detail branch, stem,
GE layers with ReLUs after the depthwise convs, context block with a BN-ReLU last conv, ReLU after
the aggregation conv, main head 3x3 CBR to 1024 -> dropout -> 1x1 classifier -> bilinear x8) with
two differences in the aggregation layer: the 1x1 convs of `left1`/`right2` carry a bias (no BN
follows them), and its x4 upsamplings are bilinear (align_corners=False), not nearest.

Its booster heads differ in structure: FCN heads of two 3x3 conv-BN-ReLU layers (widths 16, 64,
256, 1024 in the Cityscapes config) -> dropout -> 1x1 classifier, upsampled to the input. They are
built with `aux=True` only; checkpoints' `auxiliary_head.*` tensors are training-only and are not
loaded (see `bisenet_deploy/checkpoint/mmseg.py`).
"""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from . import coincheung, layers
from .layers import BiSeNetV2Net, ConvBNReLU, DetailBranch, Resize, init_weights

ARCH = "bisenetv2-mmseg"
#: (input width, FCN width, total upsampling) of the booster heads after S1S2, S3, S4 and S5_4
AUX_HEADS = ((16, 16, 4), (32, 64, 8), (64, 256, 16), (128, 1024, 32))


class FCNAuxHead(nn.Module):
    """mmsegmentation's FCNHead with two convs: CBR 3x3 x2 -> dropout -> 1x1 -> bilinear x up."""

    def __init__(self, cin: int, width: int, num_classes: int, up: int):
        super().__init__()
        self.convs = nn.Sequential(ConvBNReLU(cin, width), ConvBNReLU(width, width))
        self.drop = nn.Dropout(0.1)
        self.conv_seg = nn.Conv2d(width, num_classes, 1, bias=True)
        self.up = Resize(up, "bilinear")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.conv_seg(self.drop(self.convs(x))))


def build(num_classes: int = 19, aux: bool = True,
          head_mid_channels: Optional[int] = None) -> BiSeNetV2Net:
    mid = 1024 if head_mid_channels is None else int(head_mid_channels)
    aux_heads: Optional[List[nn.Module]] = None
    if aux:
        aux_heads = [FCNAuxHead(cin, width, num_classes, up) for cin, width, up in AUX_HEADS]
    bga = layers.GuidedAggregation(128, proj_bias=True, up_mode="bilinear", out_relu=True)
    model = BiSeNetV2Net(ARCH, num_classes, DetailBranch(64, 64, 128),
                         coincheung.semantic_branch(), bga,
                         coincheung.SegmentHead(128, mid, num_classes, 8), aux_heads)
    init_weights(model)
    return model
