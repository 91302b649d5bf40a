"""`DatasetInfo`: a dataset's classes, colours and preprocessing, and the palette rule for
datasets that publish no colours."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import List, Optional

from ..errors import InputError
from ..metadata import DatasetFields, ModelMetadata, palette_problem

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class _Named:
    """DatasetInfo's leading field (it comes before the DatasetFields)."""

    name: str


@dataclass
class DatasetInfo(DatasetFields, _Named):
    """What a model's output channels mean and how its input must be prepared.

    Fields, in order: name, then the DatasetFields (class_names, palette, mean, std for
    pixel / 255 in `channel_order`, channel_order, ignore_index, train_size [width, height]).
    """

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
                          checkpoint_sha256: Optional[str] = None) -> ModelMetadata:
        """The `ModelMetadata` record for a model of architecture `arch` trained on this dataset."""
        return ModelMetadata(arch=arch, num_classes=self.num_classes, dataset=self.name,
                             weights=weights, source=source, checkpoint_sha256=checkpoint_sha256,
                             **self.dataset_fields())

    @classmethod
    def from_model_metadata(cls, metadata: ModelMetadata) -> "DatasetInfo":
        """The dataset part of a `ModelMetadata` (e.g. read back from a checkpoint)."""
        return cls(name=metadata.dataset, **metadata.dataset_fields())

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
