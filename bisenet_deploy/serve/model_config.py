"""config.pbtxt for a production Triton: tensors, batching, instances and metadata parameters.

Rules Triton applies and this file follows:
- with `max_batch_size > 0` the batch dimension is implicit: dims leave it out, and Triton's
  dynamic batcher may gather requests up to that size. A dynamic-batch export whose range starts
  at 1 gets `max_batch_size` = the range's maximum (or less, when asked);
- a static batch (the default export: batch 1) cannot be batched by Triton: `max_batch_size: 0`
  and every dims entry is the full shape, batch included; no dynamic_batching section;
- a dynamic range that does not start at 1 (an engine profile 2..8) cannot take Triton's
  single-image requests either: `max_batch_size: 0` with dims [-1, ...] (clients send >= min).

Pure (no Triton, no protobuf); the tests parse every rendered file with Triton's own schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import InputError
from .model_io import triton_datatype

PLATFORMS = {"tensorrt_plan": "model.plan", "onnxruntime_onnx": "model.onnx"}
KINDS = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}
#: Triton waits this long for more requests to complete a preferred batch (microseconds)
DEFAULT_QUEUE_DELAY_US = 500
#: bisenet-serve's delay for a runner on the CPU: no wait, Triton batches what is queued (on a
#: 2-core CPU, 8 clients: 0 us ran 46.5 images/s at p99 191-199 ms, 500 us 41-43 at 274-294 ms,
#: 5000 us 43-46 at 216 ms, no batching 39-40 at 213-293 ms; docs/serving.md)
CPU_QUEUE_DELAY_US = 0


@dataclass
class TensorConfig:
    """One model input or output: numpy dtype name, full shape with the batch dim (-1: dynamic)."""

    name: str
    dtype: str
    shape: List[int]


@dataclass
class ModelConfigSpec:
    """Everything one config.pbtxt says."""

    name: str
    platform: str
    inputs: List[TensorConfig]
    outputs: List[TensorConfig]
    #: (min, opt, max) of a dynamic batch dimension, None for a static batch
    batch_range: Optional[Tuple[int, int, int]]
    max_batch: Optional[int] = None
    kind: str = "gpu"
    instances: int = 1
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    parameters: Dict[str, str] = field(default_factory=dict)


def batching(batch_range: Optional[Tuple[int, int, int]], max_batch: Optional[int],
             what: str) -> Tuple[int, List[int]]:
    """(max_batch_size, preferred batch sizes) for a model with this batch range.

    `max_batch` (the user's --max-batch) may lower the range's maximum, never raise it.
    """
    if batch_range is None:
        if max_batch not in (None, 0, 1):
            raise InputError(f"{what} has a static batch: Triton cannot batch it, so --max-batch "
                             f"{max_batch} is not possible (export with --dynamic-batch 1:4:8)")
        return 0, []
    lo, opt, hi = (int(v) for v in batch_range)
    if lo > 1:
        return 0, []
    if max_batch is not None:
        if not 1 <= int(max_batch) <= hi:
            raise InputError(f"--max-batch {max_batch} is outside what {what} takes (1..{hi})")
        hi = int(max_batch)
    preferred = sorted({v for v in (min(opt, hi), hi) if v > 1})
    return hi, preferred


def quote(text: str) -> str:
    """A protobuf text-format string literal."""
    escaped = (str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r"))
    return f'"{escaped}"'


def _dims(shape: Sequence[int], batched: bool) -> str:
    dims = list(shape[1:]) if batched else list(shape)
    return "[ " + ", ".join(str(int(d)) for d in dims) + " ]"


def _tensors(key: str, tensors: Sequence[TensorConfig], batched: bool) -> List[str]:
    lines = [f"{key} ["]
    for i, t in enumerate(tensors):
        lines += ["  {",
                  f"    name: {quote(t.name)}",
                  f"    data_type: TYPE_{triton_datatype(t.dtype)}",
                  f"    dims: {_dims(t.shape, batched)}",
                  "  }" + ("," if i < len(tensors) - 1 else "")]
    return lines + ["]"]


def _warmup(inputs: Sequence[TensorConfig], batches: Sequence[int]) -> List[str]:
    """model_warmup: one zero request of each batch size the batcher forms ([0]: a model Triton
    does not batch, warmed with batch_size 1 and its full dims), run before Triton says the model
    is ready, so the first real bursts do not pay for first-run allocations. Skipped when a dim
    is dynamic."""
    if any(d < 0 for t in inputs for d in (t.shape[1:] if batches != [0] else t.shape)):
        return []
    lines = ["model_warmup ["]
    for i, n in enumerate(batches):
        lines += ["  {", f"    name: {quote(f'zero batch {n or 1}')}", f"    batch_size: {n or 1}",
                  "    inputs {"]
        for t in inputs:
            lines += [f"      key: {quote(t.name)}", "      value {",
                      f"        data_type: TYPE_{triton_datatype(t.dtype)}",
                      f"        dims: {_dims(t.shape, batches != [0])}", "        zero_data: true",
                      "      }"]
        lines += ["    }", "  }" + ("," if i < len(batches) - 1 else "")]
    return lines + ["]"]


def render_config(spec: ModelConfigSpec) -> str:
    """The config.pbtxt text of one model."""
    if spec.platform not in PLATFORMS:
        raise InputError(f"unknown Triton platform {spec.platform!r}")
    if spec.kind not in KINDS:
        raise InputError(f"instance kind must be one of {', '.join(KINDS)}, got {spec.kind!r}")
    if int(spec.instances) < 1:
        raise InputError(f"instances must be >= 1, got {spec.instances}")
    if int(spec.max_queue_delay_us) < 0:
        raise InputError(f"the queue delay must be >= 0 us, got {spec.max_queue_delay_us}")
    max_batch_size, preferred = batching(spec.batch_range, spec.max_batch,
                                         f"model {spec.name!r}")
    batched = max_batch_size > 0
    lines = [f"name: {quote(spec.name)}",
             f"platform: {quote(spec.platform)}",
             f"default_model_filename: {quote(PLATFORMS[spec.platform])}",
             f"max_batch_size: {max_batch_size}"]
    lines += _tensors("input", spec.inputs, batched)
    lines += _tensors("output", spec.outputs, batched)
    if batched:
        lines += ["dynamic_batching {"]
        if preferred:
            lines += [f"  preferred_batch_size: [ {', '.join(str(v) for v in preferred)} ]"]
        lines += [f"  max_queue_delay_microseconds: {int(spec.max_queue_delay_us)}", "}"]
    lines += ["instance_group [",
              "  {",
              f"    count: {int(spec.instances)}",
              f"    kind: {KINDS[spec.kind]}",
              "  }",
              "]"]
    lines += _warmup(spec.inputs, sorted({1, *preferred}) if batched else [0])  # 0: unbatched
    for key, value in spec.parameters.items():
        lines += ["parameters {",
                  f"  key: {quote(key)}",
                  f"  value: {{ string_value: {quote(value)} }}",
                  "}"]
    return "\n".join(lines) + "\n"
