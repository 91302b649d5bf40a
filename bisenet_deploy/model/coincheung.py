"""`bisenetv2-coincheung`: the variant the public CoinCheung/BiSeNet checkpoints were trained with.

It differs from the paper (see docs/architecture.md): the GE gather conv keeps the input width and
the first depthwise conv does the 6x expansion; ReLUs after the GE depthwise convs, BN-ReLU on the
context block's last conv, a ReLU after the aggregation conv, nearest-neighbour x4 upsampling in
the aggregation layer, and booster heads with a nearest x2 + conv step. State-dict keys and shapes
equal the public checkpoints' exactly (383 keys for 19 classes with aux heads).
"""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from . import layers
from .layers import BiSeNetV2Net, ConvBNReLU, DetailBranch, Resize, StemBlock, init_weights

EXPANSION = 6


def _ge(cin: int, cout: int, stride: int) -> nn.Module:
    """A GE layer in the community form: the depthwise conv expands, a ReLU follows it."""
    block = layers.GELayerS2 if stride == 2 else layers.GELayerS1
    return block(cin, cout, EXPANSION, expand_in_gather=False, dw_relu=True)


def semantic_branch() -> layers.SemanticBranch:
    return layers.SemanticBranch(
        StemBlock(16),
        nn.Sequential(_ge(16, 32, 2), _ge(32, 32, 1)),
        nn.Sequential(_ge(32, 64, 2), _ge(64, 64, 1)),
        nn.Sequential(_ge(64, 128, 2), _ge(128, 128, 1), _ge(128, 128, 1), _ge(128, 128, 1)),
        layers.ContextEmbedding(128, last_bn_relu=True))


class SegmentHead(nn.Module):
    """CBR 3x3 -> dropout -> [aux only: nearest x2, CBR 3x3 to up^2 channels] -> 1x1 -> bilinear."""

    def __init__(self, cin: int, mid: int, num_classes: int, up: int, aux: bool = False):
        super().__init__()
        self.conv = ConvBNReLU(cin, mid)
        self.drop = nn.Dropout(0.1)
        if aux:
            mid2 = up * up
            first: nn.Module = nn.Sequential(Resize(2, "nearest"), ConvBNReLU(mid, mid2))
            final_up = up // 2
        else:
            mid2 = mid
            first = nn.Identity()
            final_up = up
        self.conv_out = nn.Sequential(first, nn.Conv2d(mid2, num_classes, 1, bias=True),
                                      Resize(final_up, "bilinear"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.drop(self.conv(x)))


def build(num_classes: int = 19, aux: bool = True,
          head_mid_channels: Optional[int] = None) -> BiSeNetV2Net:
    mid = 1024 if head_mid_channels is None else int(head_mid_channels)
    aux_heads: Optional[List[nn.Module]] = None
    if aux:
        aux_heads = [SegmentHead(16, 128, num_classes, 4, aux=True),
                     SegmentHead(32, 128, num_classes, 8, aux=True),
                     SegmentHead(64, 128, num_classes, 16, aux=True),
                     SegmentHead(128, 128, num_classes, 32, aux=True)]
    bga = layers.GuidedAggregation(128, proj_bias=False, up_mode="nearest", out_relu=True)
    model = BiSeNetV2Net("bisenetv2-coincheung", num_classes, DetailBranch(64, 64, 128),
                         semantic_branch(), bga,
                         SegmentHead(128, mid, num_classes, 8), aux_heads)
    init_weights(model)
    return model
