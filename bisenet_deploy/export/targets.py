"""The rules each TensorRT target imposes on an exported graph, as one table.

Facts: docs/tensorrt-versions.md (sections 1-3). Why these choices:

* Exporter: any target's graph can come from either PyTorch exporter (exporters.py). The
  torch.export-based one (`dynamo=True`, the default) writes opset 18; opset_convert.py brings it
  down to the target's opset and op forms (onnx's version converter plus passes for what it
  lacks), and the same rules below are checked on the result. The TorchScript exporter
  (`dynamo=False`, deprecated by PyTorch) writes opset 11-20 directly and stays as the fallback.
* Opset: trt8.2 defaults to 13 (its maximum; 11-13 allowed). The other targets default to 17,
  the newest opset in which ReduceMean still takes `axes` as an attribute (opset 18 moved it to
  an input, which TensorRT 8.2 misreads as "reduce everything"); every TensorRT from 8.6 parses
  it, and nothing in BiSeNet V2 needs a newer op. trt8.6 accepts 11-17 (onnx-tensorrt 8.6 parses
  up to 17), trt10 accepts 11-20 (10.0/10.1 parse 9-20), trt11 11-20 (the TorchScript exporter's
  ceiling; 10.15+ parse up to 24). `--opset 18` gives the dynamo exporter's own graph unconverted.
* Input dtype: UINT8 exists from TensorRT 8.5 (as a network input/output only); 8.2 has no UINT8
  type at all, so trt8.2 refuses `--input-dtype uint8`.
* INT8 (trt8.6/10/11): a Q/DQ graph (explicit quantization, TensorRT 8.0+; the only INT8 of
  TensorRT 11), quantize.py. trt8.2 refuses it: the TX2 has no fast INT8.
* Precision: TensorRT 11 dropped every precision builder flag (networks are strongly typed), so
  on trt11 `--precision fp16` writes an FP16 graph (weights and ops in FP16, FP32 casts at the
  inputs/outputs). Older targets keep an FP32 graph and the engine builder sets its FP16 flag.

Where each rule comes from. Documented (docs/tensorrt-versions.md): trt8.2 parses opset <= 13,
reads ReduceMean axes only from the attribute, has no UINT8 and no INT64 I/O, accepts Resize modes
nearest/linear with the coordinate modes in RESIZE_COORD_MODES and constant scales, linear resize
of the innermost 3 dims only; 10.x parses opsets 9-20 (10.15: 9-24), adds cubic resize and INT64,
allows UINT8 only at the network's inputs/outputs; UINT8 exists from 8.5; TensorRT 11 has no
precision flags.
NOT documented by NVIDIA (our conservative choices or inferences, to be confirmed on a real
TensorRT):
* trt8.6's opset ceiling 17 and "every TensorRT from 8.6 parses opset 17" (no documented
  opset range for 8.5/8.6);
* a minimum opset of 11 on every target (the parsers read older opsets; 11 is the first with
  Resize's coordinate_transformation_mode, which the bilinear half_pixel resize needs);
* trt11's opset range 11-20 (nothing documented about 11.x's parser; 20 is the
  TorchScript exporter's ceiling);
* UINT8 input on trt8.6 (documented: the UINT8 type arrived in 8.5; that 8.5/8.6's ONNX
  parser takes a UINT8 network input is inferred), and trt11 keeping 10.x's UINT8/INT64 rules;
* trt8.6's Resize modes and the coordinate modes of 8.6/10/11 (assumed to be at least 8.2's);
* COMMON_OPS, the op set the check allows (taken from what BiSeNet V2 exports to, plus the
  INT8 graph's LeakyRelu(alpha=0) ReLUs, export/qdq_relu.py; the documentation lists only the
  ops with known pitfalls).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, FrozenSet, Optional, Tuple

from ..errors import InputError
from ..portable.files.record_schema import PRECISIONS, TARGET_NAMES  # noqa: F401  (defined once there)

DEFAULT_TARGET = "trt10"
#: the explicit-quantization ops of an INT8 (Q/DQ) graph, accepted from TensorRT 8.0 on
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
#: per-channel DequantizeLinear (its `axis`) needs opset 13
MIN_INT8_OPSET = 13

# The standard ONNX ops a BiSeNet V2 deploy graph is made of (before and after onnx-simplifier),
# all listed as supported in onnx-tensorrt's operators.md from 8.2 on (our list, see the module
# docstring and docs/tensorrt-versions.md s.3). Anything else (a custom ArgMax, a Loop, an op the
# simplifier failed to fold) is flagged by the target check rather than discovered by a failing
# TensorRT parse on the device.
COMMON_OPS = frozenset({
    "Add", "ArgMax", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant",
    "ConstantOfShape", "Conv", "ConvTranspose", "DepthToSpace", "Div", "Expand", "Flatten", "Gather",
    "GlobalAveragePool", "GlobalMaxPool", "Identity", "LeakyRelu", "MaxPool", "Mul", "Pad",
    "ReduceMax", "ReduceMean", "Relu", "Reshape", "Resize", "Shape", "Sigmoid", "Slice",
    "Softmax", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze",
})

# coordinate_transformation_mode values onnx-tensorrt 8.2+ accepts for Resize
RESIZE_COORD_MODES = frozenset({"half_pixel", "pytorch_half_pixel", "asymmetric", "align_corners"})


@dataclass(frozen=True)
class TargetRules:
    """Everything the exporter and the checker need to know about one TensorRT target."""

    name: str
    tensorrt: str                 # versions this target stands for
    devices: str                  # where that TensorRT runs
    default_opset: int
    min_opset: int
    max_opset: int
    uint8_input: bool             # may the graph input be UINT8
    int64_io: bool                # may a graph input/output be INT64
    reduce_mean_axes_attribute: bool  # ReduceMean must carry axes as an attribute
    resize_modes: FrozenSet[str]  # Resize `mode` values the parser accepts
    fp16_graph: bool              # --precision fp16 means an FP16 graph (no builder flags)
    allowed_ops: FrozenSet[str] = COMMON_OPS
    #: why --precision int8 (a Q/DQ graph) is refused for this target; None: allowed
    int8_refused: Optional[str] = None

    def graph_precision(self, precision: str) -> str:
        """The precision of the ONNX graph itself for a requested engine precision."""
        return "fp16" if (precision == "fp16" and self.fp16_graph) else "fp32"

    def opset_for(self, requested: Optional[int]) -> int:
        if requested is None:
            return self.default_opset
        if not self.min_opset <= int(requested) <= self.max_opset:
            raise InputError(
                f"--opset {requested} is outside what target {self.name} (TensorRT "
                f"{self.tensorrt}) accepts here: {self.min_opset}..{self.max_opset}; leave --opset "
                f"out to get {self.default_opset}")
        return int(requested)


TARGETS: Dict[str, TargetRules] = {
    "trt8.2": TargetRules(
        name="trt8.2", tensorrt="8.2", devices="Jetson TX2 / JetPack 4.6, older desktops",
        default_opset=13, min_opset=11, max_opset=13,
        uint8_input=False, int64_io=False, reduce_mean_axes_attribute=True,
        resize_modes=frozenset({"nearest", "linear"}), fp16_graph=False,
        int8_refused="the Jetson TX2 (SM 6.2) has no fast INT8 (no DP4A), so an INT8 engine "
                     "would be slower than FP16 and less accurate; use --precision fp16"),
    # opset ceiling 17, UINT8 input and Resize modes: inferred, not documented (see above)
    "trt8.6": TargetRules(
        name="trt8.6", tensorrt="8.5-8.6", devices="GTX 1080 Ti and other Pascal (SM 6.x) GPUs",
        default_opset=17, min_opset=11, max_opset=17,
        uint8_input=True, int64_io=False, reduce_mean_axes_attribute=False,
        resize_modes=frozenset({"nearest", "linear"}), fp16_graph=False,
        allowed_ops=COMMON_OPS | QDQ_OPS),
    "trt10": TargetRules(
        name="trt10", tensorrt="10.x", devices="Turing/Ampere/Ada/Hopper desktops and servers",
        default_opset=17, min_opset=11, max_opset=20,
        uint8_input=True, int64_io=True, reduce_mean_axes_attribute=False,
        resize_modes=frozenset({"nearest", "linear", "cubic"}), fp16_graph=False,
        allowed_ops=COMMON_OPS | QDQ_OPS),
    # opset range: our choice, nothing documented about 11.x's parser (see above)
    "trt11": TargetRules(
        name="trt11", tensorrt="11.x", devices="Turing and newer; strongly typed networks",
        default_opset=17, min_opset=11, max_opset=20,
        uint8_input=True, int64_io=True, reduce_mean_axes_attribute=False,
        resize_modes=frozenset({"nearest", "linear", "cubic"}), fp16_graph=True,
        allowed_ops=COMMON_OPS | QDQ_OPS),
}


def get_target(name: str) -> TargetRules:
    try:
        return TARGETS[name]
    except KeyError:
        raise InputError(f"unknown target {name!r}: choose one of {', '.join(TARGET_NAMES)}") from None


def validate_target_options(target: str, *, input_dtype: str, precision: str,
                            opset: Optional[int]) -> Tuple[TargetRules, int]:
    """Check the export options against the target's rules before any work; returns (rules, opset)."""
    rules = get_target(target)
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}: choose fp32, fp16 or int8")
    if precision == "int8" and rules.int8_refused:
        raise InputError(f"--precision int8 is refused for target {rules.name}: "
                         f"{rules.int8_refused}")
    if input_dtype not in ("float32", "uint8"):
        raise InputError(f"unknown input dtype {input_dtype!r}: choose float32 or uint8")
    if input_dtype == "uint8" and not rules.uint8_input:
        raise InputError(
            f"--input-dtype uint8 is not possible for target {rules.name}: TensorRT "
            f"{rules.tensorrt} has no UINT8 data type at all (it arrived in 8.5), so its ONNX "
            f"parser rejects the graph; use --input-dtype float32 for {rules.name}")
    chosen = rules.opset_for(opset)
    if precision == "int8" and chosen < MIN_INT8_OPSET:
        raise InputError(f"--precision int8 needs --opset {MIN_INT8_OPSET} or newer (per-channel "
                         f"DequantizeLinear), got {chosen}; leave --opset out")
    return rules, chosen
