"""bisenet-deploy: BiSeNet V2 from a PyTorch checkpoint to verified ONNX and TensorRT engines.

Importing the package is cheap and needs none of the heavy optional dependencies (tensorrt,
pycuda, onnxruntime-gpu): every submodule imports those lazily, where they are used.
"""

__version__ = "0.1.0"
