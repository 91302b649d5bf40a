"""`bisenet-build-engine`: a TensorRT engine (plus JSON sidecar) from a bisenet-deploy ONNX.

Three modes:
- build (default): `bisenet-build-engine MODEL.onnx [--fp32|--fp16|--int8 --calib-images DIR] ...`
  runs portable/builder.py, the same code the Jetson bundle runs;
- `--trtexec [--run] [--trt-version X]`: prints (and with --run executes) the equivalent trtexec
  command for the installed or the given TensorRT version;
- `--inspect ENGINE`: per-layer precision and fusions from TensorRT's engine inspector.

TensorRT is imported only when a mode needs it; without it such a mode exits with one line saying
what to install.
"""

import argparse
import logging
import os
import sys

from .. import __version__
from ..errors import EngineError, InputError, MissingDependencyError, NoMetadataError
from .common import add_logging_args, batch_profile_arg, non_negative_int, run_cli

log = logging.getLogger("bisenet_deploy.build_engine")

EPILOG = """\
examples:
  bisenet-build-engine export/model.onnx --fp16
  bisenet-build-engine export/model.onnx --int8 --calib-images calib/ --batch 1:4:8
  bisenet-build-engine export/model.onnx --fp16 --trtexec --trt-version 8.2.1   # print only
  bisenet-build-engine --inspect engines/<gpu>-sm86-trt10.13.0/model-fp16.engine

Default output: engines/<gpu-name>-sm<XY>-trt<version>/<onnx-stem>-<precision>.engine, with the
JSON sidecar <onnx-stem>-<precision>.json beside it and the folder's timing.cache.
"""


def build_parser():
    p = argparse.ArgumentParser(
        prog="bisenet-build-engine",
        description="Build a TensorRT FP32/FP16/INT8 engine and its JSON sidecar from a "
                    "bisenet-deploy ONNX (TensorRT 8.2 to 11), print the equivalent trtexec "
                    "command, or inspect an engine's layers.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx", nargs="?", metavar="MODEL.onnx", help="the ONNX from `bisenet-export onnx`")
    prec = p.add_argument_group("precision (default: what the ONNX was exported for)")
    excl = prec.add_mutually_exclusive_group()
    excl.add_argument("--fp32", dest="precision", action="store_const", const="fp32")
    excl.add_argument("--fp16", dest="precision", action="store_const", const="fp16",
                      help="FP16 (on TensorRT 11 the ONNX itself must be FP16: "
                           "`bisenet-export onnx --target trt11 --precision fp16`)")
    excl.add_argument("--int8", dest="precision", action="store_const", const="int8",
                      help="INT8 with entropy calibration (needs --calib-images or a cache)")
    prec.add_argument("--calib-images", metavar="DIR",
                      help="calibration images: .npy (H x W x 3 uint8 RGB) always, PNG/JPEG with "
                           "OpenCV or Pillow; prepared exactly as the ONNX metadata says")
    prec.add_argument("--calib-cache", metavar="PATH",
                      help="calibration cache to read/write (default: beside the engine)")
    prec.add_argument("--calib-batch", type=int, default=None, metavar="N",
                      help="calibration batch size (default: the profile's OPT batch)")
    prec.add_argument("--calib-max-images", type=int, default=None, metavar="N",
                      help="use at most N calibration images")
    b = p.add_argument_group("build")
    b.add_argument("-o", "--output", metavar="PATH", help="engine path (default: see below)")
    b.add_argument("--workspace", type=int, default=None, metavar="MiB",
                   help="builder scratch memory limit (default: 1024 on TensorRT 8.2/8.3, "
                        "the device memory on 8.4+)")
    b.add_argument("--timing-cache", metavar="PATH",
                   help="timing cache to load and save back (default: the engine folder's "
                        "timing.cache)")
    b.add_argument("--no-timing-cache", action="store_true", help="build without a timing cache")
    b.add_argument("--batch", type=batch_profile_arg, default=None, metavar="MIN:OPT:MAX",
                   help="batch range of the optimization profile (dynamic-batch ONNX only; "
                        "default: the range it was exported with)")
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
    t.add_argument("--compute-capability", metavar="X.Y",
                   help="with --trtexec: the target GPU's compute capability (precision checks)")
    i = p.add_argument_group("inspect")
    i.add_argument("--inspect", metavar="ENGINE", help="print the engine's layers and precisions")
    i.add_argument("--json", action="store_true", help="with --inspect: JSON instead of a table")
    add_logging_args(p)
    p.set_defaults(func=_run)
    return p


def read_onnx(path):
    """(record, summary) of an ONNX file; the record through the export package's reader when
    it is there (it validates the schema), else parsed here. An ONNX without the record is
    refused (NoMetadataError)."""
    from ..portable.builder import read_onnx_summary, record_from_summary
    from ..portable.fileio import require_file

    require_file(path, "ONNX file")
    with open(path, "rb") as f:
        summary = read_onnx_summary(f.read(), path)
    if "bisenet_deploy" not in summary["metadata"]:
        # an engine from it could not be run by any command (no preprocessing, no classes)
        raise NoMetadataError(path)
    try:
        from ..export.onnx_metadata import read_record
    except ImportError:
        return record_from_summary(summary), summary
    return read_record(path), summary


def _options(args):
    from ..portable.builder import BuildOptions

    return BuildOptions(
        precision=args.precision, output=args.output, workspace_mib=args.workspace,
        timing_cache=args.timing_cache, batch=args.batch, opt_level=args.opt_level,
        calib_images=args.calib_images, calib_cache=args.calib_cache,
        calib_batch_size=args.calib_batch, calib_max_images=args.calib_max_images,
        verbose=args.verbose > 0, gpu_index=args.gpu, use_timing_cache=not args.no_timing_cache,
        toolkit_version=__version__, allow_tf32=args.tf32)


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
    if (args.trt_version or args.gpu_name or args.compute_capability) and not args.trtexec:
        raise InputError("--trt-version/--gpu-name/--compute-capability go with --trtexec (a build "
                         "always uses the installed TensorRT and this GPU)")
    if (args.calib_images or args.calib_batch is not None) and args.precision != "int8":
        raise InputError("--calib-images/--calib-batch only apply to --int8")
    for flag, value in (("--calib-batch", args.calib_batch),
                        ("--calib-max-images", args.calib_max_images)):
        if value is not None and value < 1:
            raise InputError("%s must be >= 1, got %d" % (flag, value))
    if args.workspace is not None and args.workspace <= 0:
        raise InputError("--workspace must be a positive number of MiB, got %d" % args.workspace)
    if args.opt_level is not None and not 0 <= args.opt_level <= 5:
        raise InputError("--opt-level must be 0..5, got %d" % args.opt_level)
    if args.trtexec:
        return _trtexec(args)
    return _build(args)


def _build(args):
    from ..portable.builder import build_engine
    from ..portable.trt_api import import_tensorrt

    import_tensorrt()  # one clear line before reading anything when TensorRT is missing
    record, _ = read_onnx(args.onnx)
    result = build_engine(args.onnx, record, _options(args))
    sc = result.sidecar
    print("engine:   %s" % result.engine_path)
    print("sidecar:  %s" % result.sidecar_path)
    print("built:    %s engine for %s (SM %s), TensorRT %s, in %.1f s"
          % (sc["precision"].upper(), sc["gpu"]["name"], sc["gpu"]["compute_capability"],
             sc["tensorrt_version"], result.seconds))
    for entry in sc["io"]:
        print("  %-6s %-8s %s %s" % (entry["mode"], entry["name"], "x".join(
            "N" if d < 0 else str(d) for d in entry["shape"]), entry["dtype"]))
    return 0


def _trtexec(args):
    from ..portable import trtexec
    from ..portable.builder import check_onnx_for_version, profile_for_input
    from ..portable.engine_paths import (default_calibration_cache_path, default_engine_path,
                                         default_timing_cache_path, engine_file_name)
    from ..portable.gpu_info import query_gpu
    from ..portable.precision import decide_precision, default_precision, onnx_graph_precision
    from ..portable.trt_api import (generation_for_version, import_tensorrt, parse_version,
                                    version_string)

    if args.run:
        import_tensorrt()  # --run needs TensorRT (trtexec's libraries, and for the sidecar)
    if args.trt_version:
        version = parse_version(args.trt_version)
    else:
        try:
            version = parse_version(import_tensorrt().__version__)
        except MissingDependencyError as exc:
            raise MissingDependencyError("%s; or give --trt-version X to print the trtexec command "
                                         "for another machine" % exc) from None
    generation_for_version(version)  # refuses TensorRT older than 8.2 before anything else
    record, summary = read_onnx(args.onnx)
    for message in check_onnx_for_version(record, summary, version):  # refuses e.g. opset 17 on 8.2
        log.warning("%s", message)
    gpu_name, cc = args.gpu_name, args.compute_capability
    if gpu_name is None and cc is None and not args.trt_version:
        try:
            gpu = query_gpu(args.gpu)
            gpu_name, cc = gpu.name, gpu.compute_capability
        except MissingDependencyError as exc:
            log.info("GPU unknown (%s)", exc)
    precision = args.precision or default_precision(record)
    decision = decide_precision(precision, cc, version, onnx_graph_precision(record))
    for message in decision.warnings:
        log.warning("%s", message)
    if len(summary["inputs"]) != 1:
        raise InputError("the ONNX has %d inputs; expected one image input"
                         % len(summary["inputs"]))
    name, dims = summary["inputs"][0]
    profile = profile_for_input(name, dims, record, args.batch)
    if args.output:
        engine = args.output
    elif gpu_name and cc:
        engine = default_engine_path(args.onnx, gpu_name, cc, version, decision.precision)
    else:
        engine = os.path.join("engines", "trt%s" % version_string(version),
                              engine_file_name(args.onnx, decision.precision))
        log.info("target GPU unknown: give --gpu-name and --compute-capability for the usual "
                 "engines/<gpu>-sm<XY>-trt<version>/ folder")
    if args.run:
        from ..portable.ownership import check_replaceable

        check_replaceable(engine, "engine")
    cache = None if args.no_timing_cache else (args.timing_cache
                                               or default_timing_cache_path(engine))
    calib = None
    if decision.precision == "int8":
        calib = args.calib_cache or default_calibration_cache_path(engine)
        if not os.path.isfile(calib):
            log.warning("trtexec cannot run our calibrator: the calibration cache %s must exist "
                        "first (`bisenet-build-engine %s --int8 --calib-images DIR` writes it)",
                        calib, args.onnx)
    build = trtexec.build_command(
        version, args.onnx, engine, decision.precision, profile=profile,
        workspace_mib=args.workspace, timing_cache=cache, opt_level=args.opt_level,
        calib_cache=calib, int8_fp16_fallback="FP16" in decision.flags,
        strongly_typed=decision.strongly_typed and version[0] < 11, verbose=args.verbose > 0,
        allow_tf32=args.tf32)
    shape = (profile[0], profile[2]) if profile is not None else None
    bench = trtexec.benchmark_command(version, engine, shape=shape)
    print("# TensorRT %s: build" % version_string(version))
    print(trtexec.format_command(build))
    print("# benchmark: exactly 5000 iterations, host<->device copies included")
    print(trtexec.format_command(bench))
    if args.run:
        _run_trtexec(args, build, engine, version, decision, record)
    return 0


def _run_trtexec(args, build, engine, version, decision, record):
    """Run trtexec into a temporary file, then write the sidecar read off the engine itself."""
    import time

    from ..portable import trtexec
    from ..portable.fileio import atomic_output, sha256_file
    from ..portable.gpu_info import query_gpu
    from ..portable.sidecar import make_sidecar, profile_entry, tensor_entry, write_sidecar
    from ..portable.trt_api import api_generation, import_tensorrt, version_string

    trt = import_tensorrt()  # the sidecar needs TensorRT to read the engine's I/O
    if version_string(trt.__version__) != version_string(version):
        raise InputError("--run executes the installed TensorRT %s, but the command was spelled "
                         "for %s: drop --trt-version" % (trt.__version__,
                                                         version_string(version)))
    gpu = query_gpu(args.gpu)
    started = time.time()
    with atomic_output(engine) as tmp:
        line = ["--saveEngine=%s" % tmp if str(a).startswith("--saveEngine=") else a
                for a in build]
        code = trtexec.run_trtexec(line)
        if code != 0 or not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
            raise EngineError("trtexec failed (exit code %d); read its output above" % code)
        from ..portable.trt_runner import engine_io

        with open(tmp, "rb") as f:
            blob = f.read()
        loaded = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(blob)
        if loaded is None:
            raise EngineError("TensorRT cannot load the engine trtexec wrote")
        io, profiles = [], []
        for t in engine_io(loaded, trt):
            io.append(tensor_entry(t.name, "input" if t.is_input else "output", t.shape,
                                   t.dtype.name))
            if t.is_input and t.profile is not None:
                profiles.append(profile_entry(t.name, *t.profile))
        del loaded
        sidecar = make_sidecar(
            engine, sha256_file(tmp), len(blob), trt.__version__, api_generation(trt),
            gpu.as_dict(), decision.precision, io, profiles, args.onnx, sha256_file(args.onnx),
            record, {"trtexec": trtexec.format_command(build)}, time.time() - started,
            builder="trtexec", toolkit_version=(record or {}).get("toolkit_version"),
            precision_decision=decision.as_dict(),
            built_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        write_sidecar(engine, sidecar)
    print("engine:   %s (built by trtexec, sidecar written)" % engine)


def _inspect(args):
    from ..portable.engine_inspect import format_layer_table, inspect_engine, precision_summary
    from ..portable.fileio import require_file
    from ..portable.gpu_info import query_gpu
    from ..portable.sidecar import check_engine_compatible, read_sidecar, summarize
    from ..portable.trt_api import import_tensorrt

    trt = import_tensorrt()
    require_file(args.inspect, "engine")
    try:
        sidecar = read_sidecar(args.inspect)
    except EngineError as exc:
        log.warning("%s", exc)
        sidecar = None
    if sidecar is not None:
        # an engine for another GPU/TensorRT: say so, naming both, instead of TensorRT's
        # "Version tag does not match" and a failed deserialization
        try:
            gpu = query_gpu(args.gpu)
            gpu_name, cc = gpu.name, gpu.compute_capability
        except MissingDependencyError:
            gpu_name = cc = None
        check_engine_compatible(sidecar, trt.__version__, gpu_name, cc)
    layers = inspect_engine(args.inspect, trt)
    if args.json:
        import json

        json.dump({"engine": args.inspect, "sidecar": sidecar,
                   "precisions": precision_summary(layers),
                   "layers": [layer.as_dict() for layer in layers]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if sidecar is not None:
        print(summarize(sidecar))
    print(format_layer_table(layers))
    return 0


def main(argv=None):
    return run_cli(build_parser(), argv)
