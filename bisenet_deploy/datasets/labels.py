"""The label sets as the datasets publish them, and their label-id -> train-id mappings."""

from __future__ import annotations

from typing import Dict

import numpy as np

from ..errors import InputError

# --- Cityscapes --------------------------------------------------------------------------------

CITYSCAPES_CLASSES = [  # (train id name, official colour)
    ("road", (128, 64, 128)), ("sidewalk", (244, 35, 232)), ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)), ("fence", (190, 153, 153)), ("pole", (153, 153, 153)),
    ("traffic light", (250, 170, 30)), ("traffic sign", (220, 220, 0)),
    ("vegetation", (107, 142, 35)), ("terrain", (152, 251, 152)), ("sky", (70, 130, 180)),
    ("person", (220, 20, 60)), ("rider", (255, 0, 0)), ("car", (0, 0, 142)),
    ("truck", (0, 0, 70)), ("bus", (0, 60, 100)), ("train", (0, 80, 100)),
    ("motorcycle", (0, 0, 230)), ("bicycle", (119, 11, 32)),
]

#: Cityscapes label id -> train id (0..18); every id not listed maps to 255 (ignore).
CITYSCAPES_ID_TO_TRAINID: Dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
    25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}

_CITYSCAPES_LUT = np.full(256, 255, dtype=np.uint8)
for _label_id, _train_id in CITYSCAPES_ID_TO_TRAINID.items():
    _CITYSCAPES_LUT[_label_id] = _train_id


def cityscapes_ids_to_trainids(label_ids: np.ndarray) -> np.ndarray:
    """Map a Cityscapes `*_labelIds.png` array to train ids (uint8, same shape; others -> 255).

    Ids outside 0..255 (e.g. the license plate's -1 in some tools) also map to 255.
    """
    ids = np.asarray(label_ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"Cityscapes label ids must be an integer array, got {ids.dtype}")
    if ids.dtype == np.uint8:
        return _CITYSCAPES_LUT[ids]
    ids64 = ids.astype(np.int64)
    inside = (ids64 >= 0) & (ids64 <= 255)
    out = np.full(ids.shape, 255, dtype=np.uint8)
    out[inside] = _CITYSCAPES_LUT[ids64[inside]]
    return out


# --- COCO-Stuff 171 ----------------------------------------------------------------------------

# COCO-Stuff 164k label ids 1..91 (things, in id order, the 11 unused ids omitted) and 92..182
# (stuff). CoinCheung/BiSeNet drops the unused ids and renumbers the rest 0..170 in this order.
COCO_THINGS = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
]
#: 0-based COCO-Stuff label values (category id - 1) without annotations, removed to get 171.
COCO_STUFF_REMOVED_LABELS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
COCO_STUFF = [
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage",
    "cardboard", "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds",
    "counter", "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff", "fence",
    "floor-marble", "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower", "fog",
    "food-other", "fruit", "furniture-other", "grass", "gravel", "ground-other", "hill", "house",
    "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net",
    "paper", "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield",
    "railing", "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf",
    "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone", "straw",
    "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable",
    "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile",
    "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
]


def coco_stuff_label_map() -> np.ndarray:
    """LUT from the COCO-Stuff 164k label png values (0..181, 255) to the 171 train ids."""
    lut = np.full(256, 255, dtype=np.uint8)
    keep = [v for v in range(182) if v not in COCO_STUFF_REMOVED_LABELS]
    lut[keep] = np.arange(len(keep), dtype=np.uint8)
    return lut


# --- ADE20K (SceneParse150) --------------------------------------------------------------------

ADE20K_CLASSES = [
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug",
    "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole",
    "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van",
    "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball",
    "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light",
    "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board",
    "shower", "radiator", "glass", "clock", "flag",
]
