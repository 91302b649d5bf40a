"""Dataset presets: the class names, colours and preprocessing that travel with a model's weights.

A segmentation checkpoint is only usable with the preprocessing it was trained with and the class
names its output channels mean. These presets hold those facts for the datasets the public
CoinCheung/BiSeNet BiSeNetV2 checkpoints were trained on (Cityscapes 19, COCO-Stuff 171,
ADE20K 150), plus `custom_dataset()` for anything else. `DatasetInfo.to_model_metadata()` turns a
preset into the `ModelMetadata` written into checkpoints, ONNX files and engine sidecars.

Facts and their sources:
- mean/std are for pixel / 255 in RGB order, as CoinCheung/BiSeNet trains (images read with
  OpenCV and flipped to RGB): Cityscapes (0.3257, 0.3690, 0.3223) / (0.2112, 0.2148, 0.2115);
  COCO-Stuff and ADE20K from that project's `configs/bisenetv2_coco.py` / `_ade20k.py`.
- train_size is the training crop, [width, height]: 1024x512 (Cityscapes), 640x640 (the others).
- Cityscapes: the 19 official train-id classes with the official colours.
- COCO-Stuff 171: the COCO-Stuff 164k label set (91 thing + 91 stuff ids) without the 11 thing
  ids that have no annotations (street sign, hat, shoe, eye glasses, plate, mirror, window, desk,
  door, blender, hair brush), in label order: 80 things then 91 stuff. Official label names.
- ADE20K: the 150 SceneParse150 classes (label 0 "other" is ignored, labels 1..150 -> 0..149).
- COCO-Stuff and ADE20K ship no single official palette, so they get `deterministic_palette()`.
- `cityscapes-mmseg`: the same classes with mmsegmentation's preprocessing (ImageNet mean/std,
  given there on 0..255 as 123.675/116.28/103.53 and 58.395/57.12/57.375, RGB; 1024x1024 crops).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from .errors import InputError
from .metadata import palette_problem

__all__ = [
    "CITYSCAPES_ID_TO_TRAINID",
    "DATASETS",
    "DatasetInfo",
    "as_dataset_info",
    "cityscapes_ids_to_trainids",
    "custom_dataset",
    "dataset_names",
    "deterministic_palette",
    "get_dataset",
    "guess_dataset",
    "load_dataset_file",
    "resolve_dataset",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DatasetInfo:
    """What a model's output channels mean and how its input must be prepared.

    `mean`/`std` apply to pixel / 255 in `channel_order`; `train_size` is [width, height].
    """

    name: str
    class_names: List[str]
    palette: List[List[int]]
    mean: List[float]
    std: List[float]
    channel_order: str = "rgb"
    ignore_index: int = 255
    train_size: List[int] = field(default_factory=lambda: [1024, 512])

    def __post_init__(self) -> None:
        n = len(self.class_names)
        if n < 1:
            raise InputError(f"dataset {self.name!r} needs at least one class")
        problem = palette_problem(self.palette, n)
        if problem:
            raise InputError(f"dataset {self.name!r}: {problem}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise InputError(f"dataset {self.name!r}: mean and std need 3 values each, std > 0")
        if self.channel_order not in ("rgb", "bgr"):
            raise InputError(f"dataset {self.name!r}: channel_order must be 'rgb' or 'bgr', "
                             f"got {self.channel_order!r}")
        if len(self.train_size) != 2 or any(int(v) <= 0 for v in self.train_size):
            raise InputError(f"dataset {self.name!r}: train_size must be [width, height]")
        self.class_names = [str(c) for c in self.class_names]
        self.palette = [[int(v) for v in c] for c in self.palette]
        self.mean = [float(v) for v in self.mean]
        self.std = [float(v) for v in self.std]
        self.train_size = [int(v) for v in self.train_size]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_model_metadata(self, arch: str, *, weights: str = "checkpoint",
                          source: str = "bisenet-deploy",
                          checkpoint_sha256: Optional[str] = None):
        """The `ModelMetadata` record for a model of architecture `arch` trained on this dataset."""
        from .metadata import ModelMetadata

        return ModelMetadata(
            arch=arch, num_classes=self.num_classes, dataset=self.name,
            class_names=list(self.class_names), palette=[list(c) for c in self.palette],
            mean=list(self.mean), std=list(self.std), channel_order=self.channel_order,
            ignore_index=self.ignore_index, train_size=list(self.train_size),
            weights=weights, source=source, checkpoint_sha256=checkpoint_sha256)

    @classmethod
    def from_model_metadata(cls, metadata) -> "DatasetInfo":
        """The dataset part of a `ModelMetadata` (e.g. read back from a checkpoint)."""
        return cls(name=metadata.dataset, class_names=list(metadata.class_names),
                   palette=[list(c) for c in metadata.palette], mean=list(metadata.mean),
                   std=list(metadata.std), channel_order=metadata.channel_order,
                   ignore_index=metadata.ignore_index, train_size=list(metadata.train_size))

    def replace(self, **changes) -> "DatasetInfo":
        return dataclasses.replace(self, **changes)


def deterministic_palette(num_classes: int) -> List[List[int]]:
    """Distinct colours for datasets without an official palette, the same on every machine.

    Class i gets the bit-interleaved colour of i + 1 (the scheme of the PASCAL VOC colour map,
    shifted so no class is black): the bits of i + 1 are spread over the high bits of R, G and B.
    Colours are unique for up to 2**24 - 1 classes.
    """
    if num_classes < 1:
        raise InputError(f"num_classes must be >= 1, got {num_classes}")
    palette = []
    for index in range(num_classes):
        code = index + 1
        rgb = [0, 0, 0]
        shift = 7
        while code and shift >= 0:
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << shift
            code >>= 3
            shift -= 1
        palette.append(rgb)
    return palette


# --- Cityscapes --------------------------------------------------------------------------------

_CITYSCAPES = [  # (train id name, official colour)
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
_COCO_THINGS = [
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
_COCO_STUFF = [
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

_ADE20K = [
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


def _presets() -> Dict[str, DatasetInfo]:
    coco_names = _COCO_THINGS + _COCO_STUFF
    city = DatasetInfo(
        name="cityscapes", class_names=[n for n, _ in _CITYSCAPES],
        palette=[list(c) for _, c in _CITYSCAPES],
        mean=[0.3257, 0.3690, 0.3223], std=[0.2112, 0.2148, 0.2115],
        channel_order="rgb", ignore_index=255, train_size=[1024, 512])
    return {
        "cityscapes": city,
        "cityscapes-mmseg": city.replace(name="cityscapes-mmseg", mean=list(IMAGENET_MEAN),
                                         std=list(IMAGENET_STD), train_size=[1024, 1024]),
        "coco-stuff": DatasetInfo(
            name="coco-stuff", class_names=coco_names,
            palette=deterministic_palette(len(coco_names)),
            mean=[0.46962251, 0.4464104, 0.40718787], std=[0.27469736, 0.27012361, 0.28515933],
            channel_order="rgb", ignore_index=255, train_size=[640, 640]),
        "ade20k": DatasetInfo(
            name="ade20k", class_names=list(_ADE20K), palette=deterministic_palette(len(_ADE20K)),
            mean=[0.49343230, 0.46819794, 0.43106043], std=[0.25680755, 0.25506608, 0.27422913],
            channel_order="rgb", ignore_index=255, train_size=[640, 640]),
    }


#: The presets by canonical name. Use `get_dataset()` for a fresh copy you may modify.
DATASETS: Dict[str, DatasetInfo] = _presets()

_ALIASES = {
    "cityscapes": "cityscapes", "city": "cityscapes", "cityscape": "cityscapes",
    "cityscapes-mmseg": "cityscapes-mmseg", "city-mmseg": "cityscapes-mmseg",
    "coco-stuff": "coco-stuff", "coco": "coco-stuff", "cocostuff": "coco-stuff",
    "coco-stuff-164k": "coco-stuff", "coco-stuff164k": "coco-stuff",
    "ade20k": "ade20k", "ade": "ade20k", "ade-20k": "ade20k", "ade20k-150": "ade20k",
    "sceneparse150": "ade20k", "scene-parse-150": "ade20k",
}
_BY_CLASSES = {19: "cityscapes", 171: "coco-stuff", 150: "ade20k"}


def dataset_names() -> List[str]:
    """Canonical names accepted by `get_dataset` (the presets and "custom")."""
    return list(DATASETS) + ["custom"]


def _canonical(name: str) -> str:
    return str(name).strip().lower().replace("_", "-").replace(" ", "-")


def custom_dataset(num_classes: int, class_names: Optional[Sequence[str]] = None, *,
                   name: str = "custom", palette: Optional[Sequence[Sequence[int]]] = None,
                   mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                   channel_order: str = "rgb", ignore_index: int = 255,
                   train_size: Sequence[int] = (1024, 512)) -> DatasetInfo:
    """A dataset the toolkit has no preset for.

    Class names default to "class_0", "class_1"...; the palette to `deterministic_palette`;
    mean/std to the ImageNet values (pixel / 255, RGB), which most BiSeNet trainings on custom
    data use: pass the ones your model was trained with.
    """
    try:
        num_classes = int(num_classes)
    except (TypeError, ValueError):
        raise InputError(f"num_classes must be an integer, got {num_classes!r}") from None
    if num_classes < 1:
        raise InputError(f"num_classes must be >= 1, got {num_classes}")
    names = [f"class_{i}" for i in range(num_classes)] if class_names is None else list(class_names)
    if len(names) != num_classes:
        raise InputError(f"{len(names)} class names given for {num_classes} classes")
    colours = deterministic_palette(num_classes) if palette is None else palette
    if isinstance(colours, (list, tuple)):  # lists of lists; anything else is said by the check
        colours = [list(c) if isinstance(c, (list, tuple)) else c for c in colours]
    return DatasetInfo(name=name, class_names=names, palette=colours, mean=list(mean),
                       std=list(std), channel_order=channel_order, ignore_index=ignore_index,
                       train_size=list(train_size))


def load_dataset_file(path: str) -> DatasetInfo:
    """A custom dataset described by a JSON file (so `--dataset my_classes.json` works anywhere).

    Keys: "class_names" (required, or "num_classes" for class_0..), and optionally "name"
    (default: the file name), "palette", "mean", "std" (pixel / 255, in "channel_order"),
    "channel_order", "ignore_index", "train_size" [width, height].
    """
    import json
    import os

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise InputError(f"cannot read the dataset file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise InputError(f"the dataset file {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not ("class_names" in data or "num_classes" in data):
        raise InputError(f"the dataset file {path} needs a JSON object with \"class_names\" "
                         f"(a list of names) or \"num_classes\"")
    known = {"name", "class_names", "num_classes", "palette", "mean", "std", "channel_order",
             "ignore_index", "train_size"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"the dataset file {path} has unknown keys {unknown}; "
                         f"known: {sorted(known)}")
    names = data.get("class_names")
    if names is not None and (not isinstance(names, list) or not names):
        raise InputError(f"the dataset file {path}: \"class_names\" must be a list of names, "
                         f"got {names!r}")
    count = len(names) if names is not None else data["num_classes"]
    options = {k: data[k] for k in ("palette", "mean", "std", "channel_order", "ignore_index",
                                     "train_size") if k in data}
    stem = os.path.splitext(os.path.basename(path))[0]
    try:
        return custom_dataset(count, names, name=str(data.get("name", stem)), **options)
    except (TypeError, ValueError) as exc:
        raise InputError(f"the dataset file {path}: {exc}") from None


def get_dataset(name: str, num_classes: Optional[int] = None) -> DatasetInfo:
    """The preset called `name` (aliases like "city", "coco", "ade" work), as a fresh copy.

    "custom" needs `num_classes`. For a preset, a `num_classes` other than the preset's is an
    InputError (use "custom" for a model trained on another label set). A path to a `.json`
    file loads a custom dataset description (`load_dataset_file`).
    """
    if str(name).lower().endswith(".json"):
        info = load_dataset_file(str(name))
        if num_classes is not None and int(num_classes) != info.num_classes:
            raise InputError(f"the dataset file {name} has {info.num_classes} classes but the "
                             f"model has {num_classes}")
        return info
    key = _canonical(name)
    if key == "custom":
        if num_classes is None:
            raise InputError("dataset 'custom' needs the number of classes (--num-classes N)")
        return custom_dataset(num_classes)
    canonical = _ALIASES.get(key)
    if canonical is None:
        raise InputError(f"unknown dataset {name!r}; known: {', '.join(dataset_names())} "
                         f"(aliases: city, coco, ade), or a .json file describing the classes")
    info = DATASETS[canonical]
    if num_classes is not None and int(num_classes) != info.num_classes:
        raise InputError(
            f"dataset {canonical!r} has {info.num_classes} classes but the model has "
            f"{num_classes}; pass the matching dataset or 'custom'")
    return dataclasses.replace(
        info, class_names=list(info.class_names), palette=[list(c) for c in info.palette],
        mean=list(info.mean), std=list(info.std), train_size=list(info.train_size))


def guess_dataset(num_classes: int) -> DatasetInfo:
    """19 -> Cityscapes, 171 -> COCO-Stuff, 150 -> ADE20K, anything else -> a custom dataset."""
    canonical = _BY_CLASSES.get(int(num_classes))
    if canonical is None:
        return custom_dataset(num_classes)
    return get_dataset(canonical)


def as_dataset_info(dataset) -> Optional[DatasetInfo]:
    """`dataset` as a DatasetInfo when it already describes one (a DatasetInfo, a ModelMetadata or
    a record's "model" dict, whose dataset name need not be a preset); None for names/None."""
    if isinstance(dataset, DatasetInfo):
        return dataset
    from .metadata import ModelMetadata

    if isinstance(dataset, dict) and "class_names" in dataset:
        try:
            dataset = ModelMetadata.from_dict(dataset)
        except TypeError as exc:
            raise InputError(f"incomplete model metadata ({exc})") from None
    if isinstance(dataset, ModelMetadata):
        return DatasetInfo.from_model_metadata(dataset)
    return None


def resolve_dataset(dataset, num_classes: int) -> DatasetInfo:
    """A dataset name, a `.json` path, a DatasetInfo/ModelMetadata/record "model" dict, or None
    (guess from `num_classes`) -> a DatasetInfo with `num_classes` classes."""
    if dataset is None:
        return guess_dataset(num_classes)
    described = as_dataset_info(dataset)
    if described is not None:
        dataset = described
    if isinstance(dataset, DatasetInfo):
        if dataset.num_classes != int(num_classes):
            raise InputError(f"dataset {dataset.name!r} has {dataset.num_classes} classes but the "
                             f"model has {num_classes}")
        return dataset
    return get_dataset(str(dataset), num_classes=num_classes)
