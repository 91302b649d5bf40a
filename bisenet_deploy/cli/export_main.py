"""`bisenet-export`: the toolkit's main command, with one subcommand per job.

    bisenet-export onnx      checkpoint -> simplified, checked, parity-proven ONNX for a TensorRT target
    bisenet-export check     check an existing ONNX file against a target's rules
    bisenet-export summary   per-stage shapes, parameters and MACs beside the paper's Table 1
    bisenet-export checkpoint  convert a checkpoint (CoinCheung .pth) to our self-describing .safetensors
    bisenet-export jetson    a self-contained bundle for a Jetson TX2 on JetPack 4.6
    bisenet-export triton    a model repository for a Triton Inference Server

Each subcommand lives in its own module with `register(subparsers)`; this file only assembles them.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from . import (export_check, export_checkpoint, export_jetson, export_onnx, export_summary,
               export_triton)
from .common import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bisenet-export",
        description="Export BiSeNet V2 to ONNX for a TensorRT target, check graphs, summarize "
                    "models, build Jetson bundles and Triton model repositories.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in (export_onnx, export_check, export_summary, export_checkpoint, export_jetson,
                   export_triton):
        module.register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
