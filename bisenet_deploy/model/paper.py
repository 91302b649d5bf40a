"""`bisenetv2` and `bisenetv2-large`: BiSeNet V2 as the paper draws it (Table 1, Figs 3-7).

Every choice the paper leaves open is listed in docs/architecture.md. In short: every "Conv" box
of Figs 4-7 drawn with BN (and ReLU) gets exactly those; convs drawn without BN carry a bias; the
GE layer's 3x3 gather conv expands the width by e=6 and the depthwise convs run on the expanded
width; the aggregation layer upsamples bilinearly (align_corners=False); the main head's mid
width C_t defaults to 384 x alpha (it reproduces the paper's 21.15 GFLOPs total); the booster
heads are Fig. 7 heads with C_t=128 x alpha after S1S2, S3, S4 and S5_4 (Table 4, row 2).

The width multiplier `alpha` scales every channel count (detail, semantic, aggregation, heads).
The depth multiplier `depth` scales the repeat count r of every GE row of Table 1
(round(r * d) layers per row; extra layers of a stride-2 row are stride-1 GE layers). This reading
reproduces Table 5b's GFLOPs within 1% (see docs/architecture.md).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from .coincheung import init_weights
from .layers import BiSeNetV2Net, ConvBNReLU, DetailBranch, Resize, StemBlock, conv_bn

EXPANSION = 6
#: default mid width C_t of the main segmentation head (Fig. 7) at alpha = 1
DEFAULT_HEAD_MID = 384
#: mid width of the booster heads at alpha = 1
AUX_HEAD_MID = 128

#: Table 1's semantic GE rows per stage: (output channels at alpha=1, stride, repeats r)
GE_ROWS = {
    "S3": ((32, 2, 1), (32, 1, 1)),
    "S4": ((64, 2, 1), (64, 1, 1)),
    "S5_4": ((128, 2, 1), (128, 1, 3)),
}


def scale_channels(channels: int, alpha: float) -> int:
    return max(1, int(round(channels * alpha)))


def scale_repeats(repeats: int, depth: float) -> int:
    return max(1, int(round(repeats * depth)))


class GELayerS1(nn.Module):
    """Fig. 5b: 3x3 gather conv expanding to e*C (BN, ReLU) -> 3x3 depthwise (BN) -> 1x1 (BN),
    identity shortcut, ReLU."""

    def __init__(self, channels: int, expansion: int = EXPANSION):
        super().__init__()
        mid = channels * expansion
        self.conv1 = ConvBNReLU(channels, mid)
        self.dwconv = conv_bn(mid, mid, 3, 1, groups=mid)
        self.conv2 = conv_bn(mid, channels, 1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.dwconv(self.conv1(x))) + x)


class GELayerS2(nn.Module):
    """Fig. 5c: gather conv expanding to e*C_in -> 3x3/2 depthwise (BN) -> 3x3 depthwise (BN) ->
    1x1 (BN); shortcut = 3x3/2 depthwise (BN) + 1x1 (BN) separable conv; sum, ReLU."""

    def __init__(self, cin: int, cout: int, expansion: int = EXPANSION):
        super().__init__()
        mid = cin * expansion
        self.conv1 = ConvBNReLU(cin, mid)
        self.dwconv1 = conv_bn(mid, mid, 3, 2, groups=mid)
        self.dwconv2 = conv_bn(mid, mid, 3, 1, groups=mid)
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
    """Fig. 4b: global average pool -> BN -> 1x1 conv-BN-ReLU -> broadcast sum with the input ->
    3x3 conv (drawn without BN/ReLU, so it has a bias)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.conv_gap = ConvBNReLU(channels, channels, 1)
        self.conv_last = nn.Conv2d(channels, channels, 3, 1, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.conv_gap(self.bn(torch.mean(x, dim=(2, 3), keepdim=True)))
        return self.conv_last(x + context)


def ge_stage(cin: int, rows: Sequence[Tuple[int, int, int]], alpha: float,
             depth: float) -> Tuple[nn.Sequential, int]:
    """One semantic stage from Table 1 rows; returns the stage and its output width."""
    layers: List[nn.Module] = []
    for channels, stride, repeats in rows:
        cout = scale_channels(channels, alpha)
        for i in range(scale_repeats(repeats, depth)):
            if stride == 2 and i == 0:
                layers.append(GELayerS2(cin, cout))
            else:
                if cin != cout:
                    raise ValueError(f"stride-1 GE layer needs equal widths, got {cin}->{cout}")
                layers.append(GELayerS1(cout))
            cin = cout
    return nn.Sequential(*layers), cin


class SemanticBranch(nn.Module):
    """Table 1's semantics branch: stem (1/4), GE stages S3 (1/8), S4 (1/16), S5 (1/32), CE."""

    def __init__(self, alpha: float = 1.0, depth: float = 1.0):
        super().__init__()
        stem = scale_channels(16, alpha)
        self.S1S2 = StemBlock(stem)
        self.S3, c3 = ge_stage(stem, GE_ROWS["S3"], alpha, depth)
        self.S4, c4 = ge_stage(c3, GE_ROWS["S4"], alpha, depth)
        self.S5_4, c5 = ge_stage(c4, GE_ROWS["S5_4"], alpha, depth)
        self.S5_5 = ContextEmbedding(c5)
        self.out_channels = (stem, c3, c4, c5)

    def forward(self, x: torch.Tensor):
        feat2 = self.S1S2(x)
        feat3 = self.S3(feat2)
        feat4 = self.S4(feat3)
        feat5_4 = self.S5_4(feat4)
        return feat2, feat3, feat4, feat5_4, self.S5_5(feat5_4)


class GuidedAggregation(nn.Module):
    """Fig. 6: the detail feature (1/8) and the semantic feature (1/32) guide each other through
    sigmoid gates at both resolutions; bilinear x4 upsampling; 3x3 conv + BN fuses the sum."""

    def __init__(self, channels: int):
        c = channels
        super().__init__()
        self.left1 = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False),
                                   nn.BatchNorm2d(c), nn.Conv2d(c, c, 1, bias=True))
        self.left2 = nn.Sequential(nn.Conv2d(c, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c),
                                   nn.AvgPool2d(3, 2, 1))
        self.right1 = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.right2 = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False),
                                    nn.BatchNorm2d(c), nn.Conv2d(c, c, 1, bias=True))
        self.up1 = Resize(4, "bilinear")
        self.up2 = Resize(4, "bilinear")
        self.conv = conv_bn(c, c, 3)

    def forward(self, detail: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        guided_detail = self.left1(detail) * torch.sigmoid(self.up1(self.right1(semantic)))
        guided_semantic = self.left2(detail) * torch.sigmoid(self.right2(semantic))
        return self.conv(guided_detail + self.up2(guided_semantic))


class SegmentHead(nn.Module):
    """Fig. 7: 3x3 conv-BN-ReLU to C_t channels -> 1x1 conv to N classes -> bilinear x S."""

    def __init__(self, cin: int, mid: int, num_classes: int, up: int):
        super().__init__()
        self.conv = ConvBNReLU(cin, mid)
        self.conv_out = nn.Sequential(nn.Conv2d(mid, num_classes, 1, bias=True),
                                      Resize(up, "bilinear"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


def build(num_classes: int = 19, aux: bool = True, head_mid_channels: Optional[int] = None,
          alpha: float = 1.0, depth: float = 1.0, arch: str = "bisenetv2") -> BiSeNetV2Net:
    """The paper's network; alpha/depth are the width/depth multipliers of Table 5."""
    if alpha <= 0 or depth <= 0:
        raise ValueError("alpha and depth must be positive")
    detail = DetailBranch(scale_channels(64, alpha), scale_channels(64, alpha),
                          scale_channels(128, alpha))
    semantic = SemanticBranch(alpha, depth)
    c_detail = scale_channels(128, alpha)
    if semantic.out_channels[-1] != c_detail:
        raise ValueError("detail and semantic outputs must have the same width")
    mid = scale_channels(DEFAULT_HEAD_MID, alpha) if head_mid_channels is None else int(head_mid_channels)
    aux_heads: Optional[List[nn.Module]] = None
    if aux:
        aux_mid = scale_channels(AUX_HEAD_MID, alpha)
        aux_heads = [SegmentHead(c, aux_mid, num_classes, up)
                     for c, up in zip(semantic.out_channels, (4, 8, 16, 32))]
    model = BiSeNetV2Net(arch, num_classes, detail, semantic, GuidedAggregation(c_detail),
                         SegmentHead(c_detail, mid, num_classes, 8), aux_heads)
    model.alpha = float(alpha)
    model.depth = float(depth)
    init_weights(model)
    return model
