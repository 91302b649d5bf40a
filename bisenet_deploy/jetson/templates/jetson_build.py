"""`jetson_run.py build`'s two ways to build the engine on the device: the toolkit's own builder
(bisenet_trt.building.builder, the code `bisenet-build-engine` runs on the desktop) or NVIDIA's trtexec,
after which the same sidecar is written, read off the engine (bisenet_trt.running.engine_load).

Runs on the device's Python 3.6; TensorRT is imported only here, when a build runs.
"""

import os
import subprocess
import time

from bisenet_trt.files import fileio
from bisenet_trt.shared.errors import EngineError, UserError


def build_with_builder(onnx_path, record, engine_path, precision, args):
    """The toolkit's own builder (bisenet_trt.building.builder), as bisenet-build-engine uses it."""
    from bisenet_trt.building import builder
    options = builder.BuildOptions(precision=precision, output=engine_path,
                                   workspace_mib=args.workspace, timing_cache=args.timing_cache,
                                   flavour="tensorrt")
    return builder.build_engine(onnx_path, record, options)


def build_with_trtexec(onnx_path, record, engine_path, precision, args):
    """NVIDIA's trtexec builds the engine; our sidecar is then written from the engine itself.

    The command is spelled from the same build plan our builder follows (build_plan.plan_for, as
    `bisenet-build-engine --trtexec` on the desktop): the same precision decision, profile,
    workspace and timing cache, so the two ways cannot drift apart.
    """
    from bisenet_trt.building import trtexec
    from bisenet_trt.building.build_plan import BuildOptions, plan_for
    from bisenet_trt.trt.capabilities import detect_capabilities
    from bisenet_trt.running.engine_load import sidecar_from_engine
    from bisenet_trt.trt.flavours import import_tensorrt
    from bisenet_trt.trt.gpu_info import query_gpu
    from bisenet_trt.trt.sidecar import write_sidecar
    trt = import_tensorrt("tensorrt")
    exe = args.trtexec_path
    if not os.path.isfile(exe):
        raise UserError("%s not found: install it with `sudo apt-get install libnvinfer-bin` "
                        "(part of JetPack) or build without --trtexec" % exe)
    options = BuildOptions(precision=precision, output=engine_path, workspace_mib=args.workspace,
                           timing_cache=args.timing_cache, flavour="tensorrt")
    options.validate()
    gpu = query_gpu(0)
    # here=False: jetson_run checked the output already, and trtexec writes it, not our builder
    plan = plan_for(detect_capabilities(trt), onnx_path, record, options, gpu, trt=trt,
                    here=False)
    shown = trtexec.plan_command(plan, binary=exe)
    save = "--saveEngine=%s" % plan.engine_path
    started = time.time()
    with fileio.atomic_output(engine_path) as tmp:
        line = ["--saveEngine=%s" % tmp if a == save else a for a in shown]
        print("running: " + trtexec.format_command(shown))
        rc = subprocess.call([str(a) for a in line])
        if rc != 0 or not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
            raise EngineError("trtexec failed (exit %d): read its output above; the usual causes "
                              "are too little memory (close other programs, or --workspace 512) "
                              "or an ONNX exported for another target than trt8.2" % rc)
        sidecar = sidecar_from_engine(
            trt, tmp, engine_path, gpu, plan.decision.precision, onnx_path, record,
            {"precision": precision, "workspace_mib": args.workspace,
             "timing_cache": plan.cache_path, "trtexec": trtexec.format_command(shown)},
            time.time() - started)
        write_sidecar(engine_path, sidecar)
    return sidecar
