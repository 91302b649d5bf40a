"""Accuracy and parity: metrics, tolerances, backend comparison, dataset evaluation, predictions.

Submodules are imported on demand; importing this package pulls in no torch/onnx/onnxruntime.
"""
