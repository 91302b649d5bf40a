"""Runner fixtures for the contract suite: every runner, each made fresh (not active) per test.

`RunnerCase.make()` returns a new, inactive runner; the TensorRT runner runs on the fake driver
(fake_cuda.py + fake_trt.py, both API generations) and, where TensorRT-RTX and a GPU are
present, on a real TensorRT-RTX engine built from the tiny model (that case is marked
`tensorrt` and skips elsewhere with the reason).
"""

import numpy as np
import pytest

#: (id, marks) of every runner the contract covers
RUNNER_KINDS = [
    ("onnxruntime", ()),
    ("torch", ()),
    ("tensorrt-fake-tensors", ()),
    ("tensorrt-fake-bindings", ()),
    ("tensorrt-rtx", (pytest.mark.tensorrt,)),
]


class RunnerCase(object):
    """A way to make one kind of runner, and what its engine or graph computes."""

    def __init__(self, kind, make, labels_are_argmax=True):
        self.kind = kind
        self.make = make
        self.labels_are_argmax = labels_are_argmax

    def batch(self, runner, n=1, seed=0):
        """A valid input for the active runner: its input spec with batch n, pixels 0..255."""
        spec = runner.input_spec()
        shape = tuple(n if d < 0 else d for d in spec.shape)
        shape = (n,) + shape[1:]
        return np.random.default_rng(seed).uniform(0, 255, shape).astype(spec.dtype)


@pytest.fixture(scope="session")
def rtx_tiny_engine(tmp_path_factory):
    """A TensorRT-RTX engine of the tiny model for this GPU (built once a session), or a skip."""
    from bisenet_deploy.portable.building.builder import BuildOptions, build_engine

    from .records import runtime_record
    from .rtx import rtx_gpu_or_skip
    from .tiny_models import export_onnx, tiny_net

    targets = rtx_gpu_or_skip()[2]
    folder = tmp_path_factory.mktemp("contract-rtx")
    record = runtime_record(output="both", target="trt11")
    onnx_path = export_onnx(folder / "tiny.onnx", tiny_net(), record)
    result = build_engine(onnx_path, record, BuildOptions(output=str(folder / "tiny.engine"),
                                                          flavour="tensorrt-rtx",
                                                          compute_capabilities=targets))
    return result.engine_path


@pytest.fixture(params=[pytest.param(kind, marks=marks) for kind, marks in RUNNER_KINDS])
def runner_case(request):
    """One RunnerCase per runner kind (the tiny model with labels and logits)."""
    kind = request.param
    if kind == "onnxruntime":
        from bisenet_deploy.ort_runner import OnnxRuntimeRunner

        path = request.getfixturevalue("tiny_models")["both"][0]
        return RunnerCase(kind, lambda: OnnxRuntimeRunner(path, providers="cpu", threads=1))
    if kind == "torch":
        from bisenet_deploy.runtime.torch_runner import TorchRunner

        from .tiny_models import tiny_net

        record = request.getfixturevalue("tiny_models")["both"][1]
        return RunnerCase(kind, lambda: TorchRunner(model=tiny_net(), record=record))
    from bisenet_deploy.portable.running.trt_runner import TensorRTRunner

    if kind == "tensorrt-rtx":
        path = request.getfixturevalue("rtx_tiny_engine")
        return RunnerCase(kind, lambda: TensorRTRunner(path))
    generation = kind.rsplit("-", 1)[1]
    path = request.getfixturevalue("fake_gpu")(generation, dynamic=False)
    return RunnerCase(kind, lambda: TensorRTRunner(path))
