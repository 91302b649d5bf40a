"""Seeded, realistic synthetic street-scene images (and their labels) for parity checks,
benchmarks and training a model that has seen streets.

Uniform noise is a poor test input: every backend disagrees on it in ways a real image never shows,
and it hides resize and normalization bugs. These images have what a Cityscapes frame has: a sky
gradient, buildings with windows, a road with lane marks, cars, poles, vegetation texture, edges
at many scales and a little sensor noise. The same seed always gives the same pixels.

`synthetic_scene` also returns the ground truth in Cityscapes train ids (LABELS), painted by the
same drawing steps as the pixels, so a model can be trained and scored on the scenes
(scripts/train_synthetic.py). Lane marks are road and wheels are car, as Cityscapes labels them.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

#: the Cityscapes train ids the scenes use (ignore index 255 is never painted: nothing drawn is
#: ambiguous at the scene's own resolution)
ROAD, SIDEWALK, BUILDING, POLE, VEGETATION, SKY, CAR = 0, 1, 2, 5, 8, 10, 13
LABELS = {"road": ROAD, "sidewalk": SIDEWALK, "building": BUILDING, "pole": POLE,
          "vegetation": VEGETATION, "sky": SKY, "car": CAR}
IGNORE = 255


def synthetic_image(width: int = 2048, height: int = 1024, seed: int = 0) -> np.ndarray:
    """An H x W x 3 uint8 RGB street scene, deterministic for a given (width, height, seed)."""
    return synthetic_scene(width, height, seed)[0]


def synthetic_scene(width: int = 2048, height: int = 1024, seed: int = 0
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """(image, labels): the scene of `synthetic_image` and its H x W uint8 train-id label map."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    lab = np.full((height, width), SKY, np.uint8)
    horizon = int(height * rng.uniform(0.38, 0.5))

    # sky: vertical gradient
    t = (yy / max(horizon, 1))[..., None]
    sky = (1 - t) * np.array([70, 130, 200], np.float32) + t * np.array([180, 200, 230], np.float32)
    img[:] = sky

    # buildings: blocks of varying height and colour, with window grids
    x = 0
    while x < width:
        bw = int(rng.uniform(0.05, 0.15) * width)
        top = int(horizon - rng.uniform(0.1, 0.35) * height)
        colour = rng.uniform(60, 170, 3)
        img[max(top, 0):horizon, x:x + bw] = colour
        lab[max(top, 0):horizon, x:x + bw] = BUILDING
        win = max(4, bw // 10)
        wy, wx = np.mgrid[max(top, 0):horizon, x:min(x + bw, width)]
        mask = ((wy // win) % 2 == 0) & ((wx // win) % 2 == 0)
        img[wy[mask], wx[mask]] = colour * 0.5
        x += bw

    # vegetation band with texture
    veg = (yy > horizon - height * 0.06) & (yy < horizon) & (np.sin(xx / 23.0) > 0.2)
    img[veg] = np.array([60, 120, 50], np.float32) + rng.normal(0, 12, (int(veg.sum()), 3))
    lab[veg] = VEGETATION

    # road below the horizon with a perspective darkening and lane marks
    road = yy >= horizon
    shade = ((yy - horizon) / max(height - horizon, 1))[..., None]
    img = np.where(road[..., None], np.array([128, 64, 128], np.float32) * (0.7 + 0.3 * shade), img)
    lab[road] = ROAD
    centre = width / 2
    lane = road & (np.abs(xx - centre - (yy - horizon) * 0.05) < 2 + (yy - horizon) * 0.01) \
        & (((yy // max(height // 40, 1)) % 2) == 0)
    img[lane] = 240

    # sidewalk strips, poles and cars
    side = road & ((xx < width * 0.12 + (yy - horizon) * -0.2) |
                   (xx > width * 0.88 + (yy - horizon) * 0.2))
    img[side] = np.array([230, 200, 210], np.float32) * 0.8
    lab[side] = SIDEWALK
    for _ in range(int(rng.integers(3, 7))):
        px = int(rng.uniform(0, width))
        pole = (slice(int(horizon * 0.5), horizon + int(height * 0.1)),
                slice(px, px + max(2, width // 300)))
        img[pole] = 150
        lab[pole] = POLE
    for _ in range(int(rng.integers(2, 6))):
        cw = int(rng.uniform(0.06, 0.14) * width)
        ch = int(cw * rng.uniform(0.4, 0.6))
        cx = int(rng.uniform(0.1, 0.8) * width)
        cy = int(horizon + rng.uniform(0.05, 0.35) * (height - horizon))
        colour = rng.uniform(0, 255, 3)
        img[cy:cy + ch, cx:cx + cw] = colour
        img[cy + ch - max(2, ch // 5):cy + ch, cx:cx + cw] = 20  # wheels / shadow
        lab[cy:cy + ch, cx:cx + cw] = CAR

    img += rng.normal(0, 3.0, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), lab
