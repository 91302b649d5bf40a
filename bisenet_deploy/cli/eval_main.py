"""`bisenet-eval`: mIoU of one or several backends on a labelled dataset, side by side.

    bisenet-eval --backend torch onnxruntime:m.onnx tensorrt:m_fp16.plan --checkpoint C
                 --data ROOT [--split val] [--layout cityscapes|folders]
                 [--protocol paper|full|both]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex

from .common import (add_logging_args, add_model_args, check_report_path, positive_int, run_cli,
                     write_json_report)
from .options import (JSON_STDOUT, add_backend, add_engine, add_json, add_network_size,
                      add_no_progress, add_onnx, add_plot, plot_path)

log = logging.getLogger(__name__)


def build_parser():
    p = argparse.ArgumentParser(
        prog="bisenet-eval",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Confusion matrix over a dataset split, per-class IoU, mIoU and pixel "
                    "accuracy for each backend; several backends give a side-by-side table "
                    "(e.g. PyTorch vs FP32 vs FP16 engine).",
        epilog="protocols (PyTorch backends run either; an ONNX/engine runs the sizes it was "
               "exported with):\n"
               "  paper  the network at half the image size (Cityscapes: 1024x512) with the resize "
               "in the graph,\n         prediction at the image size (2048x1024): the BiSeNet V2 "
               "paper's setting\n"
               "  full   the network at the full image size (how CoinCheung/BiSeNet reports "
               "74.95 mIoU)\n"
               "default: paper for --layout cityscapes, full for --layout folders (the paper's "
               "halving is a\nCityscapes setting; other data is evaluated at the size of its "
               "images unless told otherwise)\n"
               "Predictions smaller than the labels are upsampled: logits bilinearly then argmax "
               "when the\nbackend returns logits, labels nearest-neighbour otherwise.\n"
               "mmsegmentation checkpoints: mmsegmentation reports its mIoU on the whole image "
               "(--protocol full).\n"
               "cityscapes layout: also category IoU, and iIoU per class and on average when "
               "every\n*_gtFine_instanceIds.png is present (as the Cityscapes benchmark scores "
               "them).")
    add_backend(p, "backends: torch, torch-cuda, onnxruntime, onnxruntime-cuda, "
                   "onnxruntime-trt, tensorrt; a path after ':' overrides "
                   "--checkpoint/--onnx/--engine for that backend", nargs="+", required=True,
                metavar="BACKEND[:PATH][@PREC]")
    add_model_args(p)
    add_onnx(p, "ONNX file for the onnxruntime backends")
    add_engine(p, "TensorRT engine for the tensorrt backend")
    p.add_argument("--data", required=True, metavar="ROOT", help="dataset root folder")
    p.add_argument("--layout", choices=("cityscapes", "folders"), default="cityscapes",
                   help="cityscapes: leftImg8bit/<split>/<city>/*_leftImg8bit.png + "
                        "gtFine/<split>/<city>/*_gtFine_labelIds.png; folders: ROOT/images + "
                        "ROOT/labels (train-id PNGs, same names) (default: cityscapes)")
    p.add_argument("--split", default="val", help="dataset split (default: val)")
    p.add_argument("--protocol", choices=("paper", "full", "both"), default=None,
                   help="network size for PyTorch backends (default: paper for the cityscapes "
                        "layout, full for folders)")
    add_network_size(p, "PyTorch backends: run the network at this size instead of the "
                        "protocol's (multiples of 32)")
    p.add_argument("--ignore-index", type=int, metavar="ID",
                   help="folders layout: the label value to ignore (default: the model's, "
                        "normally 255); the cityscapes layout always ignores 255 after mapping")
    p.add_argument("--strict", action="store_true",
                   help="cityscapes layout: refuse ground truth holding values that are no "
                        "Cityscapes label id (0..33; exit 2) instead of ignoring and reporting them")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="evaluate only the first N images (N >= 1; default: all)")
    add_json(p, "write the report (confusion-derived metrics) as JSON")
    add_plot(p, "also write a PNG: per-class IoU with the backends side by side and each "
                "backend's confusion matrix; without PATH: next to the --json report, "
                "else eval.png")
    p.add_argument("--no-per-class", action="store_true",
                   help="print only mIoU and pixel accuracy, not the per-class table")
    add_no_progress(p)
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="CPU threads for torch/onnxruntime")
    add_logging_args(p)
    p.set_defaults(func=_run)
    return p


def _image_size(samples):
    """(width, height) of the first sample whose image can be opened (the others are skipped
    and listed later)."""
    from PIL import Image

    from ..errors import UnusableFileError
    from ..portable.files.image_io import open_pillow

    for sample in samples:
        try:
            with open_pillow(sample.image_path, Image) as im:
                return im.size
        except (OSError, SyntaxError, ValueError, UnusableFileError):
            continue
    raise UnusableFileError(f"none of the {len(samples)} image(s) could be read")


def _plot_path(args):
    """--plot PATH, or with no PATH the report's name with .png (eval.png without --json)."""
    beside_report = args.json and args.json != JSON_STDOUT
    return plot_path(args.plot, os.path.splitext(args.json)[0] + ".png" if beside_report
                     else "eval.png")


def _run(args):
    from ..errors import InputError, SkippedInputsError
    from ..evaluation.backends import ModelSource, network_size, parse_spec
    from ..evaluation.datasets_io import find_samples
    from ..evaluation.evaluate import EvalTarget, evaluate, format_table
    from ..model.summary import check_model_size

    check_report_path(args.json, "--json")  # before the evaluation, not after it
    plot = _plot_path(args)
    check_report_path(plot, "--plot", kind="png")
    if args.network_size:
        try:
            check_model_size(*args.network_size)
        except InputError as exc:
            raise InputError(f"--network-size: {exc}") from None
    specs = [parse_spec(s) for s in args.backend]
    samples = find_samples(args.data, args.layout, args.split)
    if args.limit:
        samples = samples[:args.limit]
    image_size = _image_size(samples)
    protocol_given = args.protocol is not None
    if args.protocol is None:
        args.protocol = "paper" if args.layout == "cityscapes" else "full"
    elif args.protocol in ("paper", "both") and args.layout != "cityscapes":
        log.info("note: the paper protocol halves the image size (the paper's Cityscapes "
                 "setting); --protocol full runs the network at these images' own size")
    protocols = ["paper", "full"] if args.protocol == "both" else [args.protocol]
    source = ModelSource.from_args(args)

    with contextlib.ExitStack() as stack:
        targets = []
        for spec in specs:
            if spec.family == "torch":
                for protocol in protocols:
                    size = tuple(args.network_size) if args.network_size else \
                        network_size(image_size, protocol)
                    record = source.torch_record(spec, image_size, size)
                    runner = stack.enter_context(source.open(spec, record))
                    label = spec.text if len(protocols) == 1 else f"{spec.text} ({protocol})"
                    targets.append(EvalTarget(label, runner))
            else:
                runner = stack.enter_context(source.open(spec))
                targets.append(EvalTarget(spec.text, runner))
                export = (runner.metadata or {}).get("export") or {}
                if protocol_given or args.network_size:
                    log.info("%s runs the sizes it was exported with (input %s, network %s); "
                             "--protocol/--network-size apply to PyTorch backends only",
                             spec.text, "x".join(map(str, export.get("input_size", []))),
                             "x".join(map(str, export.get("model_size", []))))
        model = (targets[0].runner.metadata or {}).get("model") or {}
        num_classes = int(model.get("num_classes") or 0)
        if not num_classes:
            raise InputError(f"{targets[0].label}: the model's metadata does not say how many "
                             f"classes it predicts")
        if model.get("source") == "mmsegmentation" and "paper" in protocols \
                and not args.network_size:
            log.info("mmsegmentation reports its mIoU on the whole image: --protocol full")
        if args.layout == "cityscapes":
            ignore_index = 255
        elif args.ignore_index is not None:
            ignore_index = args.ignore_index
        else:
            ignore_index = int(model.get("ignore_index", 255))
        log.info("evaluating %d image(s) of %s (%s, %s) at %dx%d", len(samples), args.data,
                 args.layout, args.split, *image_size)
        skipped = []
        report = evaluate(targets, samples, layout=args.layout, num_classes=num_classes,
                          class_names=model.get("class_names"),
                          ignore_index=ignore_index,
                          progress=not args.no_progress, skipped=skipped, strict=args.strict)
    report.update({"data": args.data, "split": args.split,
                   "command": " ".join(shlex.quote(a) for a in ["bisenet-eval"] + list(args.argv))})
    if model.get("weights") == "random-init":
        log.warning("the model has RANDOM weights: these numbers mean nothing about accuracy")
    print(format_table(report, per_class=not args.no_per_class))
    if args.json:
        write_json_report(args.json, report)
        if args.json != JSON_STDOUT:
            print(f"report: {args.json}")
    if plot:
        from ..evaluation.eval_plot import write_eval_plot

        write_eval_plot(report, plot)
        print(f"plot: {plot}")
    if skipped:
        raise SkippedInputsError(f"{len(skipped)} of {len(samples)} sample(s) could not be read "
                                 f"and were left out of the scores (reasons above): "
                                 f"{', '.join(name for name, _ in skipped)}")
    return 0


def main(argv=None):
    return run_cli(build_parser(), argv)
