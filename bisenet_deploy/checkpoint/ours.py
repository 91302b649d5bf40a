"""Our format: a `.safetensors` file whose metadata record names the architecture and dataset.

The record is the authority: an `--arch`/`--num-classes` that contradicts it is an error, and only
the dataset (same class count) may be relabelled.
"""

from __future__ import annotations

import logging
from typing import Any, Dict

from ..datasets import resolve_dataset
from ..errors import CheckpointError, UnusableFileError
from ..metadata import ModelMetadata, loads_record
from .matching import RANDOM_WEIGHTS_WARNING, LoadedModel, build_for_state

log = logging.getLogger(__name__)


def load_ours(path, state, record, arch, dataset, num_classes, sha) -> LoadedModel:
    from ..model import ARCHITECTURES

    metadata = metadata_from_record(path, record)
    if metadata.arch not in ARCHITECTURES:
        raise CheckpointError(
            f"{path} holds a {metadata.arch!r} model, an architecture this bisenet-deploy does "
            f"not know (it knows {', '.join(sorted(ARCHITECTURES))}); use the bisenet-deploy "
            f"version that wrote it (toolkit_version {record.get('toolkit_version', '?')})")
    if arch is not None and arch != metadata.arch:
        raise CheckpointError(
            f"{path} holds a {metadata.arch!r} model but --arch {arch} was given; drop --arch "
            f"(the checkpoint names its architecture)")
    if num_classes is not None and num_classes != metadata.num_classes:
        raise CheckpointError(
            f"{path} holds a {metadata.num_classes}-class model but --num-classes {num_classes} "
            f"was given; drop --num-classes")
    if dataset is not None:
        info = resolve_dataset(dataset, metadata.num_classes)
        # naming the file's own dataset keeps the file's record (its class names may be custom)
        if info.name != metadata.dataset or not isinstance(dataset, str):
            log.info("relabelling %s: dataset %s -> %s", path, metadata.dataset, info.name)
            metadata = info.to_model_metadata(metadata.arch, weights=metadata.weights,
                                              source=metadata.source)
    model = build_for_state(metadata.arch, metadata.num_classes, state, what=path)
    metadata.checkpoint_sha256 = sha
    if metadata.weights == "random-init":
        log.warning("%s: %s", path, RANDOM_WEIGHTS_WARNING.replace(
            "pass --checkpoint", "this checkpoint was saved from a random initialisation"))
    log.info("loaded %s: %s, %d classes (%s), weights from %s", path, metadata.arch,
             metadata.num_classes, metadata.dataset, metadata.source)
    return LoadedModel(model, metadata)


def metadata_from_record(path, record) -> ModelMetadata:
    try:
        return ModelMetadata.from_dict(record["model"])
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{path}: the bisenet_deploy metadata in the file is damaged "
                              f"({exc}); re-create the checkpoint") from None


#: what to do about a checkpoint whose record is damaged
CHECKPOINT_REMEDY = ("re-create the checkpoint (`bisenet-export checkpoint`), or load the weights "
                     "from the file they came from")


def parse_record(path, text) -> Dict[str, Any]:
    """The file's record, validated field by field (one line naming the file and the field)."""
    try:
        return loads_record(text, str(path), remedy=CHECKPOINT_REMEDY)
    except UnusableFileError as exc:
        raise CheckpointError(str(exc)) from None
