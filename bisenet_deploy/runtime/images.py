"""Image and label-map helpers every consumer of a runner shares (Segmenter API, bench, compare,
eval, predict), so an image is read, a label map resized and coloured the same way everywhere.

numpy and Pillow only (Pillow imported when an image is read).
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from ..errors import InputError

#: colour of labels outside the palette (ignore index, garbage)
INVALID_COLOUR = (0, 0, 0)


def read_image(path: str) -> np.ndarray:
    """An image file -> H x W x 3 uint8 RGB, 16-bit images scaled to 8 bits (the one reader of
    `portable.files.image_io`); a missing path is an InputError, an unreadable file an
    UnusableFileError."""
    from ..portable.files.image_io import read_image_rgb

    return read_image_rgb(path)


def resize_labels_nearest(labels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize of an H x W label map, sampling at pixel centres.

    Source index = floor((dst + 0.5) * in / out) (PIL's NEAREST, OpenCV's INTER_NEAREST_EXACT,
    PyTorch's 'nearest-exact'); for integer up-scaling every source pixel becomes a full block.
    """
    in_h, in_w = labels.shape[:2]
    if (in_w, in_h) == (width, height):
        return labels
    ys = np.minimum(((np.arange(height) + 0.5) * in_h / height).astype(np.int64), in_h - 1)
    xs = np.minimum(((np.arange(width) + 0.5) * in_w / width).astype(np.int64), in_w - 1)
    return labels[ys[:, None], xs[None, :]]


def labels_from_outputs(outputs: Dict[str, np.ndarray]) -> np.ndarray:
    """The N x H x W int32 label maps of one runner result: "labels", else argmax of "logits"
    (NaN logits never win the argmax)."""
    if "labels" in outputs:
        return np.asarray(outputs["labels"]).astype(np.int32, copy=False)
    if "logits" in outputs:
        logits = np.asarray(outputs["logits"])
        return np.argmax(np.nan_to_num(logits, nan=-np.inf), axis=1).astype(np.int32)
    raise InputError(f"the model returned neither 'labels' nor 'logits' (got "
                     f"{', '.join(outputs) or 'nothing'})")


def colorize(labels: np.ndarray, palette: Sequence[Sequence[int]],
             invalid_colour=INVALID_COLOUR) -> np.ndarray:
    """H x W labels -> H x W x 3 uint8 RGB; labels outside the palette get `invalid_colour`."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"a label map must be H x W, got shape {labels.shape}")
    lut = np.empty((len(palette) + 1, 3), dtype=np.uint8)
    lut[:len(palette)] = np.asarray(palette, dtype=np.int64).reshape(-1, 3).clip(0, 255)
    lut[len(palette)] = invalid_colour
    idx = labels.astype(np.int64)
    idx = np.where((idx < 0) | (idx >= len(palette)), len(palette), idx)
    return lut[idx]
