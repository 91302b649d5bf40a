"""Running engines: the runner contract, host preprocessing, engine loading and its
I/O, inspection, CUDA graphs, the pycuda TensorRT runner.

Python 3.6 compatible (see ../__init__.py).
"""
