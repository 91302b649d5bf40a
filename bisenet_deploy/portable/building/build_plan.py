"""Step 1 of an engine build: every check that can refuse the build before TensorRT does any work.

`plan_build(onnx_path, record, options)` imports the TensorRT flavour asked for (or the default),
reads its capabilities once (capabilities.py), finds the GPU (TensorRT-RTX builds without one),
and `plan_for` then reads the ONNX, decides the precision (precision.py), the optimization
profile, the TensorRT-RTX targets, the output paths (checked writable) and the INT8 calibration
inputs, and returns a BuildPlan that the next steps (build_steps.py) carry out. The trtexec command
(`bisenet-build-engine --trtexec`) is spelled from the same `plan_for`, with the capabilities of
the TensorRT it is for, so the two cannot drift apart. `BuildOptions.validate` holds the checks
that need no TensorRT; the CLI calls it before anything else.

Python 3.6 compatible; TensorRT and pycuda are imported lazily.
"""

import logging
import os

from .build_checks import (calibration_batch_size, check_onnx_supported, profile_for_input,
                           resolve_targets)
from .calibrator import CalibrationBatches, list_calibration_images
from ..trt.capabilities import detect_capabilities, format_targets
from ..trt.cuda_context import import_pycuda_driver
from ..trt.engine_paths import (default_calibration_cache_path, default_engine_path,
                           default_timing_cache_path, engine_file_name)
from ..shared.errors import EngineError, InputError, MissingDependencyError
from ..files.fileio import check_writable, require_file
from ..trt.flavours import RTX, import_tensorrt
from ..trt.gpu_info import query_gpu
from ..files.onnx_reader import read_onnx_summary, record_from_summary
from ..files.ownership import check_replaceable
from ..trt.precision import (INT8_QDQ, decide_precision, default_precision,
                             onnx_graph_precision)
from ..shared.shell_words import quote_path
from ..trt.trt_api import version_string

log = logging.getLogger(__name__)


class BuildOptions(object):
    """What to build. Paths left None get the defaults of engine_paths.py; precision None builds
    the precision the ONNX was exported for (fp32 without metadata). flavour: "tensorrt" |
    "tensorrt-rtx" | None (full TensorRT when importable, else TensorRT-RTX); compute_capabilities:
    TensorRT-RTX targets ('7.5', (8, 6), ...), None for its portable default."""

    def __init__(self, precision=None, output=None, workspace_mib=None, timing_cache=None,
                 batch=None, opt_level=None, calib_images=None, calib_cache=None,
                 calib_batch_size=None, calib_max_images=None, verbose=False,
                 engines_root="engines", gpu_index=0, use_timing_cache=True,
                 toolkit_version=None, allow_tf32=False, flavour=None, compute_capabilities=None,
                 progress=None):
        self.precision = precision
        self.output = output
        self.workspace_mib = workspace_mib
        self.timing_cache = timing_cache
        self.batch = tuple(batch) if batch is not None else None
        self.opt_level = opt_level
        self.calib_images = calib_images
        self.calib_cache = calib_cache
        self.calib_batch_size = calib_batch_size
        self.calib_max_images = calib_max_images
        self.verbose = bool(verbose)
        self.engines_root = engines_root
        self.gpu_index = int(gpu_index)
        self.use_timing_cache = bool(use_timing_cache)
        #: TensorRT computes FP32 layers in TF32 on Ampere and newer unless told not to; off by
        #: default so an "fp32" engine really is FP32 (and matches PyTorch FP32 as parity expects)
        self.allow_tf32 = bool(allow_tf32)
        #: the bisenet-deploy version doing the build (the desktop CLI passes its own)
        self.toolkit_version = toolkit_version
        self.flavour = flavour
        self.compute_capabilities = (tuple(compute_capabilities) if compute_capabilities
                                     else None)
        #: None, or callable(total) -> a bar over the INT8 calibration batches (update, close)
        self.progress = progress

    def as_dict(self):
        return dict((k, list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items()
                    if k != "progress")  # a callable, not a build setting

    def validate(self):
        """Refuse values no TensorRT accepts (InputError naming the CLI flag)."""
        if self.workspace_mib is not None and int(self.workspace_mib) <= 0:
            raise InputError("--workspace must be a positive number of MiB, got %s"
                             % self.workspace_mib)
        if self.opt_level is not None and not 0 <= int(self.opt_level) <= 5:
            raise InputError("--opt-level must be 0..5, got %s" % self.opt_level)
        if (self.calib_images or self.calib_batch_size is not None
                or self.calib_max_images is not None) and self.precision != "int8":
            raise InputError("--calib-images/--calib-batch/--calib-count only apply to --int8")
        for flag, value in (("--calib-batch", self.calib_batch_size),
                            ("--calib-count", self.calib_max_images)):
            if value is not None and int(value) < 1:
                raise InputError("%s must be >= 1, got %d" % (flag, value))


class BuildPlan(object):
    """What the build steps need, decided and checked: the TensorRT module and its capabilities,
    the GPU (None for a TensorRT-RTX build without one), the ONNX bytes, summary and record, the
    precision decision, profile, targets, output paths and calibration inputs."""

    def __init__(self, **values):
        self.trt = values.pop("trt")
        self.caps = values.pop("caps")
        self.gpu = values.pop("gpu")
        self.options = values.pop("options")
        self.onnx_path = values.pop("onnx_path")
        self.onnx_bytes = values.pop("onnx_bytes")
        self.summary = values.pop("summary")
        self.record = values.pop("record")
        self.requested = values.pop("requested")
        self.onnx_precision = values.pop("onnx_precision")
        self.decision = values.pop("decision")
        self.profile = values.pop("profile")
        self.targets = values.pop("targets")
        self.engine_path = values.pop("engine_path")
        self.cache_path = values.pop("cache_path")
        self.calib = values.pop("calib")
        self.calib_cache = values.pop("calib_cache")
        self.calibrator = None  # set by build_steps.configure_build for INT8
        if values:
            raise TypeError("unknown BuildPlan field(s): %s" % ", ".join(sorted(values)))

    @property
    def compute_capability(self):
        return self.gpu.compute_capability if self.gpu is not None else None

    def redecide_precision(self, builder):
        """The builder's own fast-FP16/INT8 answer (8.2-10.x) overrides the SM table; new
        warnings are logged."""
        if not self.caps.features.platform_fast_flags or self.gpu is None:
            return
        before = set(self.decision.warnings)
        self.decision = decide_precision(
            self.requested, self.compute_capability, self.caps, self.onnx_precision,
            platform_fast_fp16=builder.platform_has_fast_fp16,
            platform_fast_int8=builder.platform_has_fast_int8)
        for message in self.decision.warnings:
            if message not in before:
                log.warning("%s", message)


def find_gpu(caps, index):
    """The GPU to build on; None for a TensorRT-RTX build on a machine without one."""
    try:
        return query_gpu(index)
    except MissingDependencyError as exc:
        if not caps.builds_without_gpu:
            raise
        log.debug("GPU query: %s", exc)
        log.info("no NVIDIA GPU here: %s builds ahead of time; the GPU that first loads the "
                 "engine compiles its kernels", caps.label)
        return None


def _read_onnx(onnx_path, record):
    with open(onnx_path, "rb") as f:
        onnx_bytes = f.read()
    summary = read_onnx_summary(onnx_bytes, onnx_path)
    if record is None:
        record = record_from_summary(summary, onnx_path)
    if record is None:
        log.warning("%s has no bisenet_deploy metadata: preprocessing and classes will be "
                    "unknown to the runtime; export with `bisenet-export onnx`", onnx_path)
    return onnx_bytes, summary, record


def _check_options(options, caps):
    options.validate()
    if options.opt_level is not None and not caps.features.optimization_level:
        raise InputError("--opt-level needs TensorRT 8.6 or newer (this is %s)" % caps.label)


def _calibration(plan_values, options, caps, in_dims):
    """(CalibrationBatches or None, calibration cache path) for an INT8 build."""
    record, profile = plan_values["record"], plan_values["profile"]
    if not caps.int8_calibration:
        raise EngineError("%s has no INT8 entropy calibrator" % caps.label)
    if record is None:
        raise InputError("INT8 calibration needs the ONNX's bisenet_deploy metadata to prepare "
                         "images exactly as the engine is fed: export with `bisenet-export onnx`")
    import_pycuda_driver()
    calib_cache = options.calib_cache or default_calibration_cache_path(plan_values["engine_path"])
    check_writable(calib_cache, "the calibration cache")
    calib = None
    if options.calib_images:
        paths = list_calibration_images(options.calib_images)
        batch_size = calibration_batch_size(profile, in_dims[0], options)
        calib = CalibrationBatches(paths, record, batch_size, options.calib_max_images,
                                   progress=options.progress)
        log.info("INT8 calibration: %d batch(es) of %d from %s", len(calib), batch_size,
                 options.calib_images)
    elif not os.path.isfile(calib_cache):
        raise InputError("INT8 needs calibration images (--calib-images DIR) or an existing "
                         "calibration cache (%s)" % calib_cache)
    return calib, calib_cache


def plan_build(onnx_path, record, options, trt=None, gpu=None):
    """Check everything that can be refused before any build work; returns a BuildPlan.

    record: the ONNX's bisenet_deploy metadata dict, or None to read it from the file itself.
    trt/gpu: injected module and GpuInfo (defaults: import the flavour asked for, query the GPU).
    """
    onnx_path = str(onnx_path)
    require_file(onnx_path, "ONNX file")
    options.validate()
    trt = trt or import_tensorrt(options.flavour)
    caps = detect_capabilities(trt)
    log.info("%s, API generation %s", caps.label, caps.generation)
    if gpu is None:
        gpu = find_gpu(caps, options.gpu_index)
    if gpu is not None:
        log.info("GPU %s", gpu.describe())
    return plan_for(caps, onnx_path, record, options, gpu, trt=trt)


def plan_for(caps, onnx_path, record, options, gpu, trt=None, compute_capability=None,
             here=True):
    """The BuildPlan of building `onnx_path` with the TensorRT `caps` describes, on `gpu` (a
    GpuInfo, None when unknown or for a TensorRT-RTX build without one; `compute_capability` then
    may still name the target GPU's).

    here=False plans for another tool or machine (the trtexec command): the engine path stays as
    given or relative, outputs are not checked, and INT8 takes the existing calibration cache
    (trtexec cannot run our calibrator) instead of calibration images.
    """
    onnx_path = str(onnx_path)
    targets = resolve_targets(caps, options.compute_capabilities, gpu)
    if targets is not None:
        log.info("%s targets: %s%s", caps.label, format_targets(targets),
                 "" if options.compute_capabilities else " (the portable default)")
    onnx_bytes, summary, record = _read_onnx(onnx_path, record)
    onnx_precision = onnx_graph_precision(record)
    requested = options.precision or default_precision(record)
    cc = gpu.compute_capability if gpu is not None else compute_capability
    try:
        decision = decide_precision(requested, cc, caps, onnx_precision)
    except InputError as exc:
        if requested == "fp16" and onnx_precision == "fp32" and caps.strong_typing == "always":
            from .reexport import fp16_rebuild_hint

            raise InputError("%s: %s" % (exc, fp16_rebuild_hint(onnx_path, record))) from None
        raise
    for message in check_onnx_supported(record, summary, caps):
        log.warning("%s", message)
    if len(summary["inputs"]) != 1:
        raise InputError("%s has %d inputs; bisenet-deploy engines take exactly one image input"
                         % (onnx_path, len(summary["inputs"])))
    in_name, in_dims = summary["inputs"][0]
    profile = profile_for_input(in_name, in_dims, record, options.batch)
    _check_options(options, caps)
    engine_path = options.output or _default_engine_path(onnx_path, caps, gpu, decision, options)
    if here:
        engine_path = os.path.abspath(str(engine_path))
        if os.path.isdir(engine_path):
            raise InputError("-o %s is a folder; give the engine's file name (e.g. %s)"
                             % (options.output or engine_path,
                                os.path.join(str(options.output or engine_path), "model.engine")))
        check_replaceable(engine_path, "engine")  # only an engine of ours, with its sidecar
        check_writable(engine_path, "the engine")
    cache_path = None
    if options.use_timing_cache and caps.timing_cache:
        cache_path = options.timing_cache or default_timing_cache_path(engine_path)
        if here:
            check_writable(cache_path, "the timing cache")
    elif options.timing_cache and not caps.timing_cache:
        log.info("%s has no timing cache (its timing-cache calls do nothing): --timing-cache "
                 "ignored", caps.label)
    values = dict(trt=trt, caps=caps, gpu=gpu, options=options, onnx_path=onnx_path,
                  onnx_bytes=onnx_bytes, summary=summary, record=record, requested=requested,
                  onnx_precision=onnx_precision, decision=decision, profile=profile,
                  targets=targets, engine_path=engine_path, cache_path=cache_path, calib=None,
                  calib_cache=None)
    if decision.precision == INT8_QDQ and (options.calib_images or options.calib_cache or any(
            v is not None for v in (options.calib_batch_size, options.calib_max_images))):
        raise InputError("this ONNX is a Q/DQ graph, calibrated when it was exported (--precision "
                         "int8): TensorRT takes its scales from the graph, so --calib-images, "
                         "--calib-cache, --calib-batch and --calib-count would do nothing; build it "
                         "without them")
    if decision.needs_calibrator and here:
        values["calib"], values["calib_cache"] = _calibration(values, options, caps, in_dims)
    elif decision.precision == "int8":
        values["calib_cache"] = options.calib_cache or default_calibration_cache_path(engine_path)
        if not os.path.isfile(values["calib_cache"]):
            log.warning("trtexec cannot run our calibrator: the calibration cache %s must exist "
                        "first (`bisenet-build-engine %s --int8 --calib-images DIR` writes it)",
                        values["calib_cache"], quote_path(onnx_path))
    for message in decision.warnings:
        log.warning("%s", message)
    for message in decision.notes:
        log.info("%s", message)
    return BuildPlan(**values)


def _default_engine_path(onnx_path, caps, gpu, decision, options):
    """engine_paths.default_engine_path; for full TensorRT and an unknown GPU (a trtexec command
    for another machine) engines/trt<version>/<file>."""
    if gpu is None and caps.flavour != RTX:
        log.info("target GPU unknown: give --gpu-name and --compute-capability for the usual "
                 "engines/<gpu>-sm<XY>-trt<version>/ folder")
        return os.path.join(options.engines_root, "trt%s" % version_string(caps.version),
                            engine_file_name(onnx_path, decision.precision))
    return default_engine_path(
        onnx_path, gpu.name if gpu else None, gpu.compute_capability if gpu else None,
        caps.version, decision.precision, options.engines_root, caps.flavour,
        options.compute_capabilities)
