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

from .layers import BiSeNetV2Net, ConvBNReLU, DetailBranch, Resize, StemBlock, conv_bn

EXPANSION = 6


class GELayerS1(nn.Module):
    """Stride-1 GE layer (community form): 3x3 conv, expanding depthwise 3x3 (+ReLU), 1x1, residual."""

    def __init__(self, cin: int, cout: int, expansion: int = EXPANSION):
        super().__init__()
        mid = cin * expansion
        self.conv1 = ConvBNReLU(cin, cin)
        self.dwconv = conv_bn(cin, mid, 3, 1, groups=cin, relu=True)
        self.conv2 = conv_bn(mid, cout, 1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.dwconv(self.conv1(x))) + x)


class GELayerS2(nn.Module):
    """Stride-2 GE layer (community form) with a separable 3x3/2 + 1x1 shortcut."""

    def __init__(self, cin: int, cout: int, expansion: int = EXPANSION):
        super().__init__()
        mid = cin * expansion
        self.conv1 = ConvBNReLU(cin, cin)
        self.dwconv1 = conv_bn(cin, mid, 3, 2, groups=cin)
        self.dwconv2 = conv_bn(mid, mid, 3, 1, groups=mid, relu=True)
        self.conv2 = conv_bn(mid, cout, 1)
        self.shortcut = nn.Sequential(
            nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False),
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv2(self.dwconv2(self.dwconv1(self.conv1(x))))
        return self.relu(feat + self.shortcut(x))


class ContextEmbedding(nn.Module):
    """Global mean -> BN -> 1x1 CBR, broadcast-added to the input, then a 3x3 CBR."""

    def __init__(self, channels: int = 128):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.conv_gap = ConvBNReLU(channels, channels, 1)
        self.conv_last = ConvBNReLU(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.conv_gap(self.bn(torch.mean(x, dim=(2, 3), keepdim=True)))
        return self.conv_last(x + context)


class SemanticBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.S1S2 = StemBlock(16)
        self.S3 = nn.Sequential(GELayerS2(16, 32), GELayerS1(32, 32))
        self.S4 = nn.Sequential(GELayerS2(32, 64), GELayerS1(64, 64))
        self.S5_4 = nn.Sequential(GELayerS2(64, 128), GELayerS1(128, 128), GELayerS1(128, 128),
                                  GELayerS1(128, 128))
        self.S5_5 = ContextEmbedding(128)

    def forward(self, x: torch.Tensor):
        feat2 = self.S1S2(x)
        feat3 = self.S3(feat2)
        feat4 = self.S4(feat3)
        feat5_4 = self.S5_4(feat4)
        return feat2, feat3, feat4, feat5_4, self.S5_5(feat5_4)


class GuidedAggregation(nn.Module):
    """BGA with nearest x4 upsampling and a final conv-BN-ReLU (the community form)."""

    def __init__(self, channels: int = 128):
        c = channels
        super().__init__()
        self.left1 = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False),
                                   nn.BatchNorm2d(c), nn.Conv2d(c, c, 1, bias=False))
        self.left2 = nn.Sequential(nn.Conv2d(c, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c),
                                   nn.AvgPool2d(3, 2, 1))
        self.right1 = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.right2 = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False),
                                    nn.BatchNorm2d(c), nn.Conv2d(c, c, 1, bias=False))
        self.up1 = Resize(4, "nearest")
        self.up2 = Resize(4, "nearest")
        self.conv = conv_bn(c, c, 3, relu=True)

    def forward(self, detail: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        guided_detail = self.left1(detail) * torch.sigmoid(self.up1(self.right1(semantic)))
        guided_semantic = self.left2(detail) * torch.sigmoid(self.right2(semantic))
        return self.conv(guided_detail + self.up2(guided_semantic))


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
    model = BiSeNetV2Net("bisenetv2-coincheung", num_classes, DetailBranch(64, 64, 128),
                         SemanticBranch(), GuidedAggregation(128),
                         SegmentHead(128, mid, num_classes, 8), aux_heads)
    init_weights(model)
    return model


def init_weights(model: nn.Module) -> None:
    """He (fan-out) init for convs, BN gamma 1 / beta 0: the paper trains from scratch this way."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
