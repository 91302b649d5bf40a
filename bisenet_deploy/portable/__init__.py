"""Code that must also run on a Jetson TX2 as JetPack 4.6 ships it.

Everything in this subpackage stays importable on Python 3.6 with numpy 1.19 and imports nothing
beyond the standard library, numpy, tensorrt and pycuda (the last two lazily), and only relative
imports inside this subpackage: `bisenet-export jetson` copies the folder as-is into the bundle.
CI checks this with `vermin --target=3.6-` and an import scan (tests/test_portable_compat.py).

So: no dataclasses, no `from __future__ import annotations`, no walrus, no positional-only
parameters, no built-in generics like `list[int]` in annotations (use `typing.List`).
"""
