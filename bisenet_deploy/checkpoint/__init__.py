"""Checkpoints: our self-describing safetensors format, CoinCheung `.pth` import, `load_model()`.

A deployable model is weights plus the facts needed to use them (architecture, classes, palette,
mean/std...). Our format keeps both in one `.safetensors` file: the tensors, and the metadata
record (`metadata.build_record`) as JSON under the safetensors metadata key `bisenet_deploy`.

Checkpoints are untrusted files. They are read with safetensors or `torch.load(weights_only=True)`
only, after a look at the first bytes, so a download error page, a truncated file or a pickle with
arbitrary objects is a clear `CheckpointError` and never a traceback from inside torch. Loading is
strict: every tensor in the file must be consumed by the network and every shape must match,
otherwise the error lists the missing, unexpected and mismatched keys.

The modules, one step each: `load` (the entry points), `files` (reading and sniffing untrusted
files), `ours` (our record), `plain` (plain PyTorch state dicts), `mmseg` (mmsegmentation files),
`matching` (building the network and strict loading), `save` (writing our format).
"""

from __future__ import annotations

from .load import load_model, read_checkpoint_metadata
from .matching import RANDOM_WEIGHTS_WARNING, LoadedModel
from .plain import COINCHEUNG_ARCH
from .save import save_checkpoint

__all__ = [
    "COINCHEUNG_ARCH",
    "RANDOM_WEIGHTS_WARNING",
    "LoadedModel",
    "load_model",
    "read_checkpoint_metadata",
    "save_checkpoint",
]
