"""`bisenet-build-engine`: a TensorRT engine (plus JSON sidecar) from a bisenet-deploy ONNX.

Three modes:
- build (default): `bisenet-build-engine MODEL.onnx [--fp32|--fp16|--int8 --calib-images DIR] ...`
  runs portable/building/builder.py, the same code the Jetson bundle runs, with full TensorRT or
  (`--trt-flavour tensorrt-rtx`, the default where only it is installed) TensorRT-RTX, which
  builds without a GPU for the compute capabilities given by `--compute-capability`;
- `--trtexec [--run] [--trt-version X]`: prints (and with --run executes) the equivalent trtexec
  command for the installed or the given TensorRT version;
- `--inspect ENGINE`: per-layer precision and fusions from TensorRT's engine inspector.

TensorRT is imported only when a mode needs it; without it such a mode exits with one line saying
what to install.
"""

import argparse
import logging
import os

from .. import __version__
from ..errors import EngineError, InputError, MissingDependencyError, NoMetadataError
from .common import add_logging_args, emit_json, non_negative_int, run_cli
from .options import (JSON_STDOUT, add_batch_range, add_calib_count, add_calib_images, add_json,
                      add_no_progress, add_onnx_operand, add_output, add_precision, add_trt_flavour)

log = logging.getLogger("bisenet_deploy.build_engine")

EPILOG = """\
examples:
  bisenet-build-engine export/model.onnx --fp16
  bisenet-build-engine export/model.onnx --int8 --calib-images calib/ --batch-range 1:4:8
  bisenet-build-engine export/model.onnx --fp16 --trtexec --trt-version 8.2.1   # print only
  bisenet-build-engine --inspect engines/<gpu>-sm86-trt10.13.0/model-fp16.engine
  bisenet-build-engine export/model-trt11.onnx --trt-flavour tensorrt-rtx      # no GPU needed
  bisenet-build-engine export/model-trt11-fp16.onnx --trt-flavour tensorrt-rtx \\
      --compute-capability 7.5

Default output: engines/<gpu-name>-sm<XY>-trt<version>/<onnx-stem>-<precision>.engine, with the
JSON sidecar <onnx-stem>-<precision>.json beside it and the folder's timing.cache. TensorRT-RTX:
engines/[<gpu-name>-sm<XY>-]rtx<version>-<portable|sm75...>/<onnx-stem>-<precision>.engine.
"""


def _calibration_bar(total):
    """The bar over the INT8 calibration batches (drawn on a terminal only)."""
    from ..progress import start_bar

    return start_bar(total=total, desc="INT8 calibration", unit="batch")


def build_parser():
    p = argparse.ArgumentParser(
        prog="bisenet-build-engine",
        description="Build a TensorRT FP32/FP16/INT8 engine and its JSON sidecar from a "
                    "bisenet-deploy ONNX (TensorRT 8.2 to 11, or TensorRT-RTX without a GPU), "
                    "print the equivalent trtexec command, or inspect an engine's layers.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_onnx_operand(p, "the ONNX from `bisenet-export onnx`")
    prec = p.add_argument_group("precision (default: what the ONNX was exported for)")
    add_precision(prec, ("fp32", "fp16", "int8"),
                  "fp32; fp16 (on TensorRT 11 and TensorRT-RTX the ONNX itself must be FP16: "
                  "`bisenet-export onnx --target trt11 --precision fp16`); int8 with entropy "
                  "calibration (needs --calib-images or a cache)")
    add_calib_images(prec, "calibration images: .npy (H x W x 3 uint8 RGB) always, PNG/JPEG "
                           "with OpenCV or Pillow; prepared exactly as the ONNX metadata says")
    prec.add_argument("--calib-cache", metavar="PATH",
                      help="calibration cache to read/write (default: beside the engine)")
    prec.add_argument("--calib-batch", type=int, default=None, metavar="N",
                      help="calibration batch size (default: the profile's OPT batch)")
    add_calib_count(prec, "calibrate on at most the first N images of --calib-images "
                          "(default: all)", default=None, alias=("--calib-max-images",))
    b = p.add_argument_group("build")
    add_trt_flavour(b, "the TensorRT to build with (default: full TensorRT when installed, else "
                       "TensorRT-RTX); their engines are not interchangeable",
                    alias=("--backend",))
    b.add_argument("--compute-capability", metavar="X.Y[,X.Y]",
                   help="TensorRT-RTX: the GPUs to build for, e.g. 7.5 for RTX 20xx (default: the "
                        "portable engine for SM 8.0, 8.6, 8.9, 12.0, 12.1); with --trtexec: the "
                        "target GPU's, for the precision checks")
    add_output(b, "engine path (default: see below)")
    b.add_argument("--workspace", type=int, default=None, metavar="MiB",
                   help="builder scratch memory limit (default: 1024 on TensorRT 8.2/8.3, "
                        "the device memory on 8.4+)")
    b.add_argument("--timing-cache", metavar="PATH",
                   help="timing cache to load and save back (default: the engine folder's "
                        "timing.cache)")
    b.add_argument("--no-timing-cache", action="store_true", help="build without a timing cache")
    add_batch_range(b, "batch range of the optimization profile (dynamic-batch ONNX only; "
                       "default: the range it was exported with)", alias=("--batch",))
    b.add_argument("--opt-level", type=int, default=None, metavar="N",
                   help="builder optimization level 0-5 (TensorRT 8.6+; default 3)")
    b.add_argument("--tf32", action="store_true",
                   help="let TensorRT compute FP32 layers in TF32 on Ampere and newer (faster, "
                        "~1e-3 relative error); default: off, FP32 means FP32")
    b.add_argument("--gpu", type=non_negative_int, default=0, metavar="INDEX",
                   help="CUDA device index, 0 or more (default 0)")
    t = p.add_argument_group("trtexec")
    t.add_argument("--trtexec", action="store_true",
                   help="print the equivalent trtexec build command (and a benchmark command)")
    t.add_argument("--run", action="store_true", help="with --trtexec: run the build command")
    t.add_argument("--trt-version", metavar="X.Y[.Z]",
                   help="with --trtexec: spell the command for this TensorRT (default: installed)")
    t.add_argument("--gpu-name", metavar="NAME",
                   help="with --trtexec: the target GPU's name for the default engine path")
    i = p.add_argument_group("inspect")
    i.add_argument("--inspect", metavar="ENGINE", help="print the engine's layers and precisions")
    add_json(i, "with --inspect: the layers as JSON instead of a table")
    add_no_progress(p)
    add_logging_args(p)
    p.set_defaults(func=_run)
    return p


def read_onnx(path):
    """(record, summary) of an ONNX file, its record validated field by field (a damaged one is
    refused in one line naming the field, before any build command is made). An ONNX without the
    record is refused (NoMetadataError)."""
    from ..portable.files.fileio import require_file
    from ..portable.files.onnx_reader import read_onnx_summary, record_from_summary

    require_file(path, "ONNX file")
    with open(path, "rb") as f:
        summary = read_onnx_summary(f.read(), path)
    record = record_from_summary(summary, path)
    if record is None:
        # an engine from it could not be run by any command (no preprocessing, no classes)
        raise NoMetadataError(path)
    return record, summary


def compute_capabilities(text):
    """'7.5' / '8.6,12.0' -> ('7.5',) / ('8.6', '12.0'); None stays None."""
    if not text:
        return None
    return tuple(part.strip() for part in str(text).split(",") if part.strip()) or None


def _options(args, trtexec=False):
    """The BuildOptions of the command line, validated. With --trtexec, --compute-capability is
    the target GPU's (not TensorRT-RTX targets) and the flavour is full TensorRT."""
    from ..portable.building.builder import BuildOptions

    options = BuildOptions(
        precision=args.precision, output=args.output, workspace_mib=args.workspace,
        timing_cache=args.timing_cache, batch=args.batch_range, opt_level=args.opt_level,
        calib_images=args.calib_images, calib_cache=args.calib_cache,
        calib_batch_size=args.calib_batch, calib_max_images=args.calib_count,
        verbose=args.verbose > 0, gpu_index=args.gpu, use_timing_cache=not args.no_timing_cache,
        toolkit_version=__version__, allow_tf32=args.tf32,
        flavour="tensorrt" if trtexec else args.trt_flavour,
        compute_capabilities=None if trtexec else compute_capabilities(args.compute_capability),
        progress=None if args.no_progress else _calibration_bar)
    options.validate()
    return options


def _run(args):
    if args.inspect:
        if args.onnx or args.trtexec:
            raise InputError("--inspect ENGINE takes no ONNX and no --trtexec")
        return _inspect(args)
    if not args.onnx:
        raise InputError("give the ONNX to build from (bisenet-build-engine MODEL.onnx) or "
                         "--inspect ENGINE; see --help")
    if args.run and not args.trtexec:
        raise InputError("--run goes with --trtexec")
    if (args.trt_version or args.gpu_name) and not args.trtexec:
        raise InputError("--trt-version/--gpu-name go with --trtexec (a build always uses the "
                         "installed TensorRT)")
    if args.trtexec and args.trt_flavour == "tensorrt-rtx":
        raise InputError("--trtexec spells NVIDIA's trtexec, a full TensorRT tool; TensorRT-RTX "
                         "engines are built with `bisenet-build-engine --trt-flavour tensorrt-rtx`")
    options = _options(args, trtexec=args.trtexec)
    if args.trtexec:
        return _trtexec(args, options)
    return _build(args, options)


def _build(args, options):
    from ..portable.building.builder import build_engine
    from ..portable.trt.flavours import flavour_label, import_tensorrt
    from ..portable.trt.sidecar import sidecar_targets
    from ..portable.trt.capabilities import format_targets

    import_tensorrt(args.trt_flavour)  # one clear line before reading anything when it is missing
    record, _ = read_onnx(args.onnx)
    result = build_engine(args.onnx, record, options)
    sc = result.sidecar
    targets = sidecar_targets(sc)
    where = (format_targets(targets) if targets is not None else
             "%s (SM %s)" % (sc["gpu"]["name"], sc["gpu"]["compute_capability"]))
    print("engine:   %s" % result.engine_path)
    print("sidecar:  %s" % result.sidecar_path)
    print("built:    %s engine for %s, %s %s, in %.1f s%s"
          % (sc["precision"].upper(), where, flavour_label(sc["flavour"]), sc["tensorrt_version"],
             result.seconds, " (no GPU here: built ahead of time)" if sc["gpu"] is None else ""))
    if targets is not None:
        print("runs on:  a GPU with %s; it compiles the kernels when it first loads the engine "
              "and keeps them in a runtime cache beside it" % format_targets(targets))
    if sc.get("layer_precisions"):
        print("layers:   %s (from TensorRT's build log)" % _layer_text(sc["layer_precisions"]))
    for entry in sc["io"]:
        print("  %-6s %-8s %s %s" % (entry["mode"], entry["name"], "x".join(
            "N" if d < 0 else str(d) for d in entry["shape"]), entry["dtype"]))
    return 0


def _layer_text(counts):
    """{'fp16': 76, '-': 16} -> '76 fp16, 16 without data'."""
    return ", ".join("%d %s" % (n, "without data" if p == "-" else p)
                     for p, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _trtexec(args, options):
    """Print (and with --run execute) the trtexec command of the build plan our builder would
    follow, for the installed or the given TensorRT."""
    from ..portable.building import trtexec
    from ..portable.building.build_plan import plan_for
    from ..portable.trt.capabilities import assumed_capabilities
    from ..portable.trt.flavours import import_flavour
    from ..portable.trt.gpu_info import GpuInfo, query_gpu
    from ..portable.trt.precision import parse_compute_capability
    from ..portable.trt.trt_api import generation_for_version, parse_version, version_string

    if args.run:
        import_flavour("tensorrt")  # --run needs TensorRT (trtexec's libraries, for the sidecar)
    if args.trt_version:
        version = parse_version(args.trt_version)
    else:
        try:
            version = parse_version(import_flavour("tensorrt").__version__)
        except MissingDependencyError as exc:
            raise MissingDependencyError("%s; or give --trt-version X to print the trtexec command "
                                         "for another machine" % exc) from None
    generation_for_version(version)  # refuses TensorRT older than 8.2 before anything else
    caps = assumed_capabilities(version)  # the target machine's TensorRT, by its version
    record, _ = read_onnx(args.onnx)
    gpu_name, cc = args.gpu_name, args.compute_capability
    gpu = None
    if gpu_name is None and cc is None and not args.trt_version:
        try:
            gpu = query_gpu(args.gpu)
        except MissingDependencyError as exc:
            log.info("GPU unknown (%s)", exc)
    elif gpu_name and cc:
        gpu = GpuInfo(gpu_name, parse_compute_capability(cc))
    plan = plan_for(caps, args.onnx, record, options, gpu, compute_capability=cc, here=args.run)
    build = trtexec.plan_command(plan, verbose=args.verbose > 0)
    shape = (plan.profile[0], plan.profile[2]) if plan.profile is not None else None
    bench = trtexec.benchmark_command(version, plan.engine_path, shape=shape)
    print("# TensorRT %s: build" % version_string(version))
    print(trtexec.format_command(build))
    print("# benchmark: exactly 5000 iterations, host<->device copies included")
    print(trtexec.format_command(bench))
    if args.run:
        _run_trtexec(args, build, plan)
    return 0


def _run_trtexec(args, build, plan):
    """Run trtexec into a temporary file, then write the sidecar read off the engine itself."""
    import time

    from ..portable.building import trtexec
    from ..portable.running.engine_load import sidecar_from_engine
    from ..portable.files.fileio import atomic_output
    from ..portable.trt.flavours import import_flavour
    from ..portable.trt.gpu_info import query_gpu
    from ..portable.trt.sidecar import write_sidecar
    from ..portable.trt.trt_api import version_string

    trt = import_flavour("tensorrt")  # the sidecar needs TensorRT to read the engine's I/O
    if version_string(trt.__version__) != version_string(plan.caps.version):
        raise InputError("--run executes the installed TensorRT %s, but the command was spelled "
                         "for %s: drop --trt-version" % (trt.__version__,
                                                         version_string(plan.caps.version)))
    gpu = query_gpu(args.gpu)
    engine = plan.engine_path
    started = time.time()
    with atomic_output(engine) as tmp:
        line = ["--saveEngine=%s" % tmp if str(a).startswith("--saveEngine=") else a
                for a in build]
        code = trtexec.run_trtexec(line)
        if code != 0 or not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
            raise EngineError("trtexec failed (exit code %d); read its output above" % code)
        sidecar = sidecar_from_engine(
            trt, tmp, engine, gpu, plan.decision.precision, plan.onnx_path, plan.record,
            {"trtexec": trtexec.format_command(build)}, time.time() - started,
            precision_decision=plan.decision.as_dict())
        write_sidecar(engine, sidecar)
    print("engine:   %s (built by trtexec, sidecar written)" % engine)


def _inspect(args):
    from ..portable.running.engine_inspect import (format_layer_table, inspect_engine,
                                                   precision_summary)
    from ..portable.running.engine_load import engine_flavour, import_for_engine
    from ..portable.files.fileio import require_file
    from ..portable.trt.flavours import RTX, flavour_of, import_tensorrt
    from ..portable.trt.gpu_info import query_gpu
    from ..portable.trt.sidecar import (check_engine_compatible, read_sidecar, refuse_onnx_as_engine,
                                    summarize)

    refuse_onnx_as_engine(args.inspect)  # an ONNX given for an engine: that first (exit 5)
    import_tensorrt()  # one clear line first when there is no TensorRT at all
    require_file(args.inspect, "engine")
    try:
        sidecar = read_sidecar(args.inspect)
    except EngineError as exc:
        log.warning("%s", exc)
        sidecar = None
    trt = import_for_engine(args.inspect, sidecar)
    try:
        gpu = query_gpu(args.gpu)
        gpu_name, cc = gpu.name, gpu.compute_capability
    except MissingDependencyError:
        if engine_flavour(args.inspect, sidecar) == RTX:
            known = (sidecar or {}).get("layer_precisions")
            raise MissingDependencyError(  # exit 4: not available here
                "inspecting %s needs an NVIDIA GPU: TensorRT-RTX loads engines only on a GPU%s"
                % (args.inspect, "; the layer precisions TensorRT chose at build time, from its "
                   "sidecar: %s" % _layer_text(known) if known else "")) from None
        gpu_name = cc = None
    if sidecar is not None:
        # an engine for another GPU/TensorRT: say so, naming both, instead of TensorRT's
        # "Version tag does not match" and a failed deserialization
        check_engine_compatible(sidecar, trt.__version__, gpu_name, cc, flavour_of(trt))
    layers = inspect_engine(args.inspect, trt)
    if args.json:
        record = {"engine": args.inspect, "sidecar": sidecar,
                  "precisions": precision_summary(layers),
                  "layers": [layer.as_dict() for layer in layers]}
        if args.json == JSON_STDOUT:
            emit_json(record)
        else:
            from .common import write_json_report

            write_json_report(args.json, record)
            print("layers: %s" % args.json)
        return 0
    if sidecar is not None:
        print(summarize(sidecar))
    print(format_layer_table(layers))
    return 0


def main(argv=None):
    return run_cli(build_parser(), argv)
