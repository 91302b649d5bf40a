"""Finding and reading evaluation data: the Cityscapes layout and a generic folders layout.

* ``cityscapes``: ``ROOT/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png`` with
  ``ROOT/gtFine/<split>/<city>/<name>_gtFine_labelIds.png``; label ids are mapped to the 19 train
  ids, everything else to 255 (ignored).
* ``folders``: ``ROOT/images[/<split>]`` and ``ROOT/labels[/<split>]``; an image and a label PNG
  belong together when their paths relative to those folders are equal without the extension
  (``images/a/b.jpg`` <-> ``labels/a/b.png``). Labels hold train ids (0..C-1, ignore index 255).
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional

import numpy as np

from ..errors import InputError, UnusableFileError

LAYOUTS = ("cityscapes", "folders")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
CS_IMAGE_SUFFIX = "_leftImg8bit.png"
CS_LABEL_SUFFIX = "_gtFine_labelIds.png"


class Sample:
    """One image and its label file; `name` identifies it in reports."""

    __slots__ = ("name", "image_path", "label_path")

    def __init__(self, name: str, image_path: str, label_path: Optional[str]):
        self.name = name
        self.image_path = image_path
        self.label_path = label_path

    def __repr__(self) -> str:
        return f"Sample({self.name!r})"


def _listing(names: List[str], n: int = 5) -> str:
    shown = ", ".join(names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


def _walk(folder: str, accept) -> Dict[str, str]:
    """relative path without extension -> full path, for files `accept`ed, sorted walk."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for fn in sorted(filenames):
            key = accept(fn)
            if key is None:
                continue
            rel = os.path.relpath(os.path.join(dirpath, key), folder)
            found[rel.replace(os.sep, "/")] = os.path.join(dirpath, fn)
    return found


def find_cityscapes(root: str, split: str = "val", option: str = "--data") -> List[Sample]:
    img_dir = os.path.join(root, "leftImg8bit", split)
    gt_dir = os.path.join(root, "gtFine", split)
    if not os.path.isdir(root):
        raise InputError(f"dataset folder {root} does not exist")
    if not os.path.isdir(img_dir):
        hint = (" (use --layout folders for an image folder + label folder, or --split for "
                "another split)" if option == "--data" else "")
        raise InputError(f"{img_dir} does not exist: a Cityscapes root holds leftImg8bit/{split}/ "
                         f"and gtFine/{split}/{hint}")
    if not os.path.isdir(gt_dir):
        raise InputError(f"{gt_dir} does not exist: download gtFine_trainvaltest.zip next to "
                         f"leftImg8bit and unpack it into {root}")
    images = _walk(img_dir, lambda fn: fn[:-len(CS_IMAGE_SUFFIX)]
                   if fn.endswith(CS_IMAGE_SUFFIX) else None)
    labels = _walk(gt_dir, lambda fn: fn[:-len(CS_LABEL_SUFFIX)]
                   if fn.endswith(CS_LABEL_SUFFIX) else None)
    if not images:
        raise InputError(f"no *{CS_IMAGE_SUFFIX} images under {img_dir}")
    missing = sorted(k for k in images if k not in labels)
    if missing:
        raise InputError(f"{len(missing)} of {len(images)} images have no *{CS_LABEL_SUFFIX} under "
                         f"{gt_dir}: {_listing(missing)}")
    return [Sample(k, images[k], labels[k]) for k in sorted(images)]


def find_folders(root: str, split: Optional[str] = None, images: str = "images",
                 labels: str = "labels") -> List[Sample]:
    if not os.path.isdir(root):
        raise InputError(f"dataset folder {root} does not exist")
    img_dir = os.path.join(root, images)
    gt_dir = os.path.join(root, labels)
    for d in (img_dir, gt_dir):
        if not os.path.isdir(d):
            raise InputError(f"{d} does not exist: the folders layout needs ROOT/{images}/ (the "
                             f"images) and ROOT/{labels}/ (single-channel label PNGs holding train "
                             f"ids), matched by file name")
    if split and os.path.isdir(os.path.join(img_dir, split)):
        img_dir = os.path.join(img_dir, split)
        if os.path.isdir(os.path.join(gt_dir, split)):
            gt_dir = os.path.join(gt_dir, split)

    def accept(exts):
        def f(fn):
            stem, ext = os.path.splitext(fn)
            return stem if ext.lower() in exts and not fn.startswith(".") else None
        return f

    image_files = _walk(img_dir, accept(IMAGE_EXTENSIONS))
    label_files = _walk(gt_dir, accept((".png",)))
    if not image_files:
        raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {img_dir}")
    if not label_files:
        raise InputError(f"no label PNGs in {gt_dir}")
    missing = sorted(k for k in image_files if k not in label_files)
    if missing:
        raise InputError(f"{len(missing)} of {len(image_files)} images have no label PNG of the "
                         f"same name in {gt_dir}: {_listing(missing)}")
    return [Sample(k, image_files[k], label_files[k]) for k in sorted(image_files)]


def find_samples(root: str, layout: str = "cityscapes", split: str = "val",
                 option: str = "--data") -> List[Sample]:
    """The (image, label) pairs of a dataset folder; `option` is the command's name for it,
    which the errors quote (only `--data`, bisenet-eval's, comes with --layout and --split)."""
    if os.path.isfile(root):
        what = ("leftImg8bit/ and gtFine/ for --layout cityscapes, images/ and labels/ for "
                "--layout folders" if option == "--data" else "leftImg8bit/ and gtFine/")
        raise InputError(f"{option} {root} is a file: give the dataset's root folder (with "
                         f"{what})")
    if layout == "cityscapes":
        return find_cityscapes(root, split, option)
    if layout == "folders":
        return find_folders(root, split)
    raise InputError(f"unknown dataset layout {layout!r} (use {' or '.join(LAYOUTS)})")


def read_label_png(path: str) -> np.ndarray:
    """A single-channel label PNG -> H x W int64 (its raw values, no mapping)."""
    from PIL import Image, UnidentifiedImageError

    from ..portable.files.image_io import check_not_special, open_pillow

    check_not_special(path, "label")
    try:
        with open_pillow(path, Image) as im:
            if im.mode in ("RGB", "RGBA", "LA"):
                raise InputError(f"label {path} is a colour image ({im.mode}); labels must be "
                                 f"single-channel PNGs holding class ids (for Cityscapes the "
                                 f"*_gtFine_labelIds.png files, not *_color.png)")
            return np.asarray(im, dtype=np.int64).copy()
    except FileNotFoundError:
        if os.path.islink(path):  # a broken link among the labels: that sample is skipped
            raise UnusableFileError(f"label {path} is a symbolic link to nothing") from None
        raise InputError(f"label {path} does not exist") from None
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnusableFileError(f"cannot read label {path}: {exc}") from None


def read_label(sample: Sample, layout: str) -> np.ndarray:
    """The ground truth of a sample as train ids (ignore = 255)."""
    if sample.label_path is None:
        raise InputError(f"{sample.name} has no label file")
    raw = read_label_png(sample.label_path)
    if layout == "cityscapes":
        from ..datasets import cityscapes_ids_to_trainids

        return cityscapes_ids_to_trainids(raw).astype(np.int64)
    return raw
