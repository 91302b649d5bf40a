"""Shared fixtures and the skip rules for tests that need TensorRT or a GPU."""

import importlib.util

import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def _has(module):
    """True when `module` is really installed: a bare folder of type stubs (the namespace package
    that tensorrt-stubs leaves) does not count."""
    spec = importlib.util.find_spec(module)
    return spec is not None and spec.origin not in (None, "namespace")


def _has_cuda():
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    skip_trt = pytest.mark.skip(
        reason="needs the TensorRT Python package and an NVIDIA GPU; neither is installable on "
               "this machine (run on a GPU machine with `pip install -e '.[trt]'`)")
    skip_cuda = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA; none on this machine")
    for item in items:
        if "tensorrt" in item.keywords and not (_has("tensorrt") and _has_cuda()):
            item.add_marker(skip_trt)
        if "cuda" in item.keywords and not _has_cuda():
            item.add_marker(skip_cuda)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """Factory: a random-init checkpoint and its ONNX, made once per session and output kind.

    `tiny_export(output)` -> (folder, checkpoint path, onnx path): the paper's protocol at 1/16
    scale (a 128x64 input resized in the graph to a 64x32 network), 19 classes. Tests may add
    files of their own to the folder but must not change the two model files.
    """
    made = {}

    def make(output="labels"):
        if output not in made:
            from bisenet_deploy.checkpoint import load_model, save_checkpoint
            from bisenet_deploy.export.pipeline import ExportOptions, export_onnx

            folder = tmp_path_factory.mktemp("tiny-" + output)
            loaded = load_model(None, num_classes=19)
            ckpt = str(folder / "tiny.safetensors")
            save_checkpoint(ckpt, loaded.model, loaded.metadata)
            onnx_path = str(folder / "tiny.onnx")
            export_onnx(ExportOptions(checkpoint=ckpt, output_path=onnx_path,
                                      input_size=(128, 64), model_size=(64, 32), output=output,
                                      parity=False, simplify=False),
                        loaded=(loaded.model, loaded.metadata))
            made[output] = (folder, ckpt, onnx_path)
        return made[output]

    return make


@pytest.fixture(scope="session")
def tiny_dynamic_export(tmp_path_factory):
    """A random-init ONNX with a dynamic batch 1:4:8 and both outputs (labels, logits) at the
    tiny scale of `tiny_export`, made once per session (serving and repository tests)."""
    from bisenet_deploy.checkpoint import load_model
    from bisenet_deploy.export.pipeline import ExportOptions, export_onnx

    folder = tmp_path_factory.mktemp("tiny-dynamic")
    loaded = load_model(None, num_classes=19)
    path = str(folder / "dyn.onnx")
    export_onnx(ExportOptions(output_path=path, input_size=(128, 64), model_size=(64, 32),
                              output="both", dynamic_batch=(1, 4, 8), parity=False,
                              simplify=False), loaded=(loaded.model, loaded.metadata))
    return path
