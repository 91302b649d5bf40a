"""Files the toolkit reads and writes: atomic writes, what may be replaced (ownership),
images, the Jetson bundle's manifest, the ONNX fields read without the onnx package,
the metadata record every artifact carries and its one validator.

Python 3.6 compatible (see ../__init__.py).
"""
