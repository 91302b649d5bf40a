"""Building blocks shared by every BiSeNet V2 variant, and the input check every forward runs.

The paper network (paper.py) and the community variant (coincheung.py) are the same blocks in two
configurations: where the GE layer expands (gather conv or depthwise conv), which convs carry a
ReLU, the context block's last conv, and the aggregation layer's upsampling mode and 1x1 biases.
Only the segmentation heads differ in structure and live in their own modules.

Submodule attribute names (`conv`, `bn`, `0`, `1`, ...) are chosen so that the community variant's
state_dict keys equal those of the public CoinCheung/BiSeNet checkpoints; the paper variant reuses
the same names so that tools (summary, MAC counting) address both the same way.
"""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from . import SIZE_MULTIPLE, nearest_sizes


def _skip_checks() -> bool:
    """Shape checks are for eager callers; while tracing/exporting they would bake guards in."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    if torch.onnx.is_in_onnx_export():
        return True
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling():
        return True
    return False


def check_input(x: torch.Tensor) -> None:
    """Raise InputError unless `x` is a float N x 3 x H x W tensor with H, W multiples of 32."""
    if _skip_checks():
        return
    if not isinstance(x, torch.Tensor):
        raise InputError(f"the model takes a torch.Tensor of shape N x 3 x H x W, got {type(x).__name__}")
    if x.dim() != 4:
        raise InputError(f"the model takes a 4-D tensor N x 3 x H x W, got shape {tuple(x.shape)}; "
                         f"add a batch dimension with x.unsqueeze(0) for a single image")
    if not x.is_floating_point():
        raise InputError(f"the model takes a floating-point tensor (normalized image), got dtype "
                         f"{x.dtype}; convert with x.float() and normalize with the dataset's mean/std")
    if x.shape[1] != 3:
        raise InputError(f"the model takes 3 colour channels (N x 3 x H x W), got {x.shape[1]} "
                         f"channels in shape {tuple(x.shape)}")
    height, width = int(x.shape[2]), int(x.shape[3])
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE or height == 0 or width == 0:
        raise InputError(f"input height and width must be multiples of {SIZE_MULTIPLE}, got "
                         f"{width}x{height} (WIDTHxHEIGHT); nearest accepted sizes: "
                         f"{nearest_sizes(width, height)} (resize or pad the image)")


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1,
            relu: bool = False) -> nn.Sequential:
    """conv (no bias) -> BN [-> ReLU] as a Sequential: keys `0.weight`, `1.*`."""
    layers: List[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ConvBNReLU(nn.Module):
    """conv (no bias) -> BN -> ReLU with named children (`conv`, `bn`), the paper's "Conv2d"."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Resize(nn.Module):
    """Upsample by an integer factor; bilinear uses align_corners=False (half-pixel centres)."""

    def __init__(self, factor: int, mode: str = "bilinear"):
        super().__init__()
        self.factor = int(factor)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            return x
        align: Optional[bool] = False if self.mode in ("bilinear", "bicubic") else None
        return F.interpolate(x, scale_factor=float(self.factor), mode=self.mode, align_corners=align)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, mode={self.mode}"


class DetailBranch(nn.Module):
    """Table 1's detail branch: three VGG-like stages of conv-BN-ReLU, output 1/8 resolution."""

    def __init__(self, c1: int = 64, c2: int = 64, c3: int = 128):
        super().__init__()
        self.S1 = nn.Sequential(ConvBNReLU(3, c1, 3, 2), ConvBNReLU(c1, c1))
        self.S2 = nn.Sequential(ConvBNReLU(c1, c2, 3, 2), ConvBNReLU(c2, c2), ConvBNReLU(c2, c2))
        self.S3 = nn.Sequential(ConvBNReLU(c2, c3, 3, 2), ConvBNReLU(c3, c3), ConvBNReLU(c3, c3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.S3(self.S2(self.S1(x)))


class StemBlock(nn.Module):
    """Fig. 4a: 3x3/2 conv, then a conv path (1x1 halve, 3x3/2) beside a 3x3/2 max pool, concat, 3x3 fuse."""

    def __init__(self, cout: int = 16):
        super().__init__()
        self.conv = ConvBNReLU(3, cout, 3, 2)
        self.left = nn.Sequential(ConvBNReLU(cout, cout // 2, 1), ConvBNReLU(cout // 2, cout, 3, 2))
        self.right = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.fuse = ConvBNReLU(2 * cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        return self.fuse(torch.cat([self.left(feat), self.right(feat)], dim=1))


class GELayerS1(nn.Module):
    """Stride-1 gather-and-expansion layer (Fig. 5b): 3x3 gather conv-BN-ReLU -> 3x3 depthwise
    (BN) -> 1x1 projection (BN), identity shortcut, ReLU.

    `expand_in_gather` puts the e-fold expansion where the paper has it, in the gather conv
    (C -> eC, the depthwise conv then works on eC channels); False is the community form, where the
    gather conv keeps C channels and the depthwise conv expands (C -> eC, groups=C).
    `dw_relu` adds a ReLU after the depthwise conv (community form; the paper draws none).
    """

    def __init__(self, cin: int, cout: int, expansion: int, *, expand_in_gather: bool,
                 dw_relu: bool):
        super().__init__()
        if cin != cout:
            raise ValueError(f"a stride-1 GE layer needs equal widths, got {cin}->{cout}")
        mid = cin * expansion
        gather = mid if expand_in_gather else cin
        self.conv1 = ConvBNReLU(cin, gather)
        self.dwconv = conv_bn(gather, mid, 3, 1, groups=gather, relu=dw_relu)
        self.conv2 = conv_bn(mid, cout, 1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.dwconv(self.conv1(x))) + x)


class GELayerS2(nn.Module):
    """Stride-2 gather-and-expansion layer (Fig. 5c): 3x3 gather conv-BN-ReLU -> 3x3/2 depthwise
    (BN) -> 3x3 depthwise (BN) -> 1x1 projection (BN); shortcut = 3x3/2 depthwise (BN) + 1x1 (BN)
    separable conv; sum, ReLU. `expand_in_gather` and `dw_relu` as in `GELayerS1` (the ReLU, if
    any, follows the second depthwise conv)."""

    def __init__(self, cin: int, cout: int, expansion: int, *, expand_in_gather: bool,
                 dw_relu: bool):
        super().__init__()
        mid = cin * expansion
        gather = mid if expand_in_gather else cin
        self.conv1 = ConvBNReLU(cin, gather)
        self.dwconv1 = conv_bn(gather, mid, 3, 2, groups=gather)
        self.dwconv2 = conv_bn(mid, mid, 3, 1, groups=mid, relu=dw_relu)
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
    3x3 conv. `last_bn_relu`: that last conv is conv-BN-ReLU (community form); otherwise a plain
    conv with a bias, as the paper draws it."""

    def __init__(self, channels: int, *, last_bn_relu: bool):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.conv_gap = ConvBNReLU(channels, channels, 1)
        self.conv_last: nn.Module = (ConvBNReLU(channels, channels, 3) if last_bn_relu else
                                     nn.Conv2d(channels, channels, 3, 1, 1, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.conv_gap(self.bn(torch.mean(x, dim=(2, 3), keepdim=True)))
        return self.conv_last(x + context)


class GuidedAggregation(nn.Module):
    """Fig. 6: the detail feature (1/8) and the semantic feature (1/32) guide each other through
    sigmoid gates at both resolutions, x4 upsampling, a 3x3 conv + BN fuses the sum.

    The two forms differ only in: `proj_bias` (bias on the 1x1 convs of `left1`/`right2`, which no
    BN follows), `up_mode` ("bilinear" in the paper, "nearest" in the community form) and
    `out_relu` (a ReLU after the final conv-BN, community form).
    """

    def __init__(self, channels: int, *, proj_bias: bool, up_mode: str, out_relu: bool):
        c = channels
        super().__init__()
        self.left1 = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False),
                                   nn.BatchNorm2d(c), nn.Conv2d(c, c, 1, bias=proj_bias))
        self.left2 = nn.Sequential(nn.Conv2d(c, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c),
                                   nn.AvgPool2d(3, 2, 1))
        self.right1 = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.right2 = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False),
                                    nn.BatchNorm2d(c), nn.Conv2d(c, c, 1, bias=proj_bias))
        self.up1 = Resize(4, up_mode)
        self.up2 = Resize(4, up_mode)
        self.conv = conv_bn(c, c, 3, relu=out_relu)

    def forward(self, detail: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        guided_detail = self.left1(detail) * torch.sigmoid(self.up1(self.right1(semantic)))
        guided_semantic = self.left2(detail) * torch.sigmoid(self.right2(semantic))
        return self.conv(guided_detail + self.up2(guided_semantic))


class SemanticBranch(nn.Module):
    """Table 1's semantics branch: stem (1/4), GE stages S3 (1/8), S4 (1/16), S5_4 (1/32), CE.

    Returns every stage output: (S1S2, S3, S4, S5_4, S5_5); the booster heads read the first four.
    """

    def __init__(self, stem: nn.Module, s3: nn.Module, s4: nn.Module, s5_4: nn.Module,
                 s5_5: nn.Module):
        super().__init__()
        self.S1S2 = stem
        self.S3 = s3
        self.S4 = s4
        self.S5_4 = s5_4
        self.S5_5 = s5_5

    def forward(self, x: torch.Tensor):
        feat2 = self.S1S2(x)
        feat3 = self.S3(feat2)
        feat4 = self.S4(feat3)
        feat5_4 = self.S5_4(feat4)
        return feat2, feat3, feat4, feat5_4, self.S5_5(feat5_4)


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


class BiSeNetV2Net(nn.Module):
    """The common skeleton: detail branch, semantic branch, aggregation, head, booster heads.

    Eval mode returns the main logits (N x classes x H x W). Train mode returns
    `(logits, aux_s1s2, aux_s3, aux_s4, aux_s5_4)` when the model was built with aux heads; the aux
    heads are never run in eval mode, so traced/exported graphs do not contain them.
    """

    AUX_NAMES = ("aux2", "aux3", "aux4", "aux5_4")

    def __init__(self, arch: str, num_classes: int, detail: nn.Module, segment: nn.Module,
                 bga: nn.Module, head: nn.Module, aux_heads: Optional[List[nn.Module]] = None):
        super().__init__()
        self.arch = arch
        self.num_classes = int(num_classes)
        self.alpha: float = 1.0  # width multiplier (paper variants; Table 5)
        self.depth: float = 1.0  # depth multiplier
        self.detail = detail
        self.segment = segment
        self.bga = bga
        self.head = head
        self.has_aux = aux_heads is not None
        if aux_heads is not None:
            for name, module in zip(self.AUX_NAMES, aux_heads):
                setattr(self, name, module)

    def forward(self, x: torch.Tensor):
        check_input(x)
        self._check_training_batch(x)
        feat_d = self.detail(x)
        feat2, feat3, feat4, feat5_4, feat_s = self.segment(x)
        logits = self.head(self.bga(feat_d, feat_s))
        if self.training and self.has_aux:
            heads = [getattr(self, name) for name in self.AUX_NAMES]
            return (logits,) + tuple(head(feat) for head, feat in
                                     zip(heads, (feat2, feat3, feat4, feat5_4)))
        return logits

    def _check_training_batch(self, x: torch.Tensor) -> None:
        """The context block batch-normalizes one pooled value per image: in training mode that
        needs two images or more (torch's own error would not say which layer or what to do)."""
        context_bn = getattr(getattr(self.segment, "S5_5", None), "bn", None)
        if (self.training and context_bn is not None and context_bn.training
                and not _skip_checks() and x.shape[0] < 2):
            raise InputError("training mode needs a batch of at least 2 images (the context "
                             "block's BatchNorm normalizes one pooled value per image); call "
                             "model.eval() for inference on single images")

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, num_classes={self.num_classes}, aux={self.has_aux}"
