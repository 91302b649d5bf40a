"""Writing our format: weights and the metadata record in one `.safetensors` file."""

from __future__ import annotations

import logging

from ..metadata import METADATA_KEY, ModelMetadata, build_record, dumps_record
from ..portable.files.fileio import atomic_output
from .matching import build_for_state

log = logging.getLogger(__name__)


def save_checkpoint(path, model, metadata: ModelMetadata) -> str:
    """Write `model`'s weights and `metadata` to one `.safetensors` file, atomically.

    The weights are checked against `metadata.arch`/`num_classes` first, so a file that could not
    be loaded back is never written. Aux-head weights are kept if the model has them.
    """
    from safetensors.torch import save

    if not isinstance(metadata, ModelMetadata):
        raise TypeError("metadata must be a bisenet_deploy.metadata.ModelMetadata")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    # builds the reference network for the metadata and raises if the weights do not fit it
    build_for_state(metadata.arch, metadata.num_classes, state, what="the model to save")
    header = {METADATA_KEY: dumps_record(build_record(metadata)), "format": "pt"}
    path = str(path)
    data = save(state, metadata=header)  # written by Python: a full disk is an OSError that
    with atomic_output(path, suffix=".safetensors") as tmp:  # atomic_output reports in one line
        with open(tmp, "wb") as f:  # (safetensors' own writer raises its SafetensorError)
            f.write(data)
    log.info("saved %s (%s, %d classes, %d tensors)", path, metadata.arch,
             metadata.num_classes, len(state))
    return path
