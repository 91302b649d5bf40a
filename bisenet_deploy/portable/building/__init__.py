"""Building engines: the plan (every check, nothing built), the TensorRT build steps,
the builder that strings them together, INT8 calibration, the parser check,
trtexec command lines, the FP16 re-export hint.

Python 3.6 compatible (see ../__init__.py).
"""
