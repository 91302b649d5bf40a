"""`bisenet-export onnx`: checkpoint -> simplified, checked, parity-proven ONNX for a TensorRT target."""

from __future__ import annotations

from .common import add_logging_args, add_model_args
from .options import (GRAPH_OUTPUT_KINDS, JSON_STDOUT, add_batch, add_batch_range, add_calib_count,
                      add_calib_images, add_graph_outputs, add_input_size, add_json,
                      add_network_size, add_no_progress, add_output, add_precision)

TARGET_HELP = ("trt8.2 (Jetson TX2 / JetPack 4.6: opset 13, float input), trt8.6 (GTX 1080 Ti "
               "and other Pascal GPUs: opset 17), trt10 (opset 17), trt11 (opset 17; TensorRT 11 "
               "and TensorRT-RTX). Default: the target of the TensorRT installed here (full "
               "TensorRT first, else TensorRT-RTX: trt11), trt10 without one")
PRECISION_HELP = ("precision of the engine this graph is for. fp16 on trt11 (TensorRT 11 and "
                  "TensorRT-RTX have no precision flags) writes an FP16 graph, named -fp16; the "
                  "other targets keep the FP32 graph (no -fp16 in its name) and record fp16 for "
                  "bisenet-build-engine, which sets TensorRT's FP16 flag; int8 (trt8.6/trt10/"
                  "trt11) writes a Q/DQ graph calibrated on --calib-images and gated by "
                  "--min-agreement, named -int8 (default fp32)")


def register(sub) -> None:
    p = sub.add_parser(
        "onnx", help="export a checkpoint to an ONNX graph for a TensorRT target",
        description="Export BiSeNet V2 to ONNX with the in-graph resize (input size -> network "
                    "size), in-graph normalization and INT32 labels; simplify it, check it with "
                    "onnx.checker and the target's rules, and prove it against PyTorch on "
                    "onnxruntime before writing it (atomically).")
    add_model_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights without --checkpoint (default 0)")
    add_output(p, "ONNX file to write (default: export/<arch>-<dataset>-<inW>x<inH>-to-"
                  "<mW>x<mH>-<outputs>-<target>[-fp16|-int8][-uint8][-prenorm|-bgr][-bN|-dynMIN-MAX]"
                  ".onnx, see export/README.md)", alias=("--output-path",),
               refuse_graph_outputs=True)
    g = p.add_argument_group("graph")
    add_input_size(g, "size of the image the graph takes, the camera size (default 2048x1024)",
                   default=(2048, 1024))
    add_network_size(g, "size the network runs at, multiples of 32; the graph resizes to it "
                        "(default 1024x512; equal sizes: no resize)", alias=("--model-size",),
                     default=(1024, 512))
    g.add_argument("--normalize", choices=("in-graph", "none"), default="in-graph",
                   help="in-graph: the input is pixels 0..255 and mean/std are applied in the "
                        "graph (default); none: the input is the already-normalized tensor")
    g.add_argument("--channel-order", choices=("rgb", "bgr"), default=None,
                   help="channel order of the graph input (default: the network's, usually rgb)")
    g.add_argument("--input-dtype", choices=("float32", "uint8"), default="float32",
                   help="float32 (default) or uint8: raw 8-bit images (TensorRT >= 8.5; refused "
                        "for trt8.2)")
    add_graph_outputs(g, GRAPH_OUTPUT_KINDS, "labels",
                      "labels (default): INT32 class ids N x H x W; logits: float32 N x C x H x W; "
                      "both")
    g.add_argument("--target", choices=("trt8.2", "trt8.6", "trt10", "trt11"), default=None,
                   help=TARGET_HELP)
    add_precision(g, ("fp32", "fp16", "int8"), PRECISION_HELP, default="fp32")
    g.add_argument("--opset", type=int, default=None,
                   help="override the target's opset (within the range the target accepts)")
    g.add_argument("--exporter", choices=("auto", "dynamo", "torchscript"), default="auto",
                   help="PyTorch exporter: dynamo (torch.export-based, brought to the target's "
                        "opset), torchscript (the deprecated tracer), or auto (default): dynamo "
                        "where this torch has it, else TorchScript with a warning saying why")
    b = g.add_mutually_exclusive_group()
    add_batch(b, "static batch size (default 1)")
    add_batch_range(b, "dynamic batch with this optimization profile (recorded for the engine "
                       "builder)", alias=("--dynamic-batch",))
    add_int8_args(p)
    s = p.add_argument_group("steps")
    s.add_argument("--no-simplify", action="store_true", help="skip onnx-simplifier")
    s.add_argument("--skip-parity", action="store_true",
                   help="skip the parity check against PyTorch (not recommended)")
    add_json(p, "the result (path, metadata record, parser verdict, parity, timings) as one "
                "JSON object, on stdout (nothing else there; logs stay on stderr) or into PATH")
    add_no_progress(p)
    add_logging_args(p)
    p.set_defaults(func=_run)


def add_int8_args(p) -> None:
    from ..export.int8_gate import DEFAULT_MIN_AGREEMENT
    from ..export.quantize import CALIBRATION_METHODS, DEFAULT_CALIB_COUNT, DEFAULT_METHOD

    q = p.add_argument_group("int8 (--precision int8: a Q/DQ graph, see docs/int8.md)")
    add_calib_images(q, "calibration images (.png/.jpg/.npy, like the deployment's frames); "
                        "they go through the graph's own resize and normalization")
    add_calib_count(q, default=DEFAULT_CALIB_COUNT,
                    help=f"calibrate on the first N images of --calib-images; the next ones (up "
                        f"to 16) are the held-out set of the accuracy gate, else synthetic "
                        f"street scenes (default {DEFAULT_CALIB_COUNT})")
    q.add_argument("--calib-method", choices=tuple(CALIBRATION_METHODS), default=DEFAULT_METHOD,
                   help=f"activation range calibration (default {DEFAULT_METHOD}, chosen by "
                        f"measured agreement: docs/int8.md)")
    q.add_argument("--min-agreement", type=float, default=DEFAULT_MIN_AGREEMENT, metavar="PCT",
                   help=f"accuracy gate: the percent of held-out pixels whose INT8 label equals "
                        f"the FP32 graph's; below it the export exits 3 and writes nothing "
                        f"(default {DEFAULT_MIN_AGREEMENT:g})")
    q.add_argument("--keep-float", nargs="+", default=[], metavar="LAYER",
                   help="layers kept in float: PyTorch module paths or their prefixes, e.g. "
                        "head segment.S5_4 bga.left1 (--sensitivity-scan suggests them)")
    q.add_argument("--eval-data", metavar="DIR",
                   help="Cityscapes-layout folder: also report mIoU and per-class IoU of the "
                        "FP32 and INT8 graphs side by side")
    q.add_argument("--sensitivity-scan", action="store_true",
                   help="quantize one block at a time, rank the blocks by the labels each one "
                        "changes; the table is printed and saved beside the ONNX as "
                        "STEM.int8-scan.json (a.onnx: a.int8-scan.json)")


def _int8_options(args):
    if args.precision != "int8":
        for flag, value in (("--calib-images", args.calib_images), ("--eval-data", args.eval_data),
                            ("--keep-float", args.keep_float),
                            ("--sensitivity-scan", args.sensitivity_scan)):
            if value:
                from ..errors import InputError

                raise InputError(f"{flag} applies to --precision int8 only")
        return None
    from ..export.int8_export import Int8Options

    return Int8Options(calib_images=args.calib_images, calib_count=args.calib_count,
                       method=args.calib_method, min_agreement=args.min_agreement,
                       keep_float=tuple(args.keep_float), eval_data=args.eval_data,
                       sensitivity_scan=args.sensitivity_scan)


def default_target() -> str:
    """The export target of the TensorRT installed here (what scripts/main_job.sh picks too), so
    `bisenet-export onnx` then `bisenet-build-engine` work as they are; trt10 without one."""
    from ..portable.trt.capabilities import installed_summary

    summary = installed_summary().split()
    return summary[2] if len(summary) == 3 else "trt10"


def _graph_note(info) -> str:
    """' (FP32 graph: ...)' where --precision fp16 kept the FP32 graph (the name says so too)."""
    from ..export.targets import get_target

    if info["precision"] == "fp16" and get_target(info["target"]).graph_precision("fp16") != "fp16":
        return " (FP32 graph: bisenet-build-engine sets TensorRT's FP16 flag)"
    return ""


def _run(args) -> int:
    from ..export.pipeline import ExportOptions, export_onnx

    options = ExportOptions(
        checkpoint=args.checkpoint, arch=args.arch, dataset=args.dataset,
        num_classes=args.num_classes, seed=args.seed, output_path=args.output,
        input_size=tuple(args.input_size), model_size=tuple(args.network_size),
        normalize=args.normalize, channel_order=args.channel_order, input_dtype=args.input_dtype,
        output=args.outputs, target=args.target or default_target(), precision=args.precision,
        dynamic_batch=args.batch_range, batch=args.batch, simplify=not args.no_simplify,
        parity=not args.skip_parity, opset=args.opset, exporter=args.exporter,
        progress=not args.no_progress, int8=_int8_options(args))
    result = export_onnx(options)
    if args.json:
        from .common import write_json_report

        write_json_report(args.json, result_record(result))
    if args.json != JSON_STDOUT:
        print_summary(result)
    return 0


def result_record(result) -> dict:
    """What `--json` prints: the file, its metadata record and how it was proven."""
    from .. import __version__

    return {"toolkit_version": __version__, "path": result.path,
            "file_bytes": result.file_bytes, "nodes": result.num_nodes,
            "simplified": result.simplified, "record": result.record,
            "parser": result.parser.as_dict() if result.parser is not None else None,
            "parity": result.parity.to_dict() if result.parity is not None else None,
            "timings": [{"step": name, "seconds": round(t, 3)} for name, t in result.timings]}


def print_summary(result) -> None:
    info = result.record["export"]
    model = result.record["model"]
    batch = info["batch"]
    batch_text = (f"dynamic {batch['min']}:{batch['opt']}:{batch['max']}" if batch["dynamic"]
                  else f"static {batch['size']}")
    print(f"wrote {result.path} ({result.file_bytes / 1e6:.1f} MB, {result.num_nodes} nodes"
          f"{'' if result.simplified else ', not simplified'})")
    print(f"  model   {model['arch']}, {model['num_classes']} classes ({model['dataset']}), "
          f"weights: {model['weights']}")
    print(f"  input   {info['input_name']} {info['input_dtype']} {info['input_size'][0]}x"
          f"{info['input_size'][1]} {info['channel_order']}, normalize {info['normalize']}, "
          f"batch {batch_text}")
    print(f"  network {info['model_size'][0]}x{info['model_size'][1]}; outputs "
          f"{', '.join(info['output_names'])}")
    print(f"  target  {info['target']} opset {info['opset']}, precision {info['precision']}"
          f"{_graph_note(info)}, exporter {info['exporter']}")
    if result.parser is not None:
        print(f"  parser  {result.parser.summary()}")
    else:
        from ..portable.building.parser_check import NO_PARSER

        print(f"  parser  none: {NO_PARSER}")
    if result.parity is not None:
        print(f"  parity  {result.parity.summary()}")
    else:
        print("  parity  SKIPPED (--skip-parity)")
    if result.int8 is not None:
        _print_int8(result.int8)
    print(f"  time    {result.total_seconds:.1f} s (" +
          ", ".join(f"{name} {t:.1f}s" for name, t in result.timings) + ")")


def _print_int8(int8) -> None:
    info = int8.info
    print(f"  int8    {info['qdq_pairs']} Q/DQ pairs, {info['calibration']['method']} calibration "
          f"on {info['calibration']['images']} image(s)"
          + (f", kept in {info.get('keep_float_dtype', 'fp32').upper()}: "
             f"{' '.join(info['keep_float'])}" if info["keep_float"] else ""))
    print(f"  gate    {int8.agreement.summary()} (>= {info['min_agreement']:g} required)")
    if "eval" in info:
        ev = info["eval"]
        print(f"  mIoU    fp32 {ev['fp32']['miou']}  int8 {ev['int8']['miou']} on {ev['images']} "
              f"image(s) of {ev['data']}")
    if int8.scan_rows is not None:
        from ..export.int8_scan import format_scan

        print(format_scan(int8.scan_rows))
        for path in int8.scan_paths:
            print(f"  scan saved to {path}")
