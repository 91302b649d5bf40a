"""Dataset presets: the class names, colours and preprocessing that travel with a model's weights.

A segmentation checkpoint is only usable with the preprocessing it was trained with and the class
names its output channels mean. These presets hold those facts for the datasets the public
CoinCheung/BiSeNet BiSeNetV2 checkpoints were trained on (Cityscapes 19, COCO-Stuff 171,
ADE20K 150), plus `custom_dataset()` for anything else. `DatasetInfo.to_model_metadata()` turns a
preset into the `ModelMetadata` written into checkpoints, ONNX files and engine sidecars.

Modules: `info` (DatasetInfo, the palette rule), `labels` (the label sets and id mappings as the
datasets publish them), `presets` (the presets, and resolving a name, file or record to one).

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

from .info import IMAGENET_MEAN, IMAGENET_STD, DatasetInfo, deterministic_palette
from .labels import (
    CITYSCAPES_ID_TO_TRAINID,
    COCO_STUFF_REMOVED_LABELS,
    cityscapes_ids_to_trainids,
    coco_stuff_label_map,
)
from .presets import (
    DATASETS,
    as_dataset_info,
    custom_dataset,
    dataset_names,
    get_dataset,
    guess_dataset,
    load_dataset_file,
    resolve_dataset,
)

__all__ = [
    "CITYSCAPES_ID_TO_TRAINID",
    "COCO_STUFF_REMOVED_LABELS",
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DatasetInfo",
    "as_dataset_info",
    "cityscapes_ids_to_trainids",
    "coco_stuff_label_map",
    "custom_dataset",
    "dataset_names",
    "deterministic_palette",
    "get_dataset",
    "guess_dataset",
    "load_dataset_file",
    "resolve_dataset",
]
