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
               "this machine (run on a GPU machine with `pip install .[trt]`)")
    skip_cuda = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA; none on this machine")
    for item in items:
        if "tensorrt" in item.keywords and not (_has("tensorrt") and _has_cuda()):
            item.add_marker(skip_trt)
        if "cuda" in item.keywords and not _has_cuda():
            item.add_marker(skip_cuda)
