"""`bisenet-export checkpoint`: convert a checkpoint (e.g. CoinCheung's .pth) to our self-describing
.safetensors, so one file carries the weights and the metadata every later step reads."""

from __future__ import annotations

import logging
import os

from .common import add_logging_args, add_model_args
from .options import add_output

log = logging.getLogger(__name__)

DEFAULT_FOLDER = "models"


def register(sub) -> None:
    p = sub.add_parser(
        "checkpoint", help="convert a checkpoint (CoinCheung .pth, ours) to a self-describing "
                           ".safetensors",
        description="Load a checkpoint strictly (weights only, every key checked) and write it as "
                    "a .safetensors file holding the weights and the metadata record: "
                    "architecture, classes, palette, mean/std and channel order, sizes. "
                    "--dataset relabels it (e.g. a custom JSON label set).")
    add_model_args(p, required=True)
    add_output(p, "where to write (default: models/<arch>-<dataset>.safetensors)",
               alias=("--output-path",))
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    add_logging_args(p)
    p.set_defaults(func=_run)


def default_path(arch: str, dataset: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in f"{arch}-{dataset}")
    return os.path.join(DEFAULT_FOLDER, safe + ".safetensors")


def _check_output(out: str, args) -> None:
    """Refuse an output that is the input, exists (without --force, or is not ours) or cannot be
    written."""
    from ..errors import InputError
    from ..portable.files.fileio import check_writable
    from ..portable.files.ownership import check_replaceable

    if os.path.abspath(out) == os.path.abspath(args.checkpoint):
        raise InputError(f"-o {out} is the input checkpoint itself: choose another path")
    check_replaceable(out, "safetensors", force=args.force)
    check_writable(out, "-o")


def _run(args) -> int:
    from ..checkpoint import load_model, save_checkpoint
    from ..errors import InputError
    from ..portable.files.fileio import check_writable

    if args.output and not args.output.endswith(".safetensors"):
        raise InputError(f"-o {args.output}: the output must end in .safetensors")
    if args.output:  # before reading the checkpoint, which can take a while
        _check_output(args.output, args)
    else:  # the file name needs the architecture, read from the checkpoint; the folder now
        check_writable(os.path.join(DEFAULT_FOLDER, "ARCH-DATASET.safetensors"),
                       "the converted checkpoint")
    loaded = load_model(args.checkpoint, arch=args.arch, dataset=args.dataset,
                        num_classes=args.num_classes)
    meta = loaded.metadata
    out = args.output or default_path(meta.arch, meta.dataset)
    _check_output(out, args)
    save_checkpoint(out, loaded.model, meta)
    print(f"wrote {out}: {meta.arch}, {meta.num_classes} classes ({meta.dataset}), "
          f"from {args.checkpoint}")
    return 0
