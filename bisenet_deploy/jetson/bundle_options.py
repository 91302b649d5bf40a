"""What `bisenet-export jetson` takes: the options both bundle.py (the bundle) and bundle_model.py
(the model inside it) read, in a module of its own so that neither imports the other for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass
class BundleOptions:
    """Everything `bisenet-export jetson` takes. Sizes are (width, height)."""

    output_dir: str
    checkpoint: Optional[str] = None
    arch: Optional[str] = None
    dataset: Optional[str] = None
    num_classes: Optional[int] = None
    seed: int = 0
    #: an ONNX already exported for --target trt8.2 (with its metadata) instead of exporting
    onnx: Optional[str] = None
    input_size: Tuple[int, int] = (2048, 1024)
    model_size: Tuple[int, int] = (1024, 512)
    channel_order: Optional[str] = None
    output: str = "labels"
    #: the precision build_engine.sh builds by default on the device
    precision: str = "fp16"
    simplify: bool = True
    #: the PyTorch exporter (export.exporters.EXPORTERS)
    exporter: str = "auto"
    tar: bool = False
    force: bool = False
    sample_seed: int = 0
    #: a bar over the export's steps, on a terminal only (not an export option: not recorded)
    progress: bool = True
