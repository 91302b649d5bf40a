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

from . import layers
from .layers import BiSeNetV2Net, ConvBNReLU, DetailBranch, Resize, StemBlock, init_weights

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


def ge_stage(cin: int, rows: Sequence[Tuple[int, int, int]], alpha: float,
             depth: float) -> Tuple[nn.Sequential, int]:
    """One semantic stage from Table 1 rows; returns the stage and its output width."""
    stage: List[nn.Module] = []
    for channels, stride, repeats in rows:
        cout = scale_channels(channels, alpha)
        for i in range(scale_repeats(repeats, depth)):
            block = layers.GELayerS2 if stride == 2 and i == 0 else layers.GELayerS1
            stage.append(block(cin, cout, EXPANSION, expand_in_gather=True, dw_relu=False))
            cin = cout
    return nn.Sequential(*stage), cin


def semantic_branch(alpha: float = 1.0,
                    depth: float = 1.0) -> Tuple[layers.SemanticBranch, Tuple[int, ...]]:
    """Table 1's semantics branch and the widths of its S1S2, S3, S4, S5 outputs."""
    stem = scale_channels(16, alpha)
    s3, c3 = ge_stage(stem, GE_ROWS["S3"], alpha, depth)
    s4, c4 = ge_stage(c3, GE_ROWS["S4"], alpha, depth)
    s5_4, c5 = ge_stage(c4, GE_ROWS["S5_4"], alpha, depth)
    branch = layers.SemanticBranch(StemBlock(stem), s3, s4, s5_4,
                                   layers.ContextEmbedding(c5, last_bn_relu=False))
    return branch, (stem, c3, c4, c5)


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
    semantic, widths = semantic_branch(alpha, depth)
    c_detail = scale_channels(128, alpha)
    if widths[-1] != c_detail:
        raise ValueError("detail and semantic outputs must have the same width")
    mid = scale_channels(DEFAULT_HEAD_MID, alpha) if head_mid_channels is None else int(head_mid_channels)
    aux_heads: Optional[List[nn.Module]] = None
    if aux:
        aux_mid = scale_channels(AUX_HEAD_MID, alpha)
        aux_heads = [SegmentHead(c, aux_mid, num_classes, up)
                     for c, up in zip(widths, (4, 8, 16, 32))]
    bga = layers.GuidedAggregation(c_detail, proj_bias=True, up_mode="bilinear", out_relu=False)
    model = BiSeNetV2Net(arch, num_classes, detail, semantic, bga,
                         SegmentHead(c_detail, mid, num_classes, 8), aux_heads)
    model.alpha = float(alpha)
    model.depth = float(depth)
    init_weights(model)
    return model
