"""How closely an engine built on a Jetson must agree with the desktop: the share of identical
labels against ONNX Runtime's labels for the bundle's sample image, per engine precision.

One source for both sides: the bundle's `jetson_run.py build` / `predict` read it from their copy
of this package (bisenet_trt), and comparison/profiles.py offers it as the "device" profile.
FP16 moves logits by a few 1e-3 of their range through the network, so near-tie pixels may flip;
FP32 engines differ from ONNX Runtime only by kernel choice and summation order.

Python 3.6 compatible; data only.
"""

#: engine precision -> smallest share of pixels with the same label as the desktop's
DEVICE_MIN_IDENTICAL = {"fp32": 0.999, "fp16": 0.98}
