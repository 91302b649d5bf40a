"""`bisenet-predict`: images, folders or videos -> colour label maps and overlays, with latency.

    bisenet-predict --onnx model.onnx street.png frames/ -o out/
"""

from __future__ import annotations

import argparse
import logging
import os

from .common import (add_logging_args, add_model_args, check_report_path, positive_int, run_cli,
                     write_json_report)
from .options import (add_backend, add_engine, add_images, add_json, add_network_size,
                      add_no_progress, add_onnx, add_output)

log = logging.getLogger(__name__)


def build_parser():
    p = argparse.ArgumentParser(
        prog="bisenet-predict",
        description="Segment images, folders of images or videos and write <stem>_labels.png "
                    "(colour label map in the model's palette, at the image's size) and "
                    "<stem>_overlay.png (blended over the image, with a class -> colour legend "
                    "to its right), or <stem>_overlay.mp4 / <stem>_labels.mp4 for a video (needs "
                    "OpenCV). Prints the latency of each image. --label-ids writes "
                    "<stem>_labelIds.png instead, the Cityscapes benchmark's format.")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="image files, folders or videos (the same as --images)")
    add_images(p, "image files, folders or videos (or give them as operands, as above)")
    add_output(p, "output folder", metavar="OUTDIR", required=True)
    add_model_args(p)
    add_onnx(p, "an exported ONNX (backend onnxruntime)")
    add_engine(p, "a TensorRT engine (backend tensorrt)")
    add_backend(p, "torch, torch-cuda, onnxruntime, onnxruntime-cuda, onnxruntime-trt, "
                   "tensorrt (default: from the model file given); torch with --onnx "
                   "runs PyTorch on that export's graph (with --checkpoint: its weights)")
    p.add_argument("--server", metavar="HOST:PORT",
                   help="segment on a Triton server instead (bisenet-serve, or a repository from "
                        "bisenet-export triton): gRPC or HTTP, e.g. localhost:8001; the model's "
                        "preprocessing and classes come from the server")
    p.add_argument("--model-name", default="bisenet", metavar="NAME",
                   help="with --server: the served model (default bisenet)")
    add_network_size(p, "PyTorch backends: network input size; the graph takes the first "
                        "image's size and resizes in-graph (default 1024x512, the paper's)",
                     default=(1024, 512))
    p.add_argument("--alpha", type=float, default=0.5,
                   help="overlay opacity of the label colours, 0..1 (default 0.5)")
    p.add_argument("--no-legend", action="store_true",
                   help="images: no legend beside the overlay, which then has the image's size")
    p.add_argument("--label-ids", action="store_true",
                   help="write only <stem>_labelIds.png per image: uint8 Cityscapes label ids "
                        "(train ids mapped with the official table), what the Cityscapes "
                        "benchmark server and cityscapesscripts take; Cityscapes models and "
                        "images only (exit 2 otherwise)")
    p.add_argument("--max-frames", type=positive_int, metavar="N",
                   help="videos: stop after N frames (N >= 1)")
    add_json(p, "write per-image latencies and outputs as JSON")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="CPU threads for torch/onnxruntime")
    add_no_progress(p)
    add_logging_args(p)
    p.set_defaults(func=_run)
    return p


def _default_backend(args) -> str:
    from ..errors import InputError

    given = [n for n in ("checkpoint", "onnx", "engine") if getattr(args, n)]
    if len(given) > 1 and not args.backend:
        raise InputError(f"give one of --checkpoint/--onnx/--engine, or --backend to choose "
                         f"(got {', '.join('--' + g for g in given)})")
    if args.backend:
        return args.backend
    if args.engine:
        return "tensorrt"
    if args.onnx:
        return "onnxruntime"
    return "torch"


def _first_image_size(inputs):
    """(width, height) of the first input image that can be read, or None."""
    from ..errors import UnusableFileError
    from ..evaluation.predict import is_video
    from ..runtime.images import read_image

    for path in inputs:
        if is_video(path):
            continue
        try:
            h, w = read_image(path).shape[:2]
        except UnusableFileError:  # skipped (and listed) later
            continue
        return w, h
    return None


def _run(args):
    from ..errors import InputError
    from ..evaluation.backends import ModelSource, parse_spec
    from ..evaluation.predict import check_outputs, collect_inputs, plan_outputs
    from ..model.summary import check_model_size
    from ..portable.files.fileio import check_writable

    args.inputs = list(args.inputs) + list(args.images or [])
    if not args.inputs:
        raise InputError("nothing to segment: give image files, folders or videos (as operands "
                         "or with --images)")
    if args.server and any((args.checkpoint, args.onnx, args.engine, args.backend)):
        raise InputError("--server segments on the served model: leave out --checkpoint, --onnx, "
                         "--engine and --backend")
    if not 0.0 <= args.alpha <= 1.0:
        raise InputError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise InputError(f"-o {args.output} is a file: give an output folder")
    check_writable(os.path.join(args.output, "x.png"), "-o")
    check_report_path(args.json, "--json")
    if args.network_size:
        try:
            check_model_size(*args.network_size)
        except InputError as exc:
            raise InputError(f"--network-size: {exc}") from None
    inputs = collect_inputs(args.inputs)
    kinds = ("labelIds",) if args.label_ids else ("labels", "overlay")
    check_outputs(plan_outputs(inputs, args.output, kinds))  # before loading any model
    if args.server:
        from ..serve.client import ServedRunner

        with ServedRunner(args.server, args.model_name) as runner:
            return _predict(runner, inputs, args)
    spec = parse_spec(_default_backend(args))
    if spec.path:
        raise InputError("--backend takes a name only; give the model with --checkpoint, --onnx "
                         "or --engine")
    source = ModelSource.from_args(args)
    record = None
    if spec.family == "torch" and args.onnx:  # PyTorch on exactly that export's graph
        from ..export.onnx_metadata import read_record

        record = read_record(args.onnx)
    elif spec.family == "torch":
        w, h = _first_image_size(inputs) or tuple(args.network_size)
        record = source.torch_record(spec, (w, h), tuple(args.network_size))

    with source.open(spec, record) as runner:
        return _predict(runner, inputs, args)


def _predict(runner, inputs, args) -> int:
    """Segment `inputs` with the active runner, print latencies, write pictures (and --json)."""
    import numpy as np

    from ..errors import SkippedInputsError, UnusableFileError
    from ..evaluation.predict import predict_paths
    from ..progress import write_line

    def show(entry):
        where = entry["input"] + ("" if entry["frame"] is None else f" frame {entry['frame']}")
        extra = "" if entry.get("device_ms") is None else f", device {entry['device_ms']:.1f} ms"
        write_line(f"{where}: infer {entry['infer_ms']:.1f} ms, total {entry['total_ms']:.1f} ms"
                   f"{extra}")  # above the progress bar, if one is drawn

    skipped = [] if len(inputs) > 1 else None  # one input that cannot be read: its own line
    results = predict_paths(runner, inputs, args.output, alpha=args.alpha,
                            max_frames=args.max_frames, legend=not args.no_legend,
                            on_result=show, skipped=skipped, label_ids=args.label_ids,
                            progress=not args.no_progress)
    describe = runner.describe()
    skipped = skipped or []
    listing = ", ".join(path for path, _ in skipped)
    if not results:
        raise UnusableFileError(f"none of the {len(skipped)} input(s) could be read (reasons "
                                f"above): {listing}")
    infer = np.array([r["infer_ms"] for r in results])
    print(f"{len(results)} image(s)/frame(s) on {describe}: infer mean {infer.mean():.1f} ms, "
          f"median {np.median(infer):.1f} ms (the first includes warm-up); written to "
          f"{args.output}")
    if args.json:
        write_json_report(args.json, {"backend": describe, "results": results,
                                      "skipped": [{"input": p, "reason": r} for p, r in skipped]})
    if skipped:
        raise SkippedInputsError(f"{len(skipped)} of {len(inputs)} input(s) could not be read "
                                 f"and were skipped (reasons above; the others are written): "
                                 f"{listing}")
    return 0


def main(argv=None):
    return run_cli(build_parser(), argv)
