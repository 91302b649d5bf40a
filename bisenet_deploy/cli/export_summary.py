"""`bisenet-export summary`: per-stage output shapes, parameters and multiply-accumulates of a
network beside the paper's Table 1 (or, with --json, the same as one JSON object on stdout)."""

from __future__ import annotations

import logging

from ..text_table import format_table
from .common import (add_logging_args, add_model_args, check_report_path, emit_json,
                     write_json_report)
from .options import JSON_STDOUT, add_json, add_network_size

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser(
        "summary", help="per-stage shapes, parameters and MACs beside the paper's Table 1",
        description="Count parameters and multiply-accumulates (conv and linear layers; what the "
                    "paper's 'FLOPs' column counts) per stage of BiSeNet V2 at a network input "
                    "size, and print them beside Table 1 of the paper. Weights do not change the "
                    "figures; --checkpoint only selects the architecture, class count and head "
                    "width (a CoinCheung .pth needs no --arch).")
    add_model_args(p)
    add_network_size(p, "network input size, WIDTHxHEIGHT, multiples of 32 (default: 1024x512, "
                        "the size Table 1 is given at)", alias=("--model-size",),
                     default=(1024, 512))
    add_json(p, "the summary as one JSON object (params, total_macs, stages, ...)")
    add_logging_args(p)
    p.set_defaults(func=_run)


def _load(args):
    from ..model import DEFAULT_ARCH, build_model

    if args.checkpoint:
        from ..checkpoint import load_model

        loaded = load_model(args.checkpoint, arch=args.arch, dataset=args.dataset,
                            num_classes=args.num_classes)
        return loaded.model
    num_classes = args.num_classes
    if num_classes is None and args.dataset:
        from ..datasets import get_dataset

        num_classes = get_dataset(args.dataset).num_classes
    import torch

    arch = args.arch or DEFAULT_ARCH
    with torch.device("meta"):  # shapes only: no memory or time spent on random weights
        model = build_model(arch, num_classes or 19, aux=True)
    log.info("no checkpoint: summarizing the %s architecture (weights do not change shapes, "
             "parameters or MACs)", arch)
    return model


def _fmt_macs(value) -> str:
    if value is None:
        return "-"
    if value >= 1e9:
        return f"{value / 1e9:.2f}G"
    return f"{value / 1e6:.1f}M"


def _fmt_diff(ours, paper) -> str:
    if not paper:
        return "-"
    return f"{100.0 * (ours - paper) / paper:+.1f}%"


def render_table(result) -> str:
    width, height = result["model_size"]
    rows = []
    for stage, info in result["stages"].items():
        shape = "x".join(str(v) for v in info["output_shape"]) if info["output_shape"] else "-"
        rows.append([stage, shape, f"{info['params']:,}", _fmt_macs(info["macs"]),
                     _fmt_macs(info["paper_macs"]), _fmt_diff(info["macs"], info["paper_macs"])])
    if result.get("other_macs"):
        rows.append(["(other)", "-", "-", _fmt_macs(result["other_macs"]), "-", "-"])
    rows.append(["total", "-", f"{result['params']:,}", _fmt_macs(result["total_macs"]),
                 _fmt_macs(result.get("paper_total_macs")),
                 _fmt_diff(result["total_macs"], result.get("paper_total_macs"))])
    scaled = "" if (width, height) == (1024, 512) else " (paper figures scaled by pixel count)"
    lines = [
        f"{result['arch']}  {result['num_classes']} classes  network input {width}x{height}",
        (f"parameters: {result['params']:,} for inference, {result['params_with_aux']:,} with "
         f"the booster (aux) heads"),
        "",
        format_table(rows, ["stage", "output NxCxHxW", "params", "MACs", "paper", "diff"]),
        "",
        ("MACs: multiply-accumulates of conv/linear layers (the paper's 'FLOPs'); paper: Table 1 "
         f"per stage, Tables 2/5/6 for the total{scaled}."),
    ]
    return "\n".join(lines)


def _run(args) -> int:
    from ..model.summary import check_model_size, summarize

    width, height = args.network_size
    check_report_path(args.json, "--json")
    check_model_size(width, height)
    model = _load(args)
    result = summarize(model, width, height)
    if args.json == JSON_STDOUT:
        emit_json(result)
    elif args.json:
        write_json_report(args.json, result)
        print(render_table(result))
    else:
        print(render_table(result))
    return 0
