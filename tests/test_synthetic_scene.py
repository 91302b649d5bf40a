"""The synthetic street scenes: the images stay what they were (parity numbers and other tests
depend on their pixels) and the ground-truth labels describe them."""

import hashlib

import numpy as np
import pytest

from bisenet_deploy.synthetic import synthetic_image

#: sha256 of the pixels as synthetic.py drew them before it learned to label them
PINNED = {
    (64, 32, 0): "06b6d2dd79165e6779c1a37f355ed8147697f1251f2bc19aeba27718d0ba52b1",
    (257, 131, 3): "2339a074fb8bc384838b406506d1673891c102d026cca9f0932058a055be21ee",
    (512, 256, 7): "70d4ad9e425d5c13a472f2297ee569b20783bd6de9b5f806d338a19bbdc6ee58",
    # the INT8 gate's first held-out scene at the default input size (docs/int8.md's numbers)
    (2048, 1024, 910000): "20b9b83ddae37860ecd8d4f4552c57757600b41af7cef0b7d66770f95eaf2298",
}


@pytest.mark.parametrize("size_seed", sorted(PINNED))
def test_images_are_unchanged(size_seed):
    image = synthetic_image(*size_seed)
    assert image.shape == (size_seed[1], size_seed[0], 3) and image.dtype == np.uint8
    assert hashlib.sha256(image.tobytes()).hexdigest() == PINNED[size_seed]


from bisenet_deploy.synthetic import (CAR, IGNORE, LABELS, POLE, ROAD,  # noqa: E402
                                      SIDEWALK, SKY, VEGETATION, synthetic_scene)


def test_labels_are_cityscapes_train_ids():
    from bisenet_deploy.datasets import get_dataset

    names = get_dataset("cityscapes").class_names
    assert {name: names[i] for name, i in LABELS.items()} == {n: n for n in LABELS}


@pytest.mark.parametrize("size_seed", [(257, 131, 3), (512, 256, 7)])
def test_scene_is_the_image_plus_a_label_map(size_seed):
    image, labels = synthetic_scene(*size_seed)
    assert np.array_equal(image, synthetic_image(*size_seed))
    assert labels.shape == image.shape[:2] and labels.dtype == np.uint8
    assert set(np.unique(labels).tolist()) <= set(LABELS.values()) | {IGNORE}
    # every class is drawn in these scenes
    assert set(np.unique(labels).tolist()) == set(LABELS.values())


def test_labels_sit_where_their_colours_are():
    image, labels = synthetic_scene(512, 256, seed=7)
    rgb = image.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    sky = labels == SKY
    assert np.all(b[sky] > r[sky] + 20)  # blue to light blue gradient, noise sigma 3
    veg = labels == VEGETATION
    assert np.mean(g[veg] > r[veg]) > 0.95 and np.mean(g[veg] > b[veg]) > 0.95
    pole = labels == POLE
    assert np.all(np.abs(rgb[pole] - 150) < 20)
    side = labels == SIDEWALK
    assert np.all(np.abs(rgb[side] - [184, 160, 168]) < 20)
    road = labels == ROAD
    lane_mark = np.all(rgb > 200, axis=-1)
    plain_road = road & ~lane_mark
    assert np.mean(np.abs(r[plain_road] - 2 * g[plain_road]) < 20) > 0.99  # (128, 64, 128) shaded
    assert np.mean(np.abs(r[plain_road] - b[plain_road]) < 15) > 0.99
    assert lane_mark[road].any()  # lane marks are labelled road, as Cityscapes does


def test_cars_and_poles_are_labelled_over_what_they_cover():
    image, labels = synthetic_scene(512, 256, seed=7)
    # a pole crosses the horizon: labelled pole above it (sky/building/vegetation) and below it
    pole_rows = np.nonzero((labels == POLE).any(axis=1))[0]
    road_rows = np.nonzero((labels == ROAD).any(axis=1))[0]
    assert pole_rows.min() < road_rows.min() < pole_rows.max()
    # the dark wheel strip at a car's bottom is car
    dark = np.all(image < 40, axis=-1)
    assert dark.any() and np.all(labels[dark] == CAR)
