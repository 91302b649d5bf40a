"""Label maps -> colour pictures with the model's palette, overlays, and PNG writing."""

from __future__ import annotations

import io
from typing import Any, Dict, Optional

import numpy as np

from ..errors import InputError
from ..portable.files.fileio import write_bytes_atomic
from ..runtime.images import colorize  # noqa: F401  (shared with the Segmenter API)


def palette_from_record(record: Optional[Dict[str, Any]], num_classes: Optional[int] = None):
    """The model's palette (RGB triples) from its metadata record; a generated one without."""
    model = (record or {}).get("model") or {}
    palette = model.get("palette")
    if palette:
        return [tuple(int(v) for v in c) for c in palette]
    n = int(num_classes or model.get("num_classes") or 256)
    return default_palette(n)


def default_palette(num_classes: int):
    """Distinct, deterministic colours for a model without a palette in its metadata."""
    from ..datasets import deterministic_palette

    return [tuple(c) for c in deterministic_palette(num_classes)]


def overlay(image: np.ndarray, colour: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a colourised label map over the RGB image (alpha = weight of the labels)."""
    if image.shape != colour.shape:
        raise InputError(f"image {image.shape} and label colours {colour.shape} differ in size")
    out = image.astype(np.float32) * (1.0 - alpha) + colour.astype(np.float32) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG bytes carrying the toolkit's mark (a text chunk), so a later run may replace the file
    and nothing else (portable.files.ownership)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from ..portable.files.ownership import PNG_TEXT

    info = PngInfo()
    for key, value in PNG_TEXT.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def write_png(path: str, array: np.ndarray) -> None:
    """Write an H x W x 3 RGB (or H x W grey) uint8 array as PNG, atomically."""
    write_bytes_atomic(path, png_bytes(array))
