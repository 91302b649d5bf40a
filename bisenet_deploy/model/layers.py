"""Building blocks shared by every BiSeNet V2 variant, and the input check every forward runs.

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
from . import SIZE_MULTIPLE


def _nearest_multiples(value: int, multiple: int = SIZE_MULTIPLE) -> List[int]:
    lower = (value // multiple) * multiple
    upper = lower + multiple
    return [v for v in (lower, upper) if v > 0]


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
        widths = _nearest_multiples(width)
        heights = _nearest_multiples(height)
        options = ", ".join(f"{w}x{h}" for w in widths for h in heights)
        raise InputError(f"input height and width must be multiples of {SIZE_MULTIPLE}, got "
                         f"{width}x{height} (WIDTHxHEIGHT); nearest accepted sizes: {options} "
                         f"(resize or pad the image)")


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
        feat_d = self.detail(x)
        feat2, feat3, feat4, feat5_4, feat_s = self.segment(x)
        logits = self.head(self.bga(feat_d, feat_s))
        if self.training and self.has_aux:
            heads = [getattr(self, name) for name in self.AUX_NAMES]
            return (logits,) + tuple(head(feat) for head, feat in
                                     zip(heads, (feat2, feat3, feat4, feat5_4)))
        return logits

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, num_classes={self.num_classes}, aux={self.has_aux}"
