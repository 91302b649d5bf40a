#!/usr/bin/env python3
"""Command line of a bisenet-deploy Jetson bundle: verify, check, build, bench, predict, demo.

This file and its jetson_*.py modules (jetson_env: the device's versions; jetson_build: engine
builds; jetson_bench: timing; jetson_parity: labels against the desktop's) are copied into the
bundle as-is by `bisenet-export jetson`. They run on a Jetson TX2 with JetPack 4.6 as shipped:
Python 3.6, numpy 1.19, the system TensorRT 8.2 and pycuda 2022.1. They import only the standard
library, numpy and the bundle's own `bisenet_trt` package (the toolkit's portable runtime, copied
unchanged); tensorrt and pycuda are imported only by the commands that need them, so `verify`,
`check` and `--help` work before `setup_jetson.sh` ran. `verify` imports nothing from the bundle:
it runs bundle_manifest.py only from bytes whose sha256 matches the manifest, and the bundle's
folder stays off sys.path until a command needs its modules (then after the standard library).

    python jetson_run.py verify            every bundle file is intact (sha256 from manifest.json)
    python jetson_run.py check             versions of L4T, Python, numpy, TensorRT, pycuda, GPU
    python jetson_run.py build [--fp32]    engine + sidecar under engines/ (FP16 by default)
    python jetson_run.py bench             5000-iteration timing, reported like bisenet-bench
    python jetson_run.py predict [IMAGE]   label map of an image (default: the bundled sample)
    python jetson_run.py demo ...          live overlay on a video file or camera (see demo.py)
"""

import os
import sys

BUNDLE_DIR = os.path.dirname(os.path.abspath(__file__))
#: the bundle's manifest code, standard library only, run by `verify` once its sha256 matches
MANIFEST_TOOLS = "bisenet_trt/files/bundle_manifest.py"
# no __pycache__ in the bundle: it stays what its manifest lists (verify, --force refuse more)
sys.dont_write_bytecode = True
if __name__ == "__main__":
    # Python put this folder first on sys.path, where a planted json.py would stand in for the
    # standard library's; use_bundle_modules puts it back last when a command needs the bundle
    sys.path[:] = [p for p in sys.path
                   if os.path.realpath(p or os.curdir) != os.path.realpath(BUNDLE_DIR)]

import argparse  # noqa: E402 (the standard library only, until the bundle is verified)
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402

#: where JetPack 4.6 installs trtexec (jetson_build.py uses the path `--trtexec-path` gives)
TRTEXEC_JETSON = "/usr/src/tensorrt/bin/trtexec"


class BundleError(Exception):
    """The bundle cannot be checked (its manifest or manifest code is missing or damaged)."""

    exit_code = 1


def use_bundle_modules():
    """The bundle's folder on sys.path, after the standard library (which nothing shadows)."""
    if BUNDLE_DIR not in sys.path:
        sys.path.append(BUNDLE_DIR)


def errors():
    """bisenet_trt.shared.errors (UserError and the others), imported on first use."""
    return model().errors()


def numpy():
    return model().numpy()


_MANIFEST_TOOLS = []


def manifest_tools():
    """bisenet_trt/files/bundle_manifest.py of this bundle, run from the bytes whose sha256 matched
    manifest.json's entry for it: nothing of the bundle runs before it is checked."""
    if _MANIFEST_TOOLS:
        return _MANIFEST_TOOLS[0]
    path = os.path.join(BUNDLE_DIR, *MANIFEST_TOOLS.split("/"))
    manifest_path = os.path.join(BUNDLE_DIR, "manifest.json")
    again = "copy the bundle again (scp the .tar.gz and unpack it with tar -xzf)"
    try:
        with open(manifest_path, "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except (IOError, OSError):
        raise BundleError("%s not found: run this from an unpacked bisenet-deploy Jetson bundle "
                          "(tar -xzf BUNDLE.tar.gz, then cd into the folder)"
                          % manifest_path) from None
    except ValueError as exc:
        raise BundleError("%s is not valid JSON (%s): %s" % (manifest_path, exc, again)) from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise BundleError("%s has no list of files (`files`): it is damaged or not a "
                          "bisenet-deploy bundle manifest; %s" % (manifest_path, again))
    entry = files.get(MANIFEST_TOOLS)
    expected = entry.get("sha256") if isinstance(entry, dict) else None
    try:
        with open(path, "rb") as f:
            source = f.read()
    except (IOError, OSError):
        raise BundleError("missing: %s; %s" % (MANIFEST_TOOLS, again)) from None
    if hashlib.sha256(source).hexdigest() != expected:
        raise BundleError("changed or truncated: %s (sha256 differs from the manifest); %s"
                          % (MANIFEST_TOOLS, again))
    module = types.ModuleType("bisenet_bundle_manifest")
    module.__file__ = path
    exec(compile(source, path, "exec"), module.__dict__)
    _MANIFEST_TOOLS.append(module)
    return module


def model():
    """jetson_model (the bundled model, its engines and runner), once the bundle is in use."""
    use_bundle_modules()
    import jetson_model
    return jetson_model


def build_with_builder(onnx_path, record, engine_path, precision, args):
    from jetson_build import build_with_builder as build
    return build(onnx_path, record, engine_path, precision, args)


def build_with_trtexec(onnx_path, record, engine_path, precision, args):
    from jetson_build import build_with_trtexec as build
    return build(onnx_path, record, engine_path, precision, args)


# -- commands ----------------------------------------------------------------------------------

def cmd_verify(args):
    """Every file of the bundle against manifest.json, before any of the bundle's code runs:
    only the standard library and the hash-checked bundle_manifest.py (manifest_tools)."""
    tools = manifest_tools()
    manifest = tools.load_manifest(BUNDLE_DIR)
    problems = tools.verify_bundle(BUNDLE_DIR)
    if problems:
        for p in problems:
            print("  " + p)
        raise BundleError("%d bundle entries do not match manifest.json: copy the bundle again "
                          "(scp the .tar.gz and unpack it with tar -xzf into an empty folder)"
                          % len(problems))
    model = manifest.get("model") if isinstance(manifest.get("model"), dict) else {}
    print("bundle OK: %d files match manifest.json (toolkit %s, model %s)"
          % (len(manifest["files"]), manifest.get("toolkit_version"), model.get("onnx")))
    outputs = tools.device_outputs(BUNDLE_DIR)
    if outputs:
        print("not part of the bundle, written by its commands on this device (not checked): %s"
              % ", ".join(outputs))
    return 0


def cmd_check(args):
    from jetson_env import environment_checks
    rows = environment_checks()
    width = max(len(r[0]) for r in rows)
    bad = 0
    for item, found, ok, fix in rows:
        print("%s  %-*s  %s" % ("ok " if ok else "BAD", width, item, found))
        if fix:
            print("      -> %s" % fix)
        bad += 0 if ok else 1
    if bad:
        raise errors().UserError("%d environment problem(s), see the lines marked BAD above" % bad)
    print("environment OK")
    return 0


def cmd_build(args):
    bundled = model()
    manifest = bundled.load_manifest()
    onnx_path, record = bundled.model_paths(manifest)
    precision = args.precision or bundled.default_precision(manifest)
    engine_path = os.path.abspath(args.output or bundled.default_engine_path(manifest, precision))
    from bisenet_trt.files.ownership import check_replaceable
    # without --force nothing is replaced; with it only an engine with the toolkit's sidecar
    check_replaceable(engine_path, "engine", force=args.force)
    os.makedirs(os.path.dirname(engine_path), exist_ok=True)
    started = time.time()
    if args.trtexec:
        build_with_trtexec(onnx_path, record, engine_path, precision, args)
    else:
        build_with_builder(onnx_path, record, engine_path, precision, args)
    print("engine: %s (%s, built in %.0f s)" % (engine_path, precision, time.time() - started))
    from bisenet_trt.trt.engine_paths import sidecar_path
    print("sidecar: %s" % sidecar_path(engine_path))
    if args.no_parity:
        return 0
    share = bundled.check_parity(manifest, engine_path, record)
    if share is None:
        return 0
    print("parity with the desktop ONNX Runtime labels: %.3f%% identical" % (100.0 * share))
    from jetson_parity import report_parity
    if not report_parity(share, precision, record):
        raise errors().ParityError("the engine's labels differ from the desktop's on the bundled "
                                   "sample (%.3f%% identical): rebuild with --fp32 to see whether "
                                   "FP16 is the cause" % (100.0 * share))
    return 0


def cmd_bench(args):
    import jetson_bench
    bundled = model()
    manifest = bundled.load_manifest()
    _, record = bundled.model_paths(manifest)
    engine_path = bundled.find_engine(manifest, args.engine)
    image, _ = bundled.load_sample(manifest)
    iters, warmup = jetson_bench.settings(args)
    with bundled.open_runner(engine_path, zero_copy=args.zero_copy,
                             use_cuda_graph=args.cuda_graph) as runner:
        batches = jetson_bench.input_batches(image, bundled.runner_record(runner, record),
                                             args.batch, args.buffers)
        timings = jetson_bench.time_runner(runner, batches, iters, warmup, quiet=args.quiet)
    jetson_bench.report(timings, record, engine_path, args, iters, warmup, BUNDLE_DIR)
    return 0


def cmd_predict(args):
    numpy()  # demo.py imports numpy: without it, one line saying what to install
    import demo
    return demo.predict(args)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="jetson_run.py",
        description="bisenet-deploy Jetson bundle: verify, check, build the engine, benchmark, "
                    "predict and run the camera/video demo.")
    parser.add_argument("-v", "--verbose", action="store_true", help="more detail in the log")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("verify", help="check every bundle file against manifest.json")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("check", help="check L4T/JetPack, Python, numpy, TensorRT, pycuda, GPU")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("build", help="build the TensorRT engine on this device (FP16 default)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--fp16", dest="precision", action="store_const", const="fp16",
                       help="FP16 engine (the bundle's default: full rate on the TX2)")
    group.add_argument("--fp32", dest="precision", action="store_const", const="fp32",
                       help="FP32 engine (the paper's other TX2 figure; slower)")
    p.add_argument("--trtexec", action="store_true",
                   help="build with NVIDIA's trtexec instead of the bundle's builder")
    p.add_argument("--trtexec-path", default=TRTEXEC_JETSON, help="default: %(default)s")
    p.add_argument("--workspace", type=int, default=1024, metavar="MiB",
                   help="builder scratch memory (default: %(default)s; the TX2 shares 8 GB "
                        "between CPU and GPU)")
    p.add_argument("--timing-cache", default=None, metavar="PATH",
                   help="timing cache file, read and written back (speeds up rebuilds)")
    p.add_argument("-o", "--output", default=None, metavar="ENGINE",
                   help="engine path (default: engines/<model>-<precision>.engine)")
    p.add_argument("--force", action="store_true", help="replace an existing engine")
    p.add_argument("--no-parity", action="store_true",
                   help="skip the comparison with the desktop labels after the build")
    p.set_defaults(func=cmd_build, precision=None)

    p = sub.add_parser("bench", help="time the engine like bisenet-bench (5000 iterations)")
    p.add_argument("--engine", default=None, help="default: the engine build_engine.sh made")
    p.add_argument("--iters", type=int, default=5000, help="timed iterations (%(default)s)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed calls first (default: 5%% of --iters, 3..50, as bisenet-bench)")
    p.add_argument("--batch", type=int, default=1,
                   help="images per call (%(default)s; the bundle's graph has a static batch of 1)")
    p.add_argument("--buffers", type=int, default=4,
                   help="distinct input buffers rotated through (%(default)s)")
    p.add_argument("--zero-copy", action="store_true",
                   help="host-mapped buffers shared by CPU and GPU (no H2D/D2H copies)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="capture the enqueue in a CUDA graph (less CPU launch overhead; needs "
                        "cuda-python, which JetPack 4.6's Python 3.6 lacks)")
    p.add_argument("--json", default=None, help="report path (default: benchmarks/...)")
    p.add_argument("--quiet", action="store_true", help="no progress counter")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("predict", help="segment one image (default: the bundled sample)")
    p.add_argument("image", nargs="?", default=None,
                   help="image file (needs OpenCV; .npy/.ppm work without it)")
    p.add_argument("--engine", default=None, help="default: the engine build_engine.sh made")
    p.add_argument("-o", "--output", default=None, help="folder (default: predictions/)")
    p.add_argument("--zero-copy", action="store_true", help="host-mapped buffers")
    p.set_defaults(func=cmd_predict)

    # handled in main(): `jetson_run.py demo ARGS` is `demo.py ARGS`
    sub.add_parser("demo", help="live overlay on a video file or a CSI/USB camera (the options "
                                "of demo.py: jetson_run.py demo --help)")
    return parser


def cmd_demo(argv):
    """`jetson_run.py demo ARGS` is `demo.py ARGS`."""
    numpy()  # demo.py imports numpy: without it, one line saying what to install
    import demo
    return demo.main(argv)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        # everything after `demo` belongs to demo.py (argparse's REMAINDER cannot take options)
        func, args = cmd_demo, argv[1:]
    else:
        parser = build_parser()
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                            format="%(message)s")
        func = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            return 2
    if func is not cmd_verify:  # verify runs nothing of the bundle it has not checked
        use_bundle_modules()
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except Exception as exc:
        # the errors written for the user (bisenet_trt.shared.errors, ManifestError, BundleError) carry
        # their exit code; anything else is a bug and keeps its traceback
        code = getattr(exc, "exit_code", None)
        if not isinstance(code, int):
            raise
        sys.stderr.write("error: %s\n" % exc)
        return code


if __name__ == "__main__":
    sys.exit(main())
