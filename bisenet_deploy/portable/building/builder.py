"""Build a TensorRT engine from a bisenet-deploy ONNX: full TensorRT 8.2 (Jetson TX2) to 11, or
TensorRT-RTX (which builds without a GPU).

`build_engine(onnx_path, record, options)` is the one entry point: the desktop CLI
(`bisenet-build-engine`) and the Jetson bundle (`jetson_run.py build`, through
`bisenet_trt.building.builder.build_engine`) both call it. It runs five small steps, each logged with its
duration and each usable on its own:
1. checks (build_plan.plan_build): the TensorRT flavour and its capabilities, the GPU, the
   precision policy, the ONNX vs this TensorRT, the batch profile, TensorRT-RTX targets, output
   paths, INT8 calibration inputs - everything that can refuse the build before work starts;
2. parse (build_steps.parse_network): the real ONNX parser; errors name the failing node and the
   fix, e.g. the `--target` to re-export with;
3. configure (build_steps.configure_build): workspace, precision flags (none where networks are
   strongly typed), TF32, profile, optimization level, profiling verbosity, timing cache,
   compute targets, calibrator;
4. build (build_steps.build_serialized);
5. save (build_steps.save_engine): the engine and its JSON sidecar atomically, then the timing
   cache.

Python 3.6 / numpy 1.19 compatible; tensorrt and pycuda are imported lazily.
"""

import argparse
import json
import logging
import os
import sys
import time

from .build_checks import explain_parser_errors
from .build_plan import BuildOptions, plan_build  # noqa: F401 - BuildOptions is part of the API
from .build_steps import (build_serialized, configure_build, parse_network, profile_entries,
                          save_engine, save_timing_cache)
from ..running.engine_inspect import parse_build_log_layers, precision_summary
from ..trt.engine_paths import sidecar_path
from ..shared.errors import EngineError, InputError, UserError
from ..files.fileio import sha256_bytes
from ..trt.sidecar import make_sidecar
from ..shared.step_timer import StepTimer
from ..trt.trt_logger import capture, tensorrt_logger

log = logging.getLogger(__name__)


class BuildResult(object):
    def __init__(self, engine_path, sidecar_path, sidecar, seconds, steps):
        self.engine_path = engine_path
        self.sidecar_path = sidecar_path
        self.sidecar = sidecar
        self.seconds = seconds
        self.steps = steps  # [(step name, seconds)]


class _NoScope(object):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _cuda_scope(needed, device):
    """The primary CUDA context made current, for pycuda calibration buffers (INT8 only)."""
    if not needed:
        return _NoScope()
    from ..trt.cuda_context import CudaContext  # noqa: WPS433 - needs pycuda, lazily
    return CudaContext(device=device, mode="primary").open()


def build_engine(onnx_path, record, options, trt=None, gpu=None):
    """Build and save an engine + sidecar; returns a BuildResult. See the module docstring.

    record: the ONNX's bisenet_deploy metadata dict, or None to read it from the file itself.
    trt/gpu: injected module and GpuInfo (defaults: import the flavour asked for, query the GPU).
    """
    start = time.time()
    steps = StepTimer(log, announce=True)
    with steps.step("checks"):
        plan = plan_build(onnx_path, record, options, trt=trt, gpu=gpu)
    trt, caps = plan.trt, plan.caps

    with steps.step("parse %s" % os.path.basename(plan.onnx_path)):
        logger = tensorrt_logger(trt, verbose=options.verbose)
        builder = trt.Builder(logger)
        plan.redecide_precision(builder)
        parsed = parse_network(trt, caps, plan.onnx_bytes, plan.onnx_path, logger,
                               plan.decision.strongly_typed, builder=builder)
        if not parsed.ok:
            raise EngineError(explain_parser_errors(
                parsed.errors, plan.record, caps, os.path.basename(plan.onnx_path),
                plan.summary["nodes"]))
        if parsed.network.num_inputs != 1:
            raise InputError("the parsed network has %d inputs, expected 1"
                             % parsed.network.num_inputs)

    with steps.step("configure"):
        config = configure_build(trt, plan, parsed)

    with steps.step("build (%s, %s)" % (caps.label, plan.decision.precision)):
        calibrator = plan.calibrator
        # the layer list TensorRT logs (VERBOSE) with detailed profiling verbosity: the only way
        # to see TensorRT-RTX's layer precisions without a GPU
        with _cuda_scope(calibrator is not None, options.gpu_index), \
                capture(logger, "Layers:") as layer_log:
            try:
                engine_bytes = build_serialized(parsed, config)
            finally:
                if calibrator is not None:
                    calibrator.free()  # inside the context its buffer was allocated in
        if calibrator is not None and calibrator.error is not None:
            raise _calibration_error(calibrator.error)
        if engine_bytes is None:
            raise EngineError("%s could not build the engine (see its messages above; re-run with "
                              "--verbose for its full log). Out of memory? try a smaller "
                              "--workspace or batch range" % caps.label)
        if not engine_bytes:
            raise EngineError("%s returned an empty engine" % caps.label)

    with steps.step("save"):
        layers = parse_build_log_layers("\n".join(layer_log))
        sidecar = _sidecar(plan, parsed, engine_bytes, time.time() - start,
                           precision_summary(layers) if layers else None)
        save_engine(plan.engine_path, engine_bytes, sidecar)
        if plan.cache_path is not None:
            try:
                size = save_timing_cache(config, plan.cache_path)
                log.info("timing cache saved: %s (%d bytes)", plan.cache_path, size)
            except (IOError, OSError) as exc:  # only a cache: the engine is written
                log.warning("could not save the timing cache %s (%s)", plan.cache_path, exc)
    total = time.time() - start
    log.info("built in %.1f s (%s)", total, ", ".join("%s %.1f s" % s for s in steps.done))
    return BuildResult(plan.engine_path, sidecar_path(plan.engine_path), sidecar, total,
                       [(name, round(took, 3)) for name, took in steps.done])


def _sidecar(plan, parsed, engine_bytes, seconds, layer_precisions):
    caps, options, decision = plan.caps, plan.options, plan.decision
    return make_sidecar(
        plan.engine_path, sha256_bytes(engine_bytes), len(engine_bytes), plan.trt.__version__,
        caps.generation, plan.gpu.as_dict() if plan.gpu is not None else None,
        decision.precision, parsed.io, profile_entries(plan), plan.onnx_path,
        sha256_bytes(plan.onnx_bytes), plan.record, _options_record(plan), seconds,
        toolkit_version=options.toolkit_version or (plan.record or {}).get("toolkit_version"),
        precision_decision=decision.as_dict(),
        built_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), flavour=caps.flavour,
        targets=plan.targets, capabilities=caps.as_dict(), layer_precisions=layer_precisions)


def _calibration_error(exc):
    """The error a calibrator callback caught, as the one-line error the user sees."""
    if isinstance(exc, UserError):
        return exc
    return EngineError("INT8 calibration failed: %s" % (exc,))


def _options_record(plan):
    options, decision, calib = plan.options, plan.decision, plan.calib
    out = {
        "precision": decision.precision,
        "flags": list(decision.flags),
        "strongly_typed": decision.strongly_typed,
        "workspace_mib": options.workspace_mib,
        "batch": list(options.batch) if options.batch else None,
        "opt_level": options.opt_level,
        "timing_cache": plan.cache_path,
        "profiling_verbosity": "detailed",
        "tf32": bool(options.allow_tf32),
        "compute_capabilities": (["%d.%d" % t for t in plan.targets]
                                 if options.compute_capabilities else None),
    }
    if decision.needs_calibrator:
        out["calibration"] = {"images": options.calib_images, "cache": plan.calib_cache,
                              "batches": len(calib) if calib is not None else 0,
                              "batch_size": calib.batch_size if calib is not None else None,
                              "algorithm": "entropy2"}
    return out


# -- `python3 -m portable.building.builder` (the Jetson bundle; no desktop CLI there) ---------------------

def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python3 -m %s.builder" % (__package__ or "portable"),
        description="Build a TensorRT engine from a bisenet-deploy ONNX (portable builder).")
    parser.add_argument("onnx")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--fp32", dest="precision", action="store_const", const="fp32")
    group.add_argument("--fp16", dest="precision", action="store_const", const="fp16")
    group.add_argument("--int8", dest="precision", action="store_const", const="int8")
    parser.add_argument("--calib-images")
    parser.add_argument("-o", "--output")
    parser.add_argument("--workspace", type=int, help="MiB")
    parser.add_argument("--timing-cache")
    parser.add_argument("--batch", help="MIN:OPT:MAX")
    parser.add_argument("--opt-level", type=int)
    parser.add_argument("--record", help="the metadata record JSON (default: read from the ONNX)")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--backend", choices=("tensorrt", "tensorrt-rtx"), default=None,
                        help="the TensorRT flavour (default: full TensorRT when importable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        batch = None
        if args.batch:
            try:
                batch = tuple(int(b) for b in args.batch.split(":"))
                if len(batch) != 3:
                    raise ValueError
            except ValueError:
                raise InputError("--batch %r is not MIN:OPT:MAX" % args.batch)
        record = None
        if args.record:
            try:
                with open(args.record) as f:
                    record = json.load(f)
            except (IOError, OSError, ValueError) as exc:
                raise InputError("cannot read the metadata record %s (%s)" % (args.record, exc))
        options = BuildOptions(precision=args.precision, output=args.output,
                               workspace_mib=args.workspace, timing_cache=args.timing_cache,
                               batch=batch, opt_level=args.opt_level,
                               calib_images=args.calib_images, verbose=args.verbose,
                               flavour=args.backend)
        result = build_engine(args.onnx, record, options)
    except UserError as exc:
        log.error("error: %s", exc)
        return exc.exit_code
    sys.stdout.write(result.engine_path + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
