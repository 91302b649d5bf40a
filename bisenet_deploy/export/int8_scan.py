"""The INT8 sensitivity scan: quantize one block at a time and rank the blocks by the label
disagreement each one causes alone, so `--keep-float` can keep the few that hurt in float.

One calibration serves every block: the fully quantized graph is calibrated once, and each
block's variant keeps the Q/DQ pairs on the inputs of that block's Conv layers only (every other
Conv reads its float input and its original float weights). The ranking therefore uses exactly
the scales the exported graph carries.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Sequence

import numpy as np

from .quantize import block_of, conv_layers
from .graph_surgery import dequantized_source, prune_dead_nodes

log = logging.getLogger(__name__)

#: the scan suggests keeping in float the worst blocks that together cause at least this share
#: of the summed single-block disagreement, at most SUGGEST_MAX of them
SUGGEST_SHARE = 0.5
SUGGEST_MAX = 3


def keep_only(qdq_model: Any, fp32_model: Any, quantized_convs: Sequence[str]) -> Any:
    """A copy of `qdq_model` where only the Conv nodes in `quantized_convs` keep their Q/DQ
    inputs: every other node reads the float tensor (its DequantizeLinear bypassed) and the
    other Convs get their float weights back from `fp32_model`."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(qdq_model)
    graph = model.graph
    keep = set(quantized_convs)
    producers = {o: n for n in graph.node for o in n.output}
    float_inits = {i.name: i for i in fp32_model.graph.initializer}
    have = {i.name for i in graph.initializer}
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or node.name in keep:
            continue
        for k, name in enumerate(node.input):
            source = dequantized_source(name, producers)
            if source is None:
                continue
            kind, src = source
            if kind == "activation":
                node.input[k] = src                 # the float tensor
            elif src in float_inits:                # the FP32 graph's weight initializer
                if src not in have:
                    graph.initializer.append(float_inits[src])
                    have.add(src)
                node.input[k] = src
    prune_dead_nodes(model)
    return model


def scan(fp32_model: Any, qdq_model: Any, record: Dict[str, Any], images: Sequence[np.ndarray],
         reference: Sequence[np.ndarray]) -> List[Dict[str, Any]]:
    """Rows {block, layers, disagreement_percent, worst_image_percent}, worst block first.
    `reference`: the FP32 graph's labels of `images` (held-out images)."""
    from .int8_gate import agreement, run_labels, session

    layers = conv_layers(qdq_model)
    blocks: Dict[str, List[str]] = {}
    for node, path in layers.items():
        blocks.setdefault(block_of(path), []).append(node)
    rows = []
    for block, nodes in blocks.items():
        variant = keep_only(qdq_model, fp32_model, nodes)
        result = agreement(reference, run_labels(session(variant), images, record), "")
        rows.append({"block": block, "layers": len(nodes),
                     "disagreement_percent": round(100.0 - result.mean, 4),
                     "worst_image_percent": round(100.0 - result.worst, 4)})
        log.info("INT8 scan: %s alone -> %.3f%% of pixels change label", block,
                 100.0 - result.mean)
    rows.sort(key=lambda r: (-r["disagreement_percent"], r["block"]))
    return rows


def suggest(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """The blocks to try with --keep-float: the worst ones, covering SUGGEST_SHARE of the
    summed disagreement (none when no block changes any label)."""
    total = sum(r["disagreement_percent"] for r in rows)
    chosen: List[str] = []
    covered = 0.0
    for row in rows:
        if total <= 0 or covered >= SUGGEST_SHARE * total or len(chosen) >= SUGGEST_MAX:
            break
        chosen.append(row["block"])
        covered += row["disagreement_percent"]
    return chosen


def format_scan(rows: Sequence[Dict[str, Any]]) -> str:
    from ..text_table import format_table

    table = [[str(i + 1), r["block"], str(r["layers"]), f"{r['disagreement_percent']:.3f}",
              f"{r['worst_image_percent']:.3f}"] for i, r in enumerate(rows)]
    text = format_table(table, ["rank", "block quantized alone", "convs", "pixels changed %",
                                "worst image %"])
    keep = suggest(rows)
    hint = ("suggested: --keep-float " + " ".join(keep)) if keep else \
        "no single block changes any label"
    return text + "\n" + hint
