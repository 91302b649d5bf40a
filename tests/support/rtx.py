"""TensorRT-RTX on this machine's GPU, for the tests that run its engines (GPU-marked)."""

import pytest


def rtx_gpu_or_skip():
    """(tensorrt_rtx module, GpuInfo, targets for BuildOptions.compute_capabilities), or a skip
    with the reason (no TensorRT-RTX, no GPU, or a GPU TensorRT-RTX cannot target)."""
    from bisenet_deploy.errors import MissingDependencyError
    from bisenet_deploy.portable.trt.capabilities import detect_capabilities
    from bisenet_deploy.portable.trt.flavours import import_flavour
    from bisenet_deploy.portable.trt.gpu_info import query_gpu

    try:
        trt = import_flavour("tensorrt-rtx")
        gpu = query_gpu(0)
    except MissingDependencyError as exc:
        pytest.skip("needs TensorRT-RTX and a GPU (%s)" % exc)
    caps = detect_capabilities(trt)
    if gpu.compute_capability not in caps.compute_targets:
        pytest.skip("TensorRT-RTX cannot target this GPU (%s)" % gpu.describe())
    targets = None if gpu.compute_capability in caps.portable_targets else \
        ["%d.%d" % gpu.compute_capability]
    return trt, gpu, targets
