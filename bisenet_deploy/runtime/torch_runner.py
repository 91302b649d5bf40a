"""PyTorch behind the `Runner` contract, running the same work as the exported graph.

The model is wrapped in `export.deploy_module.DeployModule` (in-graph resize, normalization,
argmax, int32 labels), so PyTorch is timed and compared on exactly what the ONNX/engine computes.
Host -> host like every runner: the numpy batch is copied to the device, run, synchronized and
copied back inside `infer`. On a GPU, CUDA events split each call into host -> device copy,
compute and device -> host copy (`last_phase_times_ms`; `last_device_time_ms` is the compute).

Options: device "cpu"/"cuda[:i]", precision fp32/fp16 (fp16 on CUDA only: the DeployModule of an
FP16 graph, half weights and activations, int32 labels / float32 logits out; a user-given graph
module runs under autocast instead), channels_last memory format, and CUDA-graph capture (one
graph per input shape).
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Any, Dict, List, Optional

import numpy as np

from ..errors import InputError, MissingDependencyError, UserError
from ..portable.shared.phase_timing import (COMPUTE_DONE, CUDA_EVENTS, D2H_DONE, H2D_DONE, START,
                                     torch_phase_events)
from ..portable.running.runner_base import Runner, TensorSpec, specs_from_record

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")

# what a checkpoint alone implies for the graph: the paper's setup (2048x1024 camera frames
# resized in the graph to the 1024x512 network input), labels out, batch 1
DEFAULT_INPUT_SIZE = (2048, 1024)
DEFAULT_MODEL_SIZE = (1024, 512)


def default_export_info(model_meta: Dict[str, Any], input_size=None, model_size=None,
                        output: str = "labels", batch: Optional[Dict[str, Any]] = None,
                        input_dtype: str = "float32") -> Dict[str, Any]:
    """The ExportInfo dict `bisenet-export onnx` would write by default, for a bare checkpoint."""
    from ..metadata import ExportInfo

    names = ["labels", "logits"] if output == "both" else [output]
    info = ExportInfo(
        input_name="image",
        input_size=list(input_size or DEFAULT_INPUT_SIZE),
        model_size=list(model_size or DEFAULT_MODEL_SIZE),
        input_dtype=input_dtype,
        channel_order=model_meta.get("channel_order", "rgb"),
        normalize="in-graph",
        output=output,
        output_names=names,
        target="trt10",
        precision="fp32",
        opset=17,
        batch=batch or {"dynamic": False, "size": 1},
    )
    return info.to_dict()


class TorchRunner(Runner):
    """A BiSeNet model (or any module with the DeployModule contract) run by PyTorch.

    The model source is the first argument: a checkpoint path (None: seeded random weights) or the
    network itself (an nn.Module, the same as `model=`), which needs `record`; or `graph` (a
    module that already IS the deploy graph: N x 3 x H x W input -> tuple of outputs in
    `record["export"]["output_names"]` order) plus `record`. With a checkpoint and no `record`,
    the graph is the default export's (2048x1024 input). Checkpoints are read at activation.
    """

    backend = "torch"

    def __init__(self, checkpoint: Optional[Any] = None, *, model=None, graph=None,
                 record: Optional[Dict[str, Any]] = None, device: str = "cpu",
                 precision: str = "fp32", channels_last: bool = False, cuda_graph: bool = False,
                 threads: Optional[int] = None):
        super().__init__()
        if precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        device = str(device or "cpu")
        if not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
            raise InputError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        if precision == "fp16" and device == "cpu":
            raise InputError("fp16 needs a CUDA device: PyTorch's CPU half-precision convolutions "
                             "are slow and not what an engine runs; use --precision fp32 on CPU")
        if cuda_graph and device == "cpu":
            raise InputError("CUDA graphs need a CUDA device (device='cuda')")
        if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
            if not callable(getattr(checkpoint, "state_dict", None)):
                raise InputError(f"the model source must be a checkpoint path or a torch "
                                 f"nn.Module, got {type(checkpoint).__name__}")
            if model is not None:
                raise InputError("give the network once: as the model source or as model=")
            checkpoint, model = None, checkpoint
        if model is not None and graph is not None:
            raise InputError("give either model or graph, not both")
        if (model is not None or graph is not None) and record is None:
            raise InputError("a model or graph needs its metadata record (record=...)")
        if record is not None and "export" not in record:
            raise InputError("the record has no 'export' section: it must describe the graph "
                             "(input size, dtype, outputs)")
        if threads is not None and int(threads) < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self._model = model
        self._graph_in = graph
        self.metadata = copy.deepcopy(record) if record is not None else None
        self.device = device
        self.precision = precision
        self.channels_last = bool(channels_last)
        self.cuda_graph = bool(cuda_graph)
        self.threads = None if threads is None else int(threads)
        self._graph: Any = None
        self._torch: Any = None
        self._cuda_graphs: Dict[tuple, Any] = {}
        self._events: Any = None
        self._device_ms: Optional[float] = None
        self._phases_ms: Optional[Dict[str, float]] = None
        self.phase_clock = None if device == "cpu" else CUDA_EVENTS
        self._half_graph = False  # fp16 through DeployModule's FP16 graph, else autocast

    def describe(self) -> str:
        parts = [f"torch {self.device}", self.precision]
        if self.channels_last:
            parts.append("channels_last")
        if self.cuda_graph:
            parts.append("cuda-graph")
        return ", ".join(parts)

    # -- specs ---------------------------------------------------------------------------------
    def input_spec(self) -> TensorSpec:
        self._need_record()
        return specs_from_record(self.metadata)[0]

    def output_specs(self) -> List[TensorSpec]:
        self._need_record()
        return specs_from_record(self.metadata)[1]

    def _need_record(self) -> None:
        if self.metadata is None:
            raise UserError("the model's metadata is known after activate()")

    def last_device_time_ms(self) -> Optional[float]:
        return self._device_ms

    def last_phase_times_ms(self) -> Optional[Dict[str, float]]:
        return self._phases_ms

    # -- lifecycle -----------------------------------------------------------------------------
    def _activate(self) -> None:
        try:
            import torch
        except ImportError:
            raise MissingDependencyError("PyTorch is not installed: `pip install torch`") from None
        self._torch = torch
        if self.device != "cpu" and not torch.cuda.is_available():
            raise MissingDependencyError(
                "PyTorch has no CUDA here (no NVIDIA GPU, or a CPU-only torch build): use the "
                "'torch' (CPU) backend or install a CUDA build of torch")
        if self.threads:
            torch.set_num_threads(self.threads)
        graph = self._build_graph(torch)
        graph = graph.eval().to(self.device)
        if self.channels_last:
            graph = graph.to(memory_format=torch.channels_last)
        self._graph = graph
        if self.device != "cpu":
            self._events = torch_phase_events(torch)

    def _build_graph(self, torch):
        if self._graph_in is not None:
            return self._graph_in
        from ..export.deploy_module import DeployModule

        model = self._model
        if model is None:
            from ..checkpoint import load_model

            if self.checkpoint is None and self.metadata is not None:
                meta = self.metadata["model"]  # random weights shaped like the record's model
                loaded = load_model(None, arch=meta.get("arch"), dataset=meta,
                                    num_classes=meta.get("num_classes"))
            else:
                loaded = load_model(self.checkpoint)
            model = loaded.model
            if self.metadata is None:
                from ..metadata import build_record

                record = build_record(loaded.metadata)
                record["export"] = default_export_info(record["model"])
                self.metadata = record
            elif self.metadata["model"].get("num_classes") != loaded.metadata.num_classes:
                raise InputError(
                    f"the checkpoint has {loaded.metadata.num_classes} classes but the record "
                    f"describes {self.metadata['model'].get('num_classes')}: use the ONNX/engine "
                    f"exported from this checkpoint")
        return DeployModule(model, self._graph_record())

    def _graph_record(self) -> Dict[str, Any]:
        """The record DeployModule builds from; for fp16, the record of an FP16 graph.

        An FP16 graph (a target whose ONNX itself carries FP16, see export/targets.py) makes
        DeployModule cast the input and the weights to half and return float32 logits: the
        network then runs entirely in half precision, as an FP16 engine does.
        """
        if self.precision != "fp16":
            return self.metadata
        from ..export.targets import TARGET_NAMES, get_target

        fp16_targets = [name for name in TARGET_NAMES if get_target(name).fp16_graph]
        if not fp16_targets:
            return self.metadata
        record = copy.deepcopy(self.metadata)
        record["export"]["target"] = fp16_targets[0]
        record["export"]["precision"] = "fp16"
        self._half_graph = True
        return record

    def _deactivate(self) -> None:
        self._graph = None
        self._cuda_graphs.clear()
        self._events = None
        if self._torch is not None and self.device != "cpu":
            self._torch.cuda.synchronize()
            self._torch.cuda.empty_cache()
        self._torch = None

    # -- inference -----------------------------------------------------------------------------
    def _forward(self, x):
        torch = self._torch
        if self.precision == "fp16" and not self._half_graph:
            with torch.autocast("cuda", dtype=torch.float16, cache_enabled=False):
                return self._graph(x)
        return self._graph(x)

    def _to_device(self, batch: np.ndarray):
        x = self._torch.from_numpy(batch)
        if self.device != "cpu":
            x = x.to(self.device, non_blocking=False)
        return x

    def _layout(self, x):
        if self.channels_last:
            x = x.contiguous(memory_format=self._torch.channels_last)
        return x

    def _captured(self, batch: np.ndarray):
        """(static input, static outputs, graph) for this shape; captured on first use."""
        torch = self._torch
        key = tuple(batch.shape)
        if key not in self._cuda_graphs:
            static_in = self._layout(self._to_device(batch))
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up outside the capture, as torch requires
                for _ in range(2):
                    self._forward(static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self._forward(static_in)
            self._cuda_graphs[key] = (static_in, static_out, graph)
        return self._cuda_graphs[key]

    def _infer(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        torch = self._torch
        names = self.metadata["export"]["output_names"]
        with torch.inference_mode():
            events = self._events  # None on the CPU: nothing is copied, nothing to split
            if self.device == "cpu":
                outs = self._forward(self._layout(self._to_device(batch)))
            elif self.cuda_graph:
                static_in, outs, graph = self._captured(batch)
                events.record(START)
                static_in.copy_(torch.from_numpy(batch))  # H2D into the captured input
                events.record(H2D_DONE)
                graph.replay()
                events.record(COMPUTE_DONE)
            else:
                events.record(START)
                x = self._to_device(batch)
                events.record(H2D_DONE)
                outs = self._forward(self._layout(x))
                events.record(COMPUTE_DONE)
            if not isinstance(outs, (tuple, list)):
                outs = (outs,)
            if len(outs) != len(names):
                raise UserError(f"the graph returned {len(outs)} outputs, the record names "
                                f"{len(names)} ({', '.join(names)})")
            host = [o.cpu().numpy() for o in outs]  # D2H; synchronizes the stream
            if events is not None:
                events.record(D2H_DONE)
                events.synchronize()
                self._phases_ms = events.times_ms()
                self._device_ms = self._phases_ms["compute"]
        result = {}
        for name, arr in zip(names, host):
            result[name] = arr.astype(np.int32 if name == "labels" else np.float32, copy=False)
        return result
