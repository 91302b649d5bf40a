"""A small API to embed segmentation in an application: load a model file, feed camera images.

    from bisenet_deploy.runtime.api import Segmenter

    with Segmenter.from_file("export/bisenetv2-city.onnx") as seg:
        labels = seg(image)              # H x W x 3 uint8 RGB -> H x W int32 class ids
        picture = seg.colorize(labels)   # H x W x 3 uint8, the model's palette

Images of any size are accepted: they are resized on the host to the graph's input size
(`portable.running.preprocess.prepare_input`, exactly as the export metadata says), and the label map is
resized back to the image's size (nearest neighbour), so labels line up with the pixels given.
Graphs that output only logits get their argmax on the host.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..errors import InputError, UserError
from ..portable.running.preprocess import check_image, prepare_input
from ..portable.running.runner_base import Runner
from .images import colorize, labels_from_outputs, resize_labels_nearest

log = logging.getLogger(__name__)

SUFFIX_BACKENDS = {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt",
                   ".trt": "tensorrt", ".safetensors": "torch", ".pth": "torch", ".pt": "torch"}


def batch_range(runner: Runner):
    """(smallest, largest) batch an active runner takes: its static batch, or the dynamic range
    of its export record (up to 8 when the record names no maximum)."""
    shape = runner.input_spec().shape
    if shape[0] > 0:
        return shape[0], shape[0]
    batch = ((runner.metadata or {}).get("export") or {}).get("batch") or {}
    lo = max(1, int(batch.get("min", 1)))
    hi = max(lo, int(batch.get("max", 8)))
    return lo, hi


def pad_batch(runner: Runner, batch: np.ndarray) -> np.ndarray:
    """A prepared N x 3 x H x W batch repeated at its last image up to the smallest batch the
    runner takes (a static batch-4 engine fed one image); results beyond N are to be dropped."""
    lo = batch_range(runner)[0]
    if batch.shape[0] >= lo:
        return batch
    return np.concatenate([batch, np.repeat(batch[-1:], lo - batch.shape[0], axis=0)], axis=0)


class Segmenter(object):
    """Image in, label map out, over any runner whose model carries bisenet_deploy metadata."""

    def __init__(self, runner: Runner, channel_order: str = "rgb"):
        if channel_order not in ("rgb", "bgr"):
            raise InputError("channel_order must be 'rgb' or 'bgr'")
        self.runner = runner
        self.channel_order = channel_order

    @classmethod
    def from_file(cls, path: str, backend: Optional[str] = None, channel_order: str = "rgb",
                  **options: Any) -> "Segmenter":
        """Open an .onnx (onnxruntime), .engine (tensorrt) or .safetensors/.pth (torch) file.

        `backend` overrides the choice (e.g. "onnxruntime-cuda", "torch-cuda"); `options` go to
        `runtime.factory.open_runner` (device, precision, threads...).
        """
        from .factory import open_runner

        path = str(path)
        suffix = os.path.splitext(path)[1].lower()
        chosen = backend or SUFFIX_BACKENDS.get(suffix)
        if chosen is None:
            raise InputError(f"cannot tell the backend of {path!r} from its suffix: expected one "
                             f"of {', '.join(sorted(SUFFIX_BACKENDS))}, or pass backend=...")
        if not os.path.isfile(path):
            raise InputError(f"model file {path!r} does not exist")
        if chosen.startswith("onnxruntime"):
            runner = open_runner(chosen, onnx=path, **options)
        elif chosen == "tensorrt":
            runner = open_runner(chosen, engine=path, **options)
        else:
            runner = open_runner(chosen, checkpoint=path, **options)
        return cls(runner, channel_order=channel_order)

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self) -> "Segmenter":
        self.runner.activate()
        if not self.runner.metadata or "export" not in self.runner.metadata:
            self.runner.deactivate()
            raise UserError("the model carries no bisenet_deploy metadata (input size, "
                            "preprocessing, classes): export it with `bisenet-export onnx` / "
                            "build it with `bisenet-build-engine`")
        return self

    def close(self) -> None:
        self.runner.deactivate()

    def __enter__(self) -> "Segmenter":
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    @property
    def metadata(self) -> Dict[str, Any]:
        if not self.runner.is_active:
            self.open()
        return self.runner.metadata

    @property
    def class_names(self) -> List[str]:
        return list(self.metadata["model"]["class_names"])

    # -- inference -----------------------------------------------------------------------------
    def __call__(self, image: np.ndarray, channel_order: Optional[str] = None) -> np.ndarray:
        """One H x W x 3 uint8 image -> H x W int32 labels at the image's size."""
        if isinstance(image, np.ndarray) and image.ndim == 4:
            raise InputError("one image is H x W x 3; use segment_batch for a batch")
        return self.segment_batch([image], channel_order=channel_order)[0]

    def segment_batch(self, images: Sequence[np.ndarray],
                      channel_order: Optional[str] = None) -> List[np.ndarray]:
        """A list of H x W x 3 uint8 images (sizes may differ) -> a list of H x W int32 labels.

        Images are fed in chunks the model accepts (its static batch, or up to its dynamic max;
        a short last chunk is padded with copies of its last image, whose results are dropped).
        """
        record = self.metadata
        order = channel_order or self.channel_order
        images = list(images)
        for image in images:
            check_image(image)
        if not images:
            return []
        hi = batch_range(self.runner)[1]
        results: List[np.ndarray] = []
        for start in range(0, len(images), hi):
            part = images[start:start + hi]
            batch = pad_batch(self.runner, prepare_input(part, record, image_channel_order=order))
            labels = labels_from_outputs(self.runner.infer(batch))
            for image, lab in zip(part, labels):
                results.append(resize_labels_nearest(lab, image.shape[1], image.shape[0]))
        return results

    # -- pictures ------------------------------------------------------------------------------
    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """H x W labels -> H x W x 3 uint8 RGB with the model's palette; unknown ids are black."""
        return colorize(labels, self.metadata["model"]["palette"])
