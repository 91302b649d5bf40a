"""PyTorch -> ONNX for a chosen TensorRT target: the deploy graph, the target rules, the pipeline,
the target check and the parity proof against PyTorch.

Submodules import torch/onnx lazily where they can, so `import bisenet_deploy.export` is cheap.
"""
