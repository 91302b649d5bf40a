"""Code that must also run on a Jetson TX2 as JetPack 4.6 ships it.

Everything in this subpackage stays importable on Python 3.6 with numpy 1.19 and imports nothing
beyond the standard library, numpy, tensorrt and pycuda (the last two lazily), and only relative
imports inside this subpackage: `bisenet-export jetson` copies the folder as-is into the bundle
(as `bisenet_trt`). CI checks this with `vermin --target=3.6-` and an import scan
(tests/test_portable_compat.py).

Grouped by concern into floors, lowest first; each imports only itself and the floors below
(tests/test_layering.py): shared/ (errors, interrupts, timers, install hints, parity limits,
shell quoting),
files/ (atomic writes, ownership, images, manifests, ONNX fields, the record's validator), trt/ (TensorRT and the GPU as
found, engine paths, the sidecar), running/ (runners, engine loading), building/ (the build
plan, steps, builder, calibrator, trtexec lines). docs/DESIGN.md has the map.

So: no dataclasses, no `from __future__ import annotations`, no walrus, no positional-only
parameters, no built-in generics like `list[int]` in annotations (use `typing.List`).
"""
