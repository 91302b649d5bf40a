"""A class -> colour legend beside a picture, so a reader of an overlay knows what each colour is.

The legend lists the classes present in that image, largest share of pixels first: a swatch of
the palette colour, the class id and name, and the share. It is a white panel to the right of the
picture; the picture itself is left untouched (the panel grows the canvas, it never covers
pixels), and the canvas grows taller only when the list is longer than the picture is high.
Label ids outside the palette (ignore index, a foreign model) are drawn black by `colorize` and
listed as such.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

MARGIN = 8
SWATCH = 12
ROW_GAP = 4
UNKNOWN_COLOUR = (0, 0, 0)


def legend_entries(labels: np.ndarray, palette: Sequence[Sequence[int]],
                   class_names: Optional[Sequence[str]] = None
                   ) -> List[Tuple[Tuple[int, ...], str]]:
    """(colour, text) per class present in `labels`, largest share first."""
    ids, counts = np.unique(np.asarray(labels), return_counts=True)
    total = float(np.asarray(labels).size) or 1.0
    names = list(class_names or [])
    entries = []
    for i in np.argsort(-counts, kind="stable"):
        cid, share = int(ids[i]), 100.0 * counts[i] / total
        if 0 <= cid < len(palette):
            colour = tuple(int(v) for v in palette[cid])
            name = names[cid] if cid < len(names) else "class %d" % cid
        else:
            colour, name = UNKNOWN_COLOUR, "not a class of the model"
        entries.append((colour, "%d %s: %.1f%%" % (cid, name, share)))
    return entries


def with_legend(picture: np.ndarray, labels: np.ndarray, palette: Sequence[Sequence[int]],
                class_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """`picture` (H x W x 3 uint8) with the legend of `labels` to its right, as a new array."""
    from PIL import Image, ImageDraw, ImageFont

    entries = legend_entries(labels, palette, class_names)
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title = "class: share of pixels"
    boxes = [probe.textbbox((0, 0), text, font=font) for _, text in entries + [((0, 0, 0), title)]]
    text_w = max(b[2] - b[0] for b in boxes)
    row_h = max(SWATCH, max(b[3] - b[1] for b in boxes)) + ROW_GAP
    panel_w = MARGIN + SWATCH + MARGIN + text_w + MARGIN
    h, w = picture.shape[:2]
    height = max(h, MARGIN + row_h * (len(entries) + 1) + MARGIN)
    canvas = Image.new("RGB", (w + panel_w, height), (255, 255, 255))
    canvas.paste(Image.fromarray(np.ascontiguousarray(picture)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    x0 = w + MARGIN
    draw.text((x0, MARGIN), title, fill=(0, 0, 0), font=font)
    for row, (colour, text) in enumerate(entries, start=1):
        y = MARGIN + row * row_h
        draw.rectangle([x0, y, x0 + SWATCH - 1, y + SWATCH - 1], fill=colour,
                       outline=(96, 96, 96))
        draw.text((x0 + SWATCH + MARGIN, y), text, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


#: the band across the top of every overlay of a model with random weights
RANDOM_WEIGHTS_BAND = "RANDOM WEIGHTS: these labels mean nothing (no trained checkpoint)"


def warning_band_height(text: str = RANDOM_WEIGHTS_BAND) -> int:
    """Rows the band of `with_warning_band` covers (fewer on a picture less tall)."""
    from PIL import Image, ImageDraw, ImageFont

    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text,
                                                            font=ImageFont.load_default())
    return box[3] + 2 * ROW_GAP


def with_warning_band(picture: np.ndarray, text: str = RANDOM_WEIGHTS_BAND) -> np.ndarray:
    """`picture` with a red band across its top rows holding `text` in white, at the same size
    (a video's frames must keep theirs): nobody mistakes the picture for a real prediction."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.fromarray(np.ascontiguousarray(picture))
    draw = ImageDraw.Draw(canvas)
    band_h = min(picture.shape[0], warning_band_height(text))
    draw.rectangle([0, 0, picture.shape[1] - 1, band_h - 1], fill=(200, 0, 0))
    draw.text((MARGIN, ROW_GAP), text, fill=(255, 255, 255), font=ImageFont.load_default())
    return np.asarray(canvas)
