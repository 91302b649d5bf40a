"""`bisenet-export jetson`: a self-contained bundle that builds, checks and runs the model on a TX2.

    bisenet-export jetson --checkpoint C [--input-size WxH] [--model-size WxH] [--fp16|--fp32]
                          -o DIR [--tar] [--force]

Exports the ONNX for TensorRT 8.2 (JetPack 4.6), proves it against PyTorch, and writes DIR with the
portable runtime, setup/build/bench scripts, the demo and a README (see bisenet_deploy.jetson.bundle).
"""

from __future__ import annotations

import argparse
import os

from .common import add_logging_args, add_model_args
from .options import (add_graph_outputs, add_input_size, add_network_size, add_no_progress,
                      add_onnx, add_output, add_precision)


def register(sub) -> None:
    p = sub.add_parser(
        "jetson", help="a self-contained bundle for a Jetson TX2 on JetPack 4.6",
        description="Export the model for TensorRT 8.2 (--target trt8.2) and write a bundle that "
                    "sets up a Jetson TX2 (JetPack 4.6: Python 3.6, TensorRT 8.2, pycuda 2022.1), "
                    "builds the engine there (FP16 by default), checks its labels against this "
                    "machine's, benchmarks it like bisenet-bench and runs a camera demo.")
    add_model_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed of random weights without a checkpoint (default 0)")
    add_onnx(p, "bundle this ONNX (exported with --target trt8.2) instead of exporting")
    add_input_size(p, "camera image size the graph takes, resized in the graph (default "
                      "2048x1024)", default=None)
    add_network_size(p, "network input size, multiples of 32 (default 1024x512)",
                     alias=("--model-size",), default=None)
    p.add_argument("--channel-order", choices=["rgb", "bgr"], default=None,
                   help="channel order of the graph input (default: the network's)")
    add_graph_outputs(p, ("labels", "both"), "labels",
                      "graph outputs: labels (INT32 class ids, the default) or both labels "
                      "and logits")
    from ..export.targets import get_target

    add_precision(p, ("fp32", "fp16"), "the precision build_engine.sh builds unless told "
                                       "otherwise (default fp16: full rate on the TX2)",
                  refused={"int8": get_target("trt8.2").int8_refused})  # export onnx's reason
    p.add_argument("--exporter", choices=["auto", "dynamo", "torchscript"], default=None,
                   help="PyTorch exporter, as for `bisenet-export onnx` (default auto: the "
                        "torch.export-based one brought to opset 13, else TorchScript)")
    p.add_argument("--no-simplify", action="store_true", help="skip onnx-simplifier")
    add_output(p, "bundle folder", alias=("--output-dir",), metavar="DIR", required=True,
               refuse_graph_outputs=True)
    add_no_progress(p)
    p.add_argument("--tar", action="store_true",
                   help="also write DIR.tar.gz, one file to scp to the device")
    p.add_argument("--force", action="store_true",
                   help="replace an existing DIR (and DIR.tar.gz); without it they are refused")
    add_logging_args(p)
    p.set_defaults(func=_run, precision="fp16")


def _run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..jetson.bundle import BundleOptions, build_bundle
    from ..portable.shared.shell_words import quote_path

    if args.onnx is not None:
        # these shape the export; an ONNX given with --onnx is bundled as it was exported
        ignored = [flag for flag, value in (
            ("--checkpoint", args.checkpoint), ("--arch", args.arch), ("--dataset", args.dataset),
            ("--num-classes", args.num_classes), ("--input-size", args.input_size),
            ("--network-size", args.network_size), ("--channel-order", args.channel_order),
            ("--exporter", args.exporter))
            if value is not None]
        if ignored:
            raise InputError(f"--onnx bundles the ONNX as it was exported, so "
                             f"{', '.join(ignored)} would be ignored (they shape an export): "
                             f"leave them out, or leave --onnx out")
    result = build_bundle(BundleOptions(
        output_dir=args.output, checkpoint=args.checkpoint, arch=args.arch,
        dataset=args.dataset, num_classes=args.num_classes, seed=args.seed, onnx=args.onnx,
        input_size=tuple(args.input_size or BundleOptions.input_size),
        model_size=tuple(args.network_size or BundleOptions.model_size),
        channel_order=args.channel_order, output=args.outputs, precision=args.precision,
        simplify=not args.no_simplify, tar=args.tar, force=args.force,
        exporter=args.exporter or BundleOptions.exporter, progress=not args.no_progress))
    model = result.manifest["model"]
    print(f"bundle:  {result.path} ({result.file_count} files)")
    print(f"model:   {model['onnx']} ({model['arch']}, {model['dataset']}, input "
          f"{model['input_size'][0]}x{model['input_size'][1]} -> network "
          f"{model['model_size'][0]}x{model['model_size'][1]}, target {model['target']})")
    if result.parity:
        print(f"parity:  ONNX Runtime vs PyTorch: labels identical "
              f"{result.parity['labels_identical_pct']:.4f}%, logits relative error "
              f"{result.parity['logits_rel_error']:.3g}")
    print(f"engine:  built on the device, {args.precision.upper()} by default "
          f"(./build_engine.sh --{'fp32' if args.precision == 'fp16' else 'fp16'} for the other)")
    name = os.path.basename(result.path)
    if result.tar_path:
        size = os.path.getsize(result.tar_path) / 1e6
        print(f"tarball: {result.tar_path} ({size:.1f} MB)")
        print(f"next:    scp {quote_path(result.tar_path)} nvidia@JETSON:~/ && on the Jetson: "
              f"tar -xzf {quote_path(name + '.tar.gz')} && cd {quote_path(name)} && "
              f"./setup_jetson.sh && ./build_engine.sh && ./bench.sh")
    else:
        print(f"next:    scp -r {quote_path(result.path)} nvidia@JETSON:~/ && on the Jetson: "
              f"cd {quote_path(name)} && ./setup_jetson.sh && ./build_engine.sh && ./bench.sh")
    return 0
