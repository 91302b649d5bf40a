"""The TensorRT side of `bisenet-compare --layers`: the same Conv outputs, from an engine.

An engine exposes only the tensors that were marked as network outputs when it was built, so the
probe builds an engine of its own from the ONNX with every Conv output marked (Polygraphy's
`--trt-outputs mark all`): a copy of the ONNX with those tensors added as graph outputs, built by
`build_engine` like any engine, in the precision the ONNX was exported for (a Q/DQ graph gives an
INT8 engine, a trt11 FP16 graph an FP16 one). A marked tensor must be written to memory, so
TensorRT cannot fuse across it: the probe's engine shows where error enters, as Polygraphy's
comparison does, not the deployed engine's exact values. Building needs an NVIDIA GPU except on
TensorRT-RTX; running always does.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np

log = logging.getLogger(__name__)


class EngineProbe:
    """Conv outputs of an ONNX graph as a TensorRT engine computes them, by module path."""

    def __init__(self, onnx_path: str, flavour: Optional[str] = None):
        from ..export.onnx_metadata import load_onnx
        from ..export.quantize import name_nodes
        from .layers import conv_outputs

        self.onnx_path = onnx_path
        self.model = load_onnx(onnx_path)
        name_nodes(self.model)
        self.outputs: Dict[str, str] = conv_outputs(self.model)
        self.flavour = flavour
        self.engine_path: Optional[str] = None
        self._folder: Optional[str] = None
        self._runner = None

    def paths(self) -> List[str]:
        return list(self.outputs)

    def build(self, folder: str) -> str:
        """Write the marked ONNX into `folder` and build its engine there; returns the engine's
        path (its sidecar beside it lists the marked outputs)."""
        import onnx

        from ..portable.building.builder import build_engine
        from ..portable.building.build_plan import BuildOptions
        from .layers import marked_copy

        path = os.path.join(folder, "layers-marked.onnx")
        onnx.save(marked_copy(self.model, list(self.outputs.values())), path)
        result = build_engine(path, None, BuildOptions(
            output=os.path.join(folder, "layers-marked.engine"), flavour=self.flavour,
            use_timing_cache=False))
        self.engine_path = result.engine_path
        return result.engine_path

    def run(self, batch: np.ndarray, paths: Sequence[str]) -> List[np.ndarray]:
        if self._runner is None:
            from ..runtime.factory import open_runner

            self._folder = tempfile.mkdtemp(prefix="bisenet-layers-")
            runner = open_runner("tensorrt", engine=self.build(self._folder))
            runner.activate()
            self._runner = runner
        outputs = self._runner.infer(batch)
        return [np.asarray(outputs[self.outputs[p]], dtype=np.float32) for p in paths]

    def close(self) -> None:
        """Release the engine and remove the folder this probe made (nothing else)."""
        if self._runner is not None:
            self._runner.deactivate()
            self._runner = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
