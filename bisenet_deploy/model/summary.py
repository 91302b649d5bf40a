"""Per-stage summary of a network beside the paper's Table 1: output shapes, parameters, MACs.

`summarize(model, width, height)` is what `bisenet-export summary` prints. Parameters are those
of the inference network (the booster heads are discarded at inference and never counted), MACs
are counted as `complexity.py` explains.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Optional

from ..errors import InputError
from .complexity import PAPER_MACS_1024x512, PAPER_TOTAL_GMACS, STAGES, count_macs, paper_macs
from . import SIZE_MULTIPLE, nearest_sizes

#: architectures whose stages Table 1 describes (the community variant keeps Table 1's layout,
#: so its deviations from the paper show up stage by stage)
_TABLE1_ARCHS = ("bisenetv2", "bisenetv2-coincheung", "bisenetv2-mmseg")


def check_model_size(width: int, height: int) -> None:
    """InputError unless both are positive multiples of 32, naming the nearest accepted sizes."""
    if width > 0 and height > 0 and width % SIZE_MULTIPLE == 0 and height % SIZE_MULTIPLE == 0:
        return
    raise InputError(f"model size {width}x{height} (WIDTHxHEIGHT): width and height must be "
                     f"multiples of {SIZE_MULTIPLE}; nearest accepted: "
                     f"{nearest_sizes(width, height)}")


def _arch_of(model) -> Optional[str]:
    arch = getattr(model, "arch", None)
    if arch == "bisenetv2" and (getattr(model, "alpha", 1.0) != 1.0 or getattr(model, "depth", 1.0) != 1.0):
        return None  # a custom-scaled paper network: Table 1 does not describe it
    return arch


def paper_total_macs(arch: Optional[str], width: int, height: int) -> Optional[float]:
    """The paper's whole-network figure (given for a 1024x512 network input), scaled by pixels."""
    gmacs = PAPER_TOTAL_GMACS.get(arch or "")
    if gmacs is None:
        return None
    return gmacs * 1e9 * (width * height) / (1024.0 * 512.0)


def summarize(model, width: int, height: int) -> Dict[str, Any]:
    """{"params", "total_macs", "stages": {stage: {"macs", "output_shape", "params", "paper_macs"}}}.

    Also "arch", "model_size" [W, H], "num_classes", "params_with_aux", "other_macs" (outside the
    named stages) and "paper_total_macs". paper_macs is Table 1's figure scaled by pixel count
    from 1024x512 (exact for these all-convolutional stages), None where the paper gives none.
    """
    width, height = int(width), int(height)
    check_model_size(width, height)
    counts = count_macs(model, width, height)
    arch = _arch_of(model)
    with_table1 = arch in _TABLE1_ARCHS
    stages: "OrderedDict[str, Dict[str, Any]]" = OrderedDict()
    for stage in STAGES:
        info = counts["stages"][stage]
        stages[stage] = {
            "macs": int(info["macs"]),
            "output_shape": info["output_shape"],
            "params": int(info["params"]),
            "paper_macs": paper_macs(stage, width, height) if with_table1 else None,
        }
    named = dict(model.named_parameters())
    params = sum(p.numel() for n, p in named.items() if not n.startswith("aux"))
    paper_total = paper_total_macs(arch, width, height)
    return {
        "arch": getattr(model, "arch", None),
        "model_size": [width, height],
        "num_classes": getattr(model, "num_classes", None),
        "params": int(params),
        "params_with_aux": int(sum(p.numel() for p in named.values())),
        "total_macs": int(counts["total_macs"]),
        "other_macs": int(counts["other_macs"]),
        "paper_total_macs": paper_total,
        "stages": stages,
    }


__all__ = ["PAPER_MACS_1024x512", "check_model_size", "paper_total_macs", "summarize"]
