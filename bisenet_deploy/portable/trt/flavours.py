"""Which TensorRT library to use: full TensorRT or TensorRT for RTX, imported lazily.

Two flavours share one Python API shape but are separate libraries with separate engine formats:
- "tensorrt": NVIDIA's full TensorRT (`import tensorrt`), 8.2 on a Jetson TX2 up to 11.x. It builds
  on the GPU it runs on, and its engines run only there.
- "tensorrt-rtx": TensorRT for RTX (`import tensorrt_rtx`, or the pip wheel's module
  `tensorrt_rtx_bindings`), for RTX 20-50 class GPUs. It builds ahead of time without a GPU for a
  list of compute capabilities and compiles its kernels on the GPU when the engine is loaded.
Neither loads the other's engines. The default is full TensorRT when it is importable, else
TensorRT-RTX (docs/tensorrt-rtx.md).

Python 3.6 compatible; nothing here imports a TensorRT at module level.
"""

import importlib

from ..shared.errors import MissingDependencyError
from ..shared.install_hints import IN_BUNDLE, pip_extra, tensorrt_hint
from .trt_api import is_jetson

FULL = "tensorrt"
RTX = "tensorrt-rtx"
FLAVOURS = (FULL, RTX)

#: the modules each flavour may be imported as, tried in order
MODULES = {FULL: ("tensorrt",), RTX: ("tensorrt_rtx", "tensorrt_rtx_bindings")}
LABELS = {FULL: "TensorRT", RTX: "TensorRT-RTX"}
#: the `pip install` extra that brings each flavour
EXTRAS = {FULL: "trt", RTX: "rtx"}


def flavour_label(flavour):
    """'TensorRT' / 'TensorRT-RTX' for messages."""
    return LABELS.get(flavour, str(flavour))


def check_flavour(flavour):
    if flavour not in FLAVOURS:
        raise MissingDependencyError("unknown TensorRT flavour %r (choose %s)"
                                     % (flavour, " or ".join(FLAVOURS)))
    return flavour


def flavour_of(module):
    """The flavour of an imported TensorRT module: its own `flavour` attribute (test doubles), else
    its module name (`tensorrt_rtx*` is TensorRT-RTX)."""
    declared = getattr(module, "flavour", None)
    if declared in FLAVOURS:
        return declared
    name = str(getattr(module, "__name__", "") or "")
    return RTX if name.startswith("tensorrt_rtx") else FULL


def is_real_tensorrt(module):
    """A usable TensorRT module has a version and a Builder; a stub-only or namespace package
    (e.g. from `tensorrt-stubs`) has neither."""
    return module is not None and hasattr(module, "__version__") and hasattr(module, "Builder")


def install_hint(flavour=FULL):
    """What to install to get `flavour` here (worded by install_hints.py)."""
    if flavour == RTX:
        return ("install it from the bisenet-deploy checkout: %s (the tensorrt-rtx-cu12 wheels; "
                "they build engines without a GPU, for RTX 20-50 class GPUs)" % pip_extra("rtx"))
    return tensorrt_hint(jetson=is_jetson())


def _try_import(flavour):
    """(module, None) or (None, reason)."""
    reason = "not installed"
    for name in MODULES[flavour]:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            reason = str(exc) or reason
            continue
        if is_real_tensorrt(module):
            return module, None
        reason = "the installed %r package is not a working %s (type stubs only?)" % (
            name, flavour_label(flavour))
    return None, reason


def import_flavour(flavour):
    """Import `flavour` or raise MissingDependencyError saying what to install."""
    module, reason = _try_import(check_flavour(flavour))
    if module is None:
        raise MissingDependencyError("%s's Python package is not available (%s); %s"
                                     % (flavour_label(flavour), reason, install_hint(flavour)))
    return module


def import_tensorrt(flavour=None):
    """The TensorRT module to use: `flavour` when given, else full TensorRT when importable, else
    TensorRT-RTX (in a Jetson bundle: full TensorRT only); MissingDependencyError naming both when
    neither is there."""
    if IN_BUNDLE and flavour is None:  # a Jetson bundle: JetPack's TensorRT, nothing else
        flavour = FULL
    if flavour is not None:
        return import_flavour(flavour)
    full, full_reason = _try_import(FULL)
    if full is not None:
        return full
    rtx, _ = _try_import(RTX)
    if rtx is not None:
        return rtx
    raise MissingDependencyError(
        "no TensorRT is available (%s); %s, or for TensorRT-RTX (builds without a GPU, runs on "
        "RTX 20-50 class GPUs) %s" % (full_reason, install_hint(FULL), pip_extra("rtx")))


def available_flavours():
    """The flavours importable here, in preference order (imports them to check they are real)."""
    return [f for f in FLAVOURS if _try_import(f)[0] is not None]
