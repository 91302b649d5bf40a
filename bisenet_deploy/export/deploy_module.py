"""`DeployModule`: the PyTorch module that IS the exported graph.

camera image (N x 3 x H_in x W_in, float 0..255 or uint8, or an already-normalized float tensor)
  -> [Cast to float / to FP16]
  -> bilinear resize to the model size (align_corners=False, constant size; none if equal)
  -> [channel flip + mean/std normalization]
  -> BiSeNet V2 (eval mode: aux heads are never run, so they never reach the graph)
  -> bilinear resize of the logits back to the input size (none if equal)
  -> outputs in `output_names` order: labels = ArgMax + Cast(INT32) (N x H_in x W_in),
     logits = float32 (N x C x H_in x W_in)

Design notes (see also docs/export.md):

* Normalization. `(x / 255 - mean) / std` per channel = `(x - 255 mean) * 1 / (255 std)`. The
  multiplication by 1/(255 std) and the channel flip (a permutation of input channels) are folded
  *exactly* into the weights of the two convolutions that read the image (detail branch S1 and the
  semantic stem): zero padding is unaffected by scaling or permuting channels. The subtraction of
  the mean is NOT foldable exactly: with zero padding the folded bias correction would also be
  applied at the border taps, which in the original network see normalized zeros (= the mean in
  pixel space), so border outputs would change. It therefore stays as one Sub of a per-channel
  constant, right before the network (after the resize, on the 4x smaller tensor). Resize and a
  per-channel affine map commute (bilinear weights sum to 1), so doing it after the resize is
  exact too.
* Labels at the input size: the logits are resized bilinearly to the input size, then ArgMax.
  The cheaper "ArgMax at model size, then nearest upsample" is NOT equivalent (a bilinear blend of
  four neighbours can have a different winner than any of them), so it is not used.
* Resize parameters: with a static batch the resize sizes are constant (folded to an initializer
  after export); with a dynamic batch they cannot be (the batch is in the sizes tensor), so the
  module's own resizes use constant `scales` instead (TensorRT 8.2 needs scales to be
  initializers), chosen so that floor(in * scale) == out exactly.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ExportError, InputError
from ..metadata import ExportInfo, ModelMetadata

log = logging.getLogger(__name__)

OUTPUT_NAMES = ("labels", "logits")


def resize_scale(n_in: int, n_out: int) -> float:
    """A float32-representable scale s with floor(n_in * s) == n_out in float32 and float64."""
    s = np.float32(n_out / n_in)
    for _ in range(64):
        ok64 = math.floor(float(n_in) * float(s)) == n_out
        ok32 = int(np.floor(np.float32(n_in) * s)) == n_out
        if ok64 and ok32:
            return float(s)
        s = np.nextafter(s, np.float32(np.inf)) if (float(n_in) * float(s) < n_out) \
            else np.nextafter(s, np.float32(-np.inf))
    raise ExportError(f"no float32 resize scale maps {n_in} pixels to exactly {n_out}")


#: side of the probe image used to see which convolutions read the network input (a multiple of 32)
PROBE_SIDE = 64


def find_input_convs(model: nn.Module) -> List[Tuple[str, nn.Conv2d]]:
    """The convolutions that read the 3-channel image itself (BiSeNet V2: detail S1 and the stem).

    Folding the normalization into a convolution is exact only when it reads the network input
    unchanged, so the candidates (3 input channels, no groups) are confirmed by a small probe
    forward pass: a candidate that receives anything but the very input tensor is left alone.
    """
    candidates = [(name, m) for name, m in model.named_modules()
                  if isinstance(m, nn.Conv2d) and m.in_channels == 3 and m.groups == 1]
    if not candidates:
        return []
    weight = candidates[0][1].weight
    probe = torch.zeros(1, 3, PROBE_SIDE, PROBE_SIDE, dtype=weight.dtype, device=weight.device)
    reading = set()

    def make_hook(name: str):
        def hook(module: nn.Module, inputs: Tuple[Any, ...]) -> None:
            if inputs and inputs[0] is probe:
                reading.add(name)
        return hook

    handles = [m.register_forward_pre_hook(make_hook(name)) for name, m in candidates]
    training = model.training
    try:
        with torch.no_grad():
            model.eval()(probe)
    except Exception as exc:  # a network that cannot run the probe: keep normalization explicit
        log.warning("probe pass to find the image convolutions failed (%s: %s)",
                    type(exc).__name__, exc)
        return []
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    return [(name, m) for name, m in candidates if name in reading]


def _main_output(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


def fold_normalization_into(net: nn.Module, perm: Sequence[int], mean: torch.Tensor,
                       std: torch.Tensor) -> Optional[nn.Module]:
    """A copy of the eval-mode `net` that takes `pixels - 255 mean` (pixels in the graph's
    channel order `perm`) instead of `(pixels / 255 - mean) / std`, or None where that cannot be
    done exactly.

    The scale and the channel permutation go into the weights of the convolutions that read the
    image (see the module docstring). The result is proven on a random probe image against the
    plain network: a network that also uses the raw image elsewhere (which folding would change)
    keeps its normalization explicit instead.
    """
    convs = find_input_convs(net)
    if not convs:
        log.warning("no 3-channel convolution reads the image: normalization stays explicit")
        return None
    folded = copy.deepcopy(net)
    modules = dict(folded.named_modules())
    index = list(perm)
    scale = 1.0 / (255.0 * std)
    with torch.no_grad():
        # graph channel j feeds network channel perm[j] (perm is its own inverse)
        for name, _ in convs:
            conv = modules[name]
            conv.weight.copy_(conv.weight[:, index] * scale[index].view(1, 3, 1, 1))
        generator = torch.Generator().manual_seed(0)
        pixels = torch.rand(1, 3, PROBE_SIDE, PROBE_SIDE, generator=generator) * 255.0
        want = _main_output(net((pixels[:, index] / 255.0 - mean.view(1, 3, 1, 1))
                                / std.view(1, 3, 1, 1)))
        got = _main_output(folded(pixels - 255.0 * mean[index].view(1, 3, 1, 1)))
    error = float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))
    if not error <= 1e-4:
        log.warning("folding the normalization into %s would change the network's output "
                    "(relative error %.3g on a probe image): normalization stays explicit",
                    ", ".join(n for n, _ in convs), error)
        return None
    log.debug("normalization folded into %s (+ one Sub of the pixel mean)",
              ", ".join(n for n, _ in convs))
    return folded


class DeployModule(nn.Module):
    """The deploy graph as a torch module, built from the model and the metadata record.

    `record` is `metadata.build_record(model_metadata, export_info)` (a dict). With
    `fold_normalization=False` every preprocessing step is an explicit op on an unmodified copy of
    the network: that is the reference the parity check compares the exported graph against.
    `output_names` overrides the record's outputs (parity asks for both). `forward` always returns
    a tuple in output order.
    """

    pixel_mean: torch.Tensor
    perm: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, record: Dict[str, Any], *, fold_normalization: bool = True,
                 output_names: Optional[Sequence[str]] = None) -> None:
        super().__init__()
        self.info = ExportInfo.from_dict(record["export"])
        self.meta = ModelMetadata.from_dict(record["model"])
        info, meta = self.info, self.meta
        names = tuple(output_names if output_names is not None else info.output_names)
        if not names or any(n not in OUTPUT_NAMES for n in names) or len(set(names)) != len(names):
            raise InputError(f"output names must be a non-empty subset of {OUTPUT_NAMES}, got {names}")
        self.output_names = names
        self.in_w, self.in_h = (int(v) for v in info.input_size)
        self.model_w, self.model_h = (int(v) for v in info.model_size)
        self.uint8_input = info.input_dtype == "uint8"
        self.fp16 = info.precision == "fp16" and _graph_is_fp16(info)
        self.normalize = info.normalize == "in-graph"
        self.dynamic_batch = bool(info.batch.get("dynamic", False))
        self.num_classes = meta.num_classes

        net = copy.deepcopy(model).eval()
        for p in net.parameters():
            p.requires_grad_(False)

        # channel permutation from the graph input order to the network's order
        flip = self.normalize and info.channel_order != meta.channel_order
        perm = [2, 1, 0] if flip else [0, 1, 2]
        mean = torch.tensor(meta.mean, dtype=torch.float32)
        std = torch.tensor(meta.std, dtype=torch.float32)
        self.folded = False
        if self.normalize and fold_normalization:
            folded = fold_normalization_into(net, perm, mean, std)
            if folded is not None:
                net = folded
                self.register_buffer("pixel_mean", (255.0 * mean[perm]).view(1, 3, 1, 1))
                self.folded = True
        if self.normalize and not self.folded:
            self.register_buffer("perm", torch.tensor(perm, dtype=torch.long))
            self.register_buffer("mean", mean.view(1, 3, 1, 1))
            self.register_buffer("std", std.view(1, 3, 1, 1))
        self.flip = flip
        self.net = net.half() if self.fp16 else net
        if self.fp16:
            for name, buf in list(self.named_buffers(recurse=False)):
                if buf.is_floating_point():
                    setattr(self, name, buf.half())

    def _compute_dtype(self) -> torch.dtype:
        for param in self.net.parameters():
            return param.dtype
        return torch.float16 if self.fp16 else torch.float32

    def _resize(self, x: torch.Tensor, source: Tuple[int, int], target: Tuple[int, int]
                ) -> torch.Tensor:
        """Bilinear resize from `source` to `target` (height, width), both known statically.

        The sizes come from the record, never from `x.shape`: reading a shape while the
        TorchScript exporter traces turns it into a tensor (TracerWarning, a value baked in).
        """
        if source == target:
            return x
        if self.dynamic_batch:
            scales = (resize_scale(source[0], target[0]), resize_scale(source[1], target[1]))
            return F.interpolate(x, scale_factor=scales, mode="bilinear", align_corners=False,
                                 recompute_scale_factor=False)
        return F.interpolate(x, size=target, mode="bilinear", align_corners=False)

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = image
        # compute in the network's dtype: FP16 for an FP16 graph, or after `.half()` (torch runner)
        dtype = self._compute_dtype()
        if x.dtype != dtype:
            x = x.to(dtype)
        # the input is at the record's input size; the network returns logits at its own input
        # size (the model size), as every BiSeNet V2 head does
        x = self._resize(x, (self.in_h, self.in_w), (self.model_h, self.model_w))
        if self.normalize:
            if self.folded:
                x = x - self.pixel_mean
            else:
                if self.flip:
                    x = x[:, self.perm]
                x = (x / 255.0 - self.mean) / self.std
        logits = self.net(x)
        if isinstance(logits, (tuple, list)):  # a train-mode model: keep the main head only
            logits = logits[0]
        logits = self._resize(logits, (self.model_h, self.model_w), (self.in_h, self.in_w))
        outputs = []
        for name in self.output_names:
            if name == "labels":
                outputs.append(torch.argmax(logits, dim=1).to(torch.int32))
            else:
                outputs.append(logits.to(torch.float32))
        return tuple(outputs)


def _graph_is_fp16(info: ExportInfo) -> bool:
    from .targets import get_target

    return get_target(info.target).graph_precision(info.precision) == "fp16"
