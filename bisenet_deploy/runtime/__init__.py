"""Desktop runners (onnxruntime, PyTorch), the runner factory and the embeddable Segmenter API.

Importing this package is cheap: onnxruntime, torch, tensorrt and pycuda are imported only when a
runner is created or activated. `from bisenet_deploy.runtime import Segmenter, open_runner, read_image` works.
"""

_LAZY = {
    "Segmenter": (".api", "Segmenter"),
    "open_runner": (".factory", "open_runner"),
    "available_backends": (".factory", "available_backends"),
    "BACKENDS": (".factory", "BACKENDS"),
    "OnnxRuntimeRunner": ("..ort_runner", "OnnxRuntimeRunner"),
    "TorchRunner": (".torch_runner", "TorchRunner"),
    "read_image": (".images", "read_image"),
    "colorize": (".images", "colorize"),
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    return getattr(importlib.import_module(module, __name__), attr)
