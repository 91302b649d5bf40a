"""The entry points: `load_model()` for any checkpoint (or a seeded random model) and
`read_checkpoint_metadata()` for our record alone; the kind of file decides which loader runs."""

from __future__ import annotations

import logging
from typing import Optional

from ..datasets import as_dataset_info, get_dataset, resolve_dataset
from ..errors import CheckpointError
from ..metadata import METADATA_KEY, ModelMetadata
from ..portable.files.fileio import sha256_file
from . import mmseg
from .files import (check_finite, check_path, positive_int, read_safetensors, read_torch, sniff,
                    strip_prefixes)
from .matching import RANDOM_WEIGHTS_WARNING, LoadedModel, build
from .ours import load_ours, metadata_from_record, parse_record
from .plain import load_state_dict

log = logging.getLogger(__name__)

#: The arch used for a random initialisation when nothing names one.
RANDOM_INIT_DEFAULT_ARCH = "bisenetv2"


def load_model(path: Optional[str] = None, arch: Optional[str] = None, dataset=None,
               num_classes: Optional[int] = None, seed: int = 0) -> LoadedModel:
    """Load a checkpoint (ours or CoinCheung's) or, with `path=None`, build a seeded random model.

    - our `.safetensors`: arch, classes and dataset come from the file; an `arch`/`num_classes`
      that contradicts the file is an error; `dataset` may relabel it (same class count).
    - a PyTorch state dict (`.pth`, plain, `module.`-prefixed, from a torch.compile'd model or
      nested under "state_dict", "model", "net"...): a CoinCheung BiSeNetV2 dict selects
      `bisenetv2-coincheung` by itself, an mmsegmentation one `bisenetv2-mmseg` (keys renamed, see
      `checkpoint.mmseg`; a plain dict of our paper networks selects `bisenetv2`/`bisenetv2-large`
      the same way); the class count is read from the head, the dataset guessed from it (or the
      file's meta) unless given.
    - None: `arch` (default "bisenetv2") with seeded random weights and a loud warning.
    The model is returned in eval mode on the CPU.
    """
    if num_classes is not None:
        num_classes = positive_int(num_classes, "num_classes")
    if path is None:
        return _random_model(arch, dataset, num_classes, seed)
    path = check_path(path)
    kind = sniff(path)
    container = None
    if kind == "safetensors":
        state, record = read_safetensors(path)
    else:
        (state, container), record = read_torch(path), None
    state = strip_prefixes(state)
    check_finite(path, state)
    sha = sha256_file(path)
    if record is not None:
        return load_ours(path, state, record, arch, dataset, num_classes, sha)
    if mmseg.is_mmseg_state(state):
        state, described = mmseg.convert(path, state, container)
        dataset = described if dataset is None else dataset
    return load_state_dict(path, state, arch, dataset, num_classes, sha)


def read_checkpoint_metadata(path) -> Optional[ModelMetadata]:
    """The metadata of one of our `.safetensors` files without building the network.

    Returns None for a file without our record (e.g. a CoinCheung `.pth`).
    """
    path = check_path(path)
    if sniff(path) != "safetensors":
        return None
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception as exc:  # safetensors raises SafetensorError (an Exception) for bad files
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({exc})") from None
    if METADATA_KEY not in header:
        return None
    metadata = metadata_from_record(path, parse_record(path, header[METADATA_KEY]))
    metadata.checkpoint_sha256 = sha256_file(path)
    return metadata


def _random_model(arch, dataset, num_classes, seed) -> LoadedModel:
    import torch

    arch = arch or RANDOM_INIT_DEFAULT_ARCH
    described = as_dataset_info(dataset)
    if num_classes is None:
        if dataset is None:
            num_classes = 19
        elif described is not None:
            num_classes = described.num_classes
        else:  # a preset name; "custom" without a class count is an InputError here
            num_classes = get_dataset(str(dataset)).num_classes
    info = resolve_dataset(dataset, num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = build(arch, num_classes, aux=False)
    model.eval()
    metadata = info.to_model_metadata(arch, weights="random-init", source="random-init")
    log.warning("%s (arch %s, %d classes, seed %d)", RANDOM_WEIGHTS_WARNING, arch, num_classes,
                int(seed))
    return LoadedModel(model, metadata)
