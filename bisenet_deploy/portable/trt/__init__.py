"""TensorRT and the GPU as found here: versions and API generations, the two flavours,
capabilities, the precision policy, the GPU, the logger, CUDA contexts, where engines
go and the sidecar that describes one.

Python 3.6 compatible (see ../__init__.py).
"""
