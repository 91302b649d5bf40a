"""The former home of `bisenet_deploy.checkpoint.mmseg`, kept so existing imports keep working."""

from .checkpoint.mmseg import (  # noqa: F401
    MARKERS,
    MMSEG_ARCH,
    MMSEG_MEAN_255,
    MMSEG_PREFIXES,
    MMSEG_STD_255,
    Converted,
    convert,
    dataset_from_meta,
    is_mmseg_state,
    load_bookkeeping_inertly,
    normalization_from_config,
    rename_key,
)
