"""The trtexec command line equivalent to a bisenet-build-engine build, spelled for a given TensorRT.

For users who prefer NVIDIA's own tool, and to cross-check our builder and timing. trtexec's flags
changed between versions (docs/tensorrt-versions.md, section 5): 8.x needs `--explicitBatch`;
8.4 replaced `--workspace=MiB` by `--memPoolSize=workspace:MiB`; 8.6 replaced `--buildOnly` by
`--skipInference`; 10.0 removed `--explicitBatch`; 11.0 removed `--fp16/--int8/--best` (the ONNX
carries the precision) and made CUDA graphs, spin-wait and no data transfers the defaults, but kept
`--noTF32`. TensorRT-RTX has no trtexec (its own tool is `tensorrt_rtx`): these lines are for full
TensorRT only.

Python 3.6 compatible; pure except `find_trtexec`/`run_trtexec`.
"""

import logging
import os
import shlex
import shutil
import subprocess

from ..shared.errors import InputError, MissingDependencyError
from ..trt.trt_api import generation_for_version, is_jetson, parse_version, version_string

log = logging.getLogger(__name__)

JETSON_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"
DEFAULT_8_2_WORKSPACE_MIB = 1024


def find_trtexec(jetson=None):
    """The trtexec binary: /usr/src/tensorrt/bin/trtexec on a Jetson (not on PATH there), else
    `trtexec` from PATH, else the libnvinfer-bin location, else plain 'trtexec'."""
    if jetson is None:
        jetson = is_jetson()
    if jetson:
        return JETSON_TRTEXEC
    found = shutil.which("trtexec")
    if found:
        return found
    if os.path.exists(JETSON_TRTEXEC):
        return JETSON_TRTEXEC
    return "trtexec"


def shape_text(shape):
    return "x".join(str(int(d)) for d in shape)


def _v(version):
    return parse_version(version)[:2]


def build_command(trt_version, onnx_path, engine_path, precision="fp32", profile=None,
                  workspace_mib=None, timing_cache=None, opt_level=None, calib_cache=None,
                  int8_fp16_fallback=True, strongly_typed=False, verbose=False, binary=None,
                  allow_tf32=False):
    """The argument list of trtexec building `engine_path` from `onnx_path`.

    profile: None for a static ONNX, else (input_name, min_shape, opt_shape, max_shape).
    precision: 'fp32' | 'fp16' | 'int8' (on 11 only what the ONNX carries: no flag is emitted) |
    'int8-qdq' (a Q/DQ ONNX: --int8 without --calib before 11).
    calib_cache: INT8 only: trtexec cannot run our calibrator, it reads the calibration cache that
    `bisenet-build-engine --int8` wrote. strongly_typed: the FP16-ONNX path on 10.x.
    """
    version = parse_version(trt_version)
    generation_for_version(version)  # refuses what is older than 8.2
    mm = version[:2]
    if precision not in ("fp32", "fp16", "int8", "int8-qdq"):
        raise InputError("precision must be fp32, fp16, int8 or int8-qdq, got %r" % (precision,))
    if workspace_mib is not None and int(workspace_mib) <= 0:
        raise InputError("the workspace must be a positive number of MiB, got %s" % workspace_mib)
    args = [binary or find_trtexec(), "--onnx=%s" % onnx_path, "--saveEngine=%s" % engine_path]
    if mm[0] == 8:
        args.append("--explicitBatch")
    # workspace
    if mm < (8, 4):
        args.append("--workspace=%d" % int(workspace_mib or DEFAULT_8_2_WORKSPACE_MIB))
    elif workspace_mib:
        args.append("--memPoolSize=workspace:%d" % int(workspace_mib))
    # precision
    if precision == "int8-qdq":
        # a Q/DQ ONNX: explicit quantization, the scales are in the graph (no --calib); 11 builds
        # it strongly typed without flags
        if mm[0] < 11:
            args.append("--int8")
            if int8_fp16_fallback:
                args.append("--fp16")
    elif mm[0] >= 11:
        if precision == "int8":
            raise InputError("TensorRT %s has no INT8 calibration (trtexec has no --int8 there)"
                             % version_string(version))
    elif strongly_typed:
        if mm[0] < 10:
            raise InputError("--stronglyTyped needs TensorRT 10 or newer")
        args.append("--stronglyTyped")
    elif precision == "fp16":
        args.append("--fp16")
    elif precision == "int8":
        if not calib_cache:
            raise InputError("trtexec cannot run bisenet-deploy's INT8 calibrator: build once with "
                             "`bisenet-build-engine --int8 --calib-images DIR` to write the "
                             "calibration cache, then pass it (--calib-cache)")
        args.append("--int8")
        if int8_fp16_fallback:
            args.append("--fp16")
        args.append("--calib=%s" % calib_cache)
    if not allow_tf32:
        # as our builder: FP32 layers really in FP32 (TensorRT's default is TF32). trtexec 11 still
        # takes --noTF32 and clears BuilderFlag.TF32, as the Python builder does (docs/tensorrt-rtx.md)
        args.append("--noTF32")
    # shapes
    if profile is not None:
        name, lo, opt, hi = profile
        args.extend(["--minShapes=%s:%s" % (name, shape_text(lo)),
                     "--optShapes=%s:%s" % (name, shape_text(opt)),
                     "--maxShapes=%s:%s" % (name, shape_text(hi))])
    if timing_cache:
        args.append("--timingCacheFile=%s" % timing_cache)
    if opt_level is not None:
        if mm < (8, 6):
            raise InputError("the builder optimization level needs TensorRT 8.6 or newer (this is "
                             "%s)" % version_string(version))
        if not 0 <= int(opt_level) <= 5:
            raise InputError("the builder optimization level must be 0..5, got %s" % opt_level)
        args.append("--builderOptimizationLevel=%d" % int(opt_level))
    args.append("--profilingVerbosity=detailed")
    args.append("--buildOnly" if mm < (8, 6) else "--skipInference")
    if verbose:
        args.append("--verbose")
    return args


def plan_command(plan, verbose=False, binary=None):
    """build_command for a build_plan.BuildPlan: the same precision, profile, paths and options as
    our builder's build of that plan."""
    version, options, decision = plan.caps.version, plan.options, plan.decision
    return build_command(
        version, plan.onnx_path, plan.engine_path, decision.precision, profile=plan.profile,
        workspace_mib=options.workspace_mib, timing_cache=plan.cache_path,
        opt_level=options.opt_level, calib_cache=plan.calib_cache,
        int8_fp16_fallback="FP16" in decision.flags,
        strongly_typed=decision.strongly_typed and version[0] < 11, verbose=verbose,
        binary=binary, allow_tf32=options.allow_tf32)


def benchmark_command(trt_version, engine_path, iterations=5000, warmup_ms=500, shape=None,
                      include_transfers=True, cuda_graph=False, binary=None):
    """trtexec timing exactly `iterations` runs of a built engine.

    `--iterations` and `--duration` are both minimums, so `--duration=0` makes the count exact.
    The defaults measure what `bisenet-bench` measures (host->device copies included, no CUDA
    graph), spelled for the version: 11 changed the defaults, so the same intent needs
    `--includeDataTransfers --noCudaGraph` there. shape: (input_name, shape) for a dynamic-batch
    engine.
    """
    version = parse_version(trt_version)
    generation_for_version(version)  # refuses what is older than 8.2
    major = version[0]
    args = [binary or find_trtexec(), "--loadEngine=%s" % engine_path,
            "--iterations=%d" % int(iterations), "--duration=0", "--warmUp=%d" % int(warmup_ms),
            "--avgRuns=%d" % min(int(iterations), 100)]
    if shape is not None:
        args.append("--shapes=%s:%s" % (shape[0], shape_text(shape[1])))
    if major >= 11:
        if include_transfers:
            args.append("--includeDataTransfers")
        if not cuda_graph:
            args.append("--noCudaGraph")
    else:
        if not include_transfers:
            args.append("--noDataTransfers")
        if cuda_graph:
            args.append("--useCudaGraph")
        args.append("--useSpinWait")
        if major == 8:
            args.append("--percentile=99")
    return args


def format_command(args):
    """A shell-ready line."""
    return " ".join(shlex.quote(str(a)) for a in args)


def run_trtexec(args):
    """Run trtexec, streaming its output; returns its exit code."""
    binary = args[0]
    if os.path.sep not in binary and shutil.which(binary) is None or (
            os.path.sep in binary and not os.path.exists(binary)):
        where = ("JetPack installs it as %s" % JETSON_TRTEXEC if is_jetson() else
                 "it comes with the TensorRT tar package or the libnvinfer-bin apt package, not "
                 "with the pip wheel")
        raise MissingDependencyError("trtexec not found (%s); %s" % (binary, where))
    log.info("running: %s", format_command(args))
    return subprocess.call([str(a) for a in args])
