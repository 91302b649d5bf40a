#!/usr/bin/env python
"""Write seeded synthetic street scenes as files the commands read: a calibration folder of PNGs
(`bisenet-export onnx --precision int8 --calib-images DIR`) or, with their labels, a
Cityscapes-layout root (`--eval-data ROOT`, `bisenet-eval`): leftImg8bit/val/synthetic/ and
gtFine/val/synthetic/ (label ids, mapped from the scenes' train ids).

    python scripts/write_synthetic_data.py images DIR --first-seed 500000 --count 16
    python scripts/write_synthetic_data.py cityscapes ROOT --first-seed 910000 --count 8

Seeds used in docs/int8.md: training 100000.. (scripts/train_synthetic.py), calibration 500000..,
the INT8 gate's own held-out scenes 910000.. (bisenet_deploy/export/int8_gate.py).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def _size(text):
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("layout", choices=("images", "cityscapes"))
    p.add_argument("folder")
    p.add_argument("--first-seed", type=int, required=True)
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--size", type=_size, default=(2048, 1024), metavar="WxH")
    args = p.parse_args(argv)
    if args.count < 1 or args.first_seed < 0 or min(args.size) < 1:
        p.error("--count and --size must be positive, --first-seed >= 0")

    from bisenet_deploy.errors import UserError

    try:
        for seed in range(args.first_seed, args.first_seed + args.count):
            write_scene(args.layout, args.folder, args.size, seed)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write into {args.folder}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.count} scene(s) to {args.folder}")
    return 0


def write_scene(layout, folder, size, seed):
    from bisenet_deploy.evaluation.cityscapes_official import train_ids_to_label_ids
    from bisenet_deploy.synthetic import IGNORE, synthetic_scene

    image, labels = synthetic_scene(*size, seed=seed)
    if layout == "images":
        _write_png(os.path.join(folder, f"scene_{seed}.png"), image)
        return
    name = f"synthetic_{seed:06d}_000019"
    ids = train_ids_to_label_ids(np.where(labels == IGNORE, 0, labels))
    ids[labels == IGNORE] = 0  # Cityscapes' "unlabeled", ignored by the evaluation
    _write_png(os.path.join(folder, "leftImg8bit", "val", "synthetic",
                            f"{name}_leftImg8bit.png"), image)
    _write_png(os.path.join(folder, "gtFine", "val", "synthetic",
                            f"{name}_gtFine_labelIds.png"), ids.astype(np.uint8))


def _write_png(path, array):
    """Write atomically, replacing only a PNG this toolkit wrote (a rerun), nothing else."""
    from bisenet_deploy.evaluation.colorize import write_png
    from bisenet_deploy.portable.files.ownership import check_replaceable

    check_replaceable(path, "png")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    write_png(path, array)


if __name__ == "__main__":
    sys.exit(main())
