"""Multiply-accumulate (MAC) counts and output shapes per stage of Table 1, via forward hooks.

What is counted: every nn.Conv2d (output elements x input channels per group x kernel area) and
nn.Linear (output elements x input features) that runs in an inference-mode forward. Not counted:
bias additions, BatchNorm (folded into the conv at deployment), activations, pooling, resizes,
sigmoid gates and elementwise sums/products - a few percent of the work at most, and the paper's
"FLOPs" (which are MACs, e.g. 5.1G for detail S1 = 3x3 convs 3->64/2 and 64->64 at 512x256)
leave them out too. The aux heads never run in inference mode, so they count nothing.

The forward runs on a copy of the model on PyTorch's "meta" device: shapes only, no arithmetic,
so counting at 2048x1024 is instant and needs no memory for activations.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

log = logging.getLogger(__name__)

#: stage name -> the model submodules it consists of (the last one's output is the stage output)
STAGES: "OrderedDict[str, Tuple[str, ...]]" = OrderedDict([
    ("detail.S1", ("detail.S1",)),
    ("detail.S2", ("detail.S2",)),
    ("detail.S3", ("detail.S3",)),
    ("semantic.S1S2", ("segment.S1S2",)),
    ("semantic.S3", ("segment.S3",)),
    ("semantic.S4", ("segment.S4",)),
    ("semantic.S5", ("segment.S5_4", "segment.S5_5")),
    ("aggregation", ("bga",)),
    ("head", ("head",)),
])

#: Table 1 of the paper ("FLOPs" = multiply-accumulates) for the 1024x512 input it is given at
PAPER_MACS_1024x512: Dict[str, Optional[float]] = {
    "detail.S1": 5.1e9,
    "detail.S2": 3.6e9,
    "detail.S3": 3.0e9,
    "semantic.S1S2": 145.2e6,
    "semantic.S3": 1.0e9,
    "semantic.S4": 1.0e9,
    "semantic.S5": 2.1e9,
    "aggregation": None,
    "head": None,
}

#: whole-network GFLOPs the paper gives for a 2048x1024 image resized to 1024x512, per
#: architecture (Tables 2, 5, 6; Table 5 also gives 85.94 for alpha = 2 alone, 29.38 for d = 3)
PAPER_TOTAL_GMACS: Dict[str, float] = {
    "bisenetv2": 21.15,
    "bisenetv2-large": 118.51,
}


def paper_macs(stage: str, width: int, height: int) -> Optional[float]:
    """Table 1's figure for `stage`, scaled by pixel count from 1024x512 (None where none given)."""
    value = PAPER_MACS_1024x512.get(stage)
    if value is None:
        return None
    return value * (width * height) / (1024.0 * 512.0)


def _layer_macs(module, output) -> int:
    import torch.nn as nn
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return int(output.numel()) * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return int(output.numel()) * module.in_features
    return 0


def _stage_of(name: str) -> Optional[str]:
    for stage, prefixes in STAGES.items():
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                return stage
    return None


def count_macs(model, width: int, height: int, batch: int = 1) -> Dict[str, Any]:
    """Per-stage MACs, parameters and output shapes of `model` (left unchanged) for one forward.

    Returns {"total_macs": int, "other_macs": int (outside the named stages), "params": int,
    "stages": {stage: {"macs", "params", "output_shape"}}}. Output shapes are [N, C, H, W].
    """
    import torch
    import torch.nn as nn

    try:
        work = copy.deepcopy(model).to("meta")
        device = "meta"
    except Exception as exc:  # pragma: no cover - meta tensors unsupported by an exotic module
        log.debug("meta-device copy failed (%s); counting with a real forward", exc)
        work, device = copy.deepcopy(model), "cpu"
    work.eval()

    stages: Dict[str, Dict[str, Any]] = OrderedDict(
        (s, {"macs": 0, "params": 0, "output_shape": None}) for s in STAGES)
    totals = {"all": 0, "other": 0}
    handles: List[Any] = []
    modules = dict(work.named_modules())

    for name, module in modules.items():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            stage = _stage_of(name)

            def hook(mod, inputs, output, stage=stage):
                macs = _layer_macs(mod, output)
                totals["all"] += macs
                if stage is None:
                    totals["other"] += macs
                else:
                    stages[stage]["macs"] += macs
            handles.append(module.register_forward_hook(hook))

    for stage, prefixes in STAGES.items():
        stages[stage]["params"] = sum(
            p.numel() for prefix in prefixes if prefix in modules
            for p in modules[prefix].parameters())
        last = prefixes[-1]
        if last in modules:
            def shape_hook(mod, inputs, output, stage=stage):
                stages[stage]["output_shape"] = [int(v) for v in output.shape]
            handles.append(modules[last].register_forward_hook(shape_hook))

    try:
        x = torch.zeros(batch, 3, height, width, device=device)
        with torch.no_grad():
            work(x)
    finally:
        for handle in handles:
            handle.remove()

    params = sum(p.numel() for p in model.parameters())
    return {"total_macs": totals["all"], "other_macs": totals["other"], "params": params,
            "stages": stages}
