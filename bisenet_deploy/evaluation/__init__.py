"""Accuracy and parity: metrics, backend comparison, dataset evaluation, predictions (tolerances
and the measures they judge are the comparison core, `bisenet_deploy.comparison`).

Submodules are imported on demand; importing this package pulls in no torch/onnx/onnxruntime.
"""
