"""Dataset presets: class names, palettes, normalization and the Cityscapes label mapping."""

import dataclasses

import numpy as np
import pytest

from bisenet_deploy import datasets
from bisenet_deploy.datasets import (
    CITYSCAPES_ID_TO_TRAINID,
    DATASETS,
    DatasetInfo,
    cityscapes_ids_to_trainids,
    coco_stuff_label_map,
    custom_dataset,
    deterministic_palette,
    get_dataset,
    guess_dataset,
    resolve_dataset,
)
from bisenet_deploy.errors import InputError
from bisenet_deploy.metadata import ModelMetadata


@pytest.mark.parametrize("name,classes", [("cityscapes", 19), ("coco-stuff", 171),
                                          ("ade20k", 150)])
def test_presets_are_consistent(name, classes):
    info = get_dataset(name)
    assert info.name == name and info.num_classes == classes
    assert len(info.class_names) == len(set(info.class_names)) == classes
    assert len(info.palette) == classes
    assert len({tuple(c) for c in info.palette}) == classes  # every class its own colour
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in info.palette)
    assert info.channel_order == "rgb" and info.ignore_index == 255
    assert all(0.2 < m < 0.6 for m in info.mean) and all(0.15 < s < 0.35 for s in info.std)
    assert all(name.strip() == name and name for name in info.class_names)


def test_cityscapes_facts():
    info = get_dataset("cityscapes")
    assert info.class_names[:3] == ["road", "sidewalk", "building"]
    assert info.class_names[-1] == "bicycle"
    assert info.palette[0] == [128, 64, 128] and info.palette[13] == [0, 0, 142]
    assert info.mean == [0.3257, 0.3690, 0.3223]
    assert info.std == [0.2112, 0.2148, 0.2115]
    assert info.train_size == [1024, 512]


def test_coco_stuff_is_80_things_then_91_stuff():
    info = get_dataset("coco-stuff")
    assert info.class_names[0] == "person" and info.class_names[79] == "toothbrush"
    assert info.class_names[80] == "banner" and info.class_names[-1] == "wood"
    for removed in ("street sign", "hat", "shoe", "eye glasses", "plate", "mirror", "window",
                    "desk", "door", "blender", "hair brush"):
        assert removed not in info.class_names
    assert info.mean == pytest.approx([0.4696, 0.4464, 0.4072], abs=1e-4)


def test_coco_stuff_label_map():
    lut = coco_stuff_label_map()
    assert lut[0] == 0 and lut[10] == 10  # person, fire hydrant
    assert lut[11] == 255  # street sign: no annotations, dropped
    assert lut[12] == 11  # stop sign
    assert lut[91] == 80  # first stuff label: banner
    assert lut[181] == 170 and lut[255] == 255
    assert sorted(set(lut[:182].tolist()) - {255}) == list(range(171))


def test_ade20k_facts():
    info = get_dataset("ade20k")
    assert info.class_names[:3] == ["wall", "building", "sky"]
    assert info.class_names[-1] == "flag"
    assert info.train_size == [640, 640]


@pytest.mark.parametrize("alias,name", [("city", "cityscapes"), ("Cityscapes", "cityscapes"),
                                        ("coco", "coco-stuff"), ("coco_stuff", "coco-stuff"),
                                        ("ade", "ade20k"), ("ADE20K", "ade20k")])
def test_aliases(alias, name):
    assert get_dataset(alias).name == name


def test_unknown_dataset_lists_the_names():
    with pytest.raises(InputError) as info:
        get_dataset("pascal")
    for name in ("cityscapes", "coco-stuff", "ade20k", "custom"):
        assert name in str(info.value)


def test_get_dataset_returns_a_copy():
    info = get_dataset("cityscapes")
    info.class_names[0] = "changed"
    info.palette[0][0] = 1
    assert get_dataset("cityscapes").class_names[0] == "road"
    assert DATASETS["cityscapes"].palette[0][0] == 128


@pytest.mark.parametrize("classes,name", [(19, "cityscapes"), (171, "coco-stuff"),
                                          (150, "ade20k"), (2, "custom"), (21, "custom")])
def test_guess_dataset(classes, name):
    info = guess_dataset(classes)
    assert info.name == name and info.num_classes == classes


def test_custom_dataset():
    info = custom_dataset(3)
    assert info.class_names == ["class_0", "class_1", "class_2"]
    assert len(info.palette) == 3 and info.mean == pytest.approx([0.485, 0.456, 0.406])
    info = custom_dataset(2, ["background", "crack"], mean=(0.5, 0.5, 0.5), std=(0.25,) * 3,
                          channel_order="bgr", train_size=(512, 256))
    assert info.class_names == ["background", "crack"] and info.channel_order == "bgr"
    with pytest.raises(InputError, match="3 class names given for 2"):
        custom_dataset(2, ["a", "b", "c"])
    with pytest.raises(InputError):
        custom_dataset(0)
    with pytest.raises(InputError, match="needs the number of classes"):
        get_dataset("custom")
    assert get_dataset("custom", num_classes=5).num_classes == 5


def test_invalid_dataset_info_is_refused():
    with pytest.raises(InputError, match="palette"):
        DatasetInfo("x", ["a", "b"], [[0, 0, 0]], [0.5] * 3, [0.2] * 3)
    with pytest.raises(InputError, match="std"):
        DatasetInfo("x", ["a"], [[0, 0, 0]], [0.5] * 3, [0.0] * 3)
    with pytest.raises(InputError, match="0..255"):
        DatasetInfo("x", ["a"], [[0, 0, 300]], [0.5] * 3, [0.2] * 3)


def test_resolve_dataset_checks_the_class_count():
    assert resolve_dataset(None, 150).name == "ade20k"
    assert resolve_dataset("city", 19).name == "cityscapes"
    with pytest.raises(InputError, match="19 classes but the model has 150"):
        resolve_dataset("cityscapes", 150)
    with pytest.raises(InputError):
        resolve_dataset(custom_dataset(3), 4)


def test_deterministic_palette():
    palette = deterministic_palette(256)
    assert palette == deterministic_palette(256)
    assert len({tuple(c) for c in palette}) == 256
    assert [0, 0, 0] not in palette
    assert palette[:3] == [[128, 0, 0], [0, 128, 0], [128, 128, 0]]


def test_to_model_metadata_and_back():
    info = get_dataset("ade20k")
    meta = info.to_model_metadata("bisenetv2-coincheung", weights="checkpoint",
                                  source="coincheung", checkpoint_sha256="ab" * 32)
    assert isinstance(meta, ModelMetadata)
    assert meta.num_classes == 150 and meta.dataset == "ade20k"
    assert meta.class_names == info.class_names and meta.palette == info.palette
    assert meta.mean == info.mean and meta.train_size == [640, 640]
    assert ModelMetadata.from_dict(meta.to_dict()) == meta
    assert DatasetInfo.from_model_metadata(meta) == info
    # the copies are fresh: changing one side leaves the other alone
    meta.palette[0][0] = (meta.palette[0][0] + 1) % 256
    meta.class_names.append("extra")
    assert info.palette[0] != meta.palette[0] and len(info.class_names) == 150


def test_shared_fields_keep_each_class_s_field_order():
    """The dataset fields are declared once (metadata.DatasetFields); both classes keep the field
    order, and so the positional signature and the record's layout, they always had."""
    shared = ["class_names", "palette", "mean", "std", "channel_order", "ignore_index",
              "train_size"]
    assert [f.name for f in dataclasses.fields(DatasetInfo)] == ["name"] + shared
    assert [f.name for f in dataclasses.fields(ModelMetadata)] == (
        ["arch", "num_classes", "dataset"] + shared + ["weights", "source", "checkpoint_sha256"])
    info = DatasetInfo("x", ["a"], [[1, 2, 3]], [0.5] * 3, [0.25] * 3)
    assert (info.name, info.train_size, info.channel_order) == ("x", [1024, 512], "rgb")


def test_cityscapes_mapping_table():
    assert len(CITYSCAPES_ID_TO_TRAINID) == 19
    assert sorted(CITYSCAPES_ID_TO_TRAINID.values()) == list(range(19))
    assert CITYSCAPES_ID_TO_TRAINID[7] == 0 and CITYSCAPES_ID_TO_TRAINID[26] == 13
    assert CITYSCAPES_ID_TO_TRAINID[33] == 18


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64])
def test_cityscapes_ids_to_trainids(dtype):
    ids = np.arange(34, dtype=dtype).reshape(2, 17)
    out = cityscapes_ids_to_trainids(ids)
    assert out.shape == ids.shape and out.dtype == np.uint8
    flat = out.ravel()
    for label_id in range(34):
        assert flat[label_id] == CITYSCAPES_ID_TO_TRAINID.get(label_id, 255)


def test_cityscapes_ids_out_of_range_are_ignored():
    ids = np.array([-1, 7, 255, 1000, 33], dtype=np.int64)
    assert cityscapes_ids_to_trainids(ids).tolist() == [255, 0, 255, 255, 18]
    with pytest.raises(InputError):
        cityscapes_ids_to_trainids(np.zeros(3, np.float32))


def test_custom_is_the_last_dataset_name():
    assert datasets.dataset_names()[-1] == "custom"


def test_dataset_from_json_file(tmp_path):
    import json

    path = tmp_path / "cracks.json"
    path.write_text(json.dumps({"class_names": ["background", "crack"],
                                "palette": [[0, 0, 0], [255, 0, 0]],
                                "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
                                "train_size": [512, 512]}))
    info = get_dataset(str(path))
    assert info.name == "cracks" and info.class_names == ["background", "crack"]
    assert info.palette[1] == [255, 0, 0] and info.mean == [0.5] * 3
    assert resolve_dataset(str(path), 2).train_size == [512, 512]
    with pytest.raises(InputError, match="2 classes but the model has 19"):
        resolve_dataset(str(path), 19)
    (tmp_path / "bad.json").write_text('{"class_names": ["a"], "colours": []}')
    with pytest.raises(InputError, match="unknown keys"):
        get_dataset(str(tmp_path / "bad.json"))
    (tmp_path / "broken.json").write_text('{"class_names": [')
    with pytest.raises(InputError, match="not valid JSON"):
        get_dataset(str(tmp_path / "broken.json"))
    with pytest.raises(InputError, match="cannot read"):
        get_dataset(str(tmp_path / "missing.json"))
    (tmp_path / "short.json").write_text('{"class_names": ["a", "b"], "palette": [[1, 2, 3]]}')
    with pytest.raises(InputError, match="palette"):
        get_dataset(str(tmp_path / "short.json"))
