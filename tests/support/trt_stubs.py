"""tensorrt-stubs (10.13): where they are installed, and their text patched to parse.

tensorrt-stubs 10.13.0.35.1 does not parse as shipped (parameters named `in`, a parameter without a
default after defaulted ones); `patched_pyi` fixes those syntax errors only.
"""

import importlib.util
import os
import re


def stub_dirs():
    """(tensorrt/, tensorrt_bindings/) folders of the installed stubs, or None."""
    spec = importlib.util.find_spec("tensorrt_bindings")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindings = list(spec.submodule_search_locations)[0]
    top = os.path.join(os.path.dirname(bindings), "tensorrt")
    if not os.path.isfile(os.path.join(bindings, "tensorrt.pyi")) or not os.path.isdir(top):
        return None
    return top, bindings


def patched_pyi(text):
    """tensorrt_bindings/tensorrt.pyi's text with its two kinds of syntax errors fixed."""
    text = re.sub(r"\((self(?:: \w+)?), in: ", r"(\1, in_: ", text)
    return re.sub(r"(power: Weights = None, channel_axis: int)\)", r"\1 = ...)", text)
