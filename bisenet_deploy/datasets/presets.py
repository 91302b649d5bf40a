"""The presets, and turning a name, an alias, a `.json` file or a model's record into one."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence

from ..errors import InputError
from ..metadata import ModelMetadata
from .info import IMAGENET_MEAN, IMAGENET_STD, DatasetInfo, deterministic_palette
from .labels import ADE20K_CLASSES, CITYSCAPES_CLASSES, COCO_STUFF, COCO_THINGS


def _presets() -> Dict[str, DatasetInfo]:
    coco_names = COCO_THINGS + COCO_STUFF
    city = DatasetInfo(
        name="cityscapes", class_names=[n for n, _ in CITYSCAPES_CLASSES],
        palette=[list(c) for _, c in CITYSCAPES_CLASSES],
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
            name="ade20k", class_names=list(ADE20K_CLASSES), palette=deterministic_palette(len(ADE20K_CLASSES)),
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
    return dataclasses.replace(info, **info.dataset_fields())


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
