"""The INT8 Q/DQ graph: the checked FP32 graph with QuantizeLinear/DequantizeLinear pairs where
TensorRT runs INT8 kernels (explicit quantization, TensorRT 8.0+, the only INT8 of TensorRT 11).

Why this way (docs/int8.md has the measurements):

* Calibration runs the exported FP32 graph itself on onnxruntime, fed the raw images exactly as a
  deployment feeds them (`preprocess.prepare_input`: host resize to the input size only). The
  graph's own resize and normalization produce what each layer sees, so there is no second copy of
  the preprocessing to get wrong (the classic INT8 bug: a calibrator with the wrong mean/std).
* TensorRT's rules: signed INT8, symmetric (zero point 0; an asymmetric graph fails its parser),
  per-channel weight scales, float bias. Q/DQ on the inputs of Conv and of the Adds (residual,
  context embedding, the BGA sum) only: TensorRT moves Q/DQ across pooling itself, and quantizing
  the pooling/Concat/BGA-Mul inputs too cost label agreement (docs/int8.md); nothing after the
  last Conv: the head's upsampling Resize, ArgMax, Cast and the logits output stay float. The
  last Conv itself, the classifier, keeps float weights on its INT8 input (float_classifier).
* Then two lossless rewrites (qdq_relu.py) let onnxruntime's CPU kernels run the convolutions
  in integers too: a Q right after each Conv that feeds a ReLU (same scale as the Q after the
  ReLU) and one Q/DQ pair per reader of a shared tensor. Labels are unchanged, bit for bit.
* The quantizer is onnxruntime.quantization (ships inside onnxruntime, already a dependency).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ExportError, InputError
from .graph_surgery import QUANTIZED_WEIGHT_SUFFIX

log = logging.getLogger(__name__)

#: calibration methods (our names -> onnxruntime's CalibrationMethod members)
CALIBRATION_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
#: chosen by measured label agreement on held-out street scenes (docs/int8.md)
DEFAULT_METHOD = "percentile"
#: ops whose inputs get Q/DQ pairs: where TensorRT's fusions put INT8 kernels (Conv, with its
#: BN/ReLU fused, and the Adds). Also quantizing Mul/Concat/pooling inputs measured 0.5-0.6 points
#: less label agreement (docs/int8.md) and TensorRT propagates Q/DQ across pooling anyway
QUANTIZED_OPS = ("Conv", "Add")
DEFAULT_CALIB_COUNT = 32
#: the smallest opset with per-channel (axis) DequantizeLinear
MIN_QDQ_OPSET = 13


@dataclass
class QuantizeSettings:
    """How to quantize: calibration method, images, layers kept in float."""

    method: str = DEFAULT_METHOD
    keep_float: Tuple[str, ...] = ()
    op_types: Tuple[str, ...] = QUANTIZED_OPS
    percentile: float = 99.999
    no_output_qdq: Tuple[str, ...] = QUANTIZED_OPS
    extra_exclude: Tuple[str, ...] = field(default_factory=tuple)
    #: the lossless onnxruntime-CPU rewrites of qdq_relu.py (off only to measure without them)
    cpu_fusable: bool = True
    #: the keep_float Convs run in FP16 (a strongly typed target: TensorRT 11), else in FP32
    keep_float_fp16: bool = False
    #: the classifier (the Conv that writes the logits) keeps float weights (float_classifier)
    float_classifier: bool = True

    def validate(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise InputError(f"unknown calibration method {self.method!r}: choose one of "
                             f"{', '.join(CALIBRATION_METHODS)}")


def import_quantization():
    """onnxruntime.quantization, or one line saying what to install."""
    from ..errors import MissingDependencyError

    try:
        from onnxruntime import quantization
    except ImportError as exc:
        raise MissingDependencyError(
            f"INT8 export needs onnxruntime's quantization tools ({exc}): pip install "
            f"onnxruntime") from None
    return quantization


def graph_input_batch(record: Dict[str, Any]) -> int:
    """The batch size every calibration/evaluation run feeds the graph."""
    batch = record["export"]["batch"]
    return int(batch["min"]) if batch.get("dynamic") else int(batch["size"])


def batches(images: Sequence[np.ndarray], record: Dict[str, Any]) -> Iterable[np.ndarray]:
    """The graph inputs for `images`, in full batches of the graph's batch size (a last partial
    batch is padded with repeats of its first image, so every image is seen once)."""
    from ..portable.running.preprocess import prepare_input

    size = graph_input_batch(record)
    for start in range(0, len(images), size):
        chunk = list(images[start:start + size])
        chunk += [chunk[0]] * (size - len(chunk))
        yield prepare_input(chunk, record)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over prepared batches (made lazily, so the
    calibration images are not all held as float tensors at once)."""

    def __init__(self, images: Sequence[np.ndarray], record: Dict[str, Any]):
        self._name = record["export"]["input_name"]
        self._iter = iter(batches(images, record))

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        batch = next(self._iter, None)
        return None if batch is None else {self._name: batch}

    def rewind(self) -> None:  # the calibrators call it between passes on some versions
        pass


def tail_nodes(model: Any) -> List[str]:
    """Names of the nodes from which no Conv can be reached: the head's last Resize, ArgMax,
    Cast and the logits output path. They stay float (excluded from quantization)."""
    from .graph_surgery import readers_of

    graph = model.graph
    consumers = readers_of(graph)
    feeds_conv: Dict[str, bool] = {}
    for node in reversed(list(graph.node)):  # nodes are topologically sorted
        feeds_conv[node.name] = any(
            c.op_type == "Conv" or feeds_conv.get(c.name, False)
            for out in node.output for c in consumers.get(out, []))
    return [n.name for n in graph.node if not feeds_conv[n.name] and n.op_type != "Conv"]


def name_nodes(model: Any) -> None:
    """Give every unnamed node a unique name (the quantizer excludes nodes by name)."""
    seen = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def conv_layers(model: Any) -> Dict[str, str]:
    """{Conv node name: its PyTorch module path} ('detail.S1.0.conv'): from the weight's name
    (the dynamo exporter keeps `net.<module>.weight`), else from the node's scope name (the
    TorchScript exporter's '/detail/S1/S1.0/conv/Conv')."""
    layers = {}
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        weight = node.input[1] if len(node.input) > 1 else ""
        # a Q/DQ graph's weights, and a --keep-float one's FP16 copies (fp16.convs_to_fp16)
        for suffix in ("_DequantizeLinear_Output", QUANTIZED_WEIGHT_SUFFIX, "_fp16"):
            weight = weight[:-len(suffix)] if weight.endswith(suffix) else weight
        if weight.endswith(".weight"):
            path = weight[:-len(".weight")]
            path = path[len("net."):] if path.startswith("net.") else path
        else:
            parts = [p for p in node.name.split("/") if p][:-1]
            # '/segment/S3/S3.0/conv1' repeats the container in its child's name
            parts = [p for i, p in enumerate(parts)
                     if not (i + 1 < len(parts) and parts[i + 1].startswith(p + "."))]
            path = ".".join(parts) or node.name
        layers[node.name] = path
    return layers


def block_of(layer: str) -> str:
    """The block a layer belongs to: 'segment.S3.0.conv1.conv' -> 'segment.S3.0' (one GE
    layer), 'detail.S2.1.conv' -> 'detail.S2', 'bga.left1.0' -> 'bga.left1'."""
    parts = layer.split(".")
    if len(parts) >= 3 and parts[0] == "segment" and parts[2].isdigit():
        return ".".join(parts[:3])
    return ".".join(parts[:2])


def resolve_keep_float(model: Any, layers: Sequence[str]) -> List[str]:
    """Conv node names for `--keep-float LAYER...`: a LAYER is a module path or its prefix
    (`segment.S5_4`, `head`, `bga.left1.0`) or a node name; one matching nothing is refused
    with the blocks there are."""
    convs = conv_layers(model)
    chosen: List[str] = []
    for layer in layers:
        hits = [n for n, path in convs.items()
                if n == layer or path == layer or path.startswith(layer.rstrip(".") + ".")]
        if not hits:
            blocks = sorted({block_of(p) for p in convs.values()})
            raise InputError(f"--keep-float {layer!r} matches no layer of the graph; its blocks "
                             f"are: {', '.join(blocks)}")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def quantize_graph(fp32_model: Any, record: Dict[str, Any], images: Sequence[np.ndarray],
                   settings: QuantizeSettings) -> Any:
    """The Q/DQ copy of `fp32_model` (onnx.ModelProto, left unchanged), calibrated on `images`
    (H x W x 3 uint8 RGB, fed as a deployment feeds them)."""
    import onnx

    settings.validate()
    if not images:
        raise InputError("INT8 calibration needs at least one image")
    opset = max((o.version for o in fp32_model.opset_import if o.domain in ("", "ai.onnx")),
                default=0)
    if opset < MIN_QDQ_OPSET:
        raise InputError(f"--precision int8 needs opset >= {MIN_QDQ_OPSET} (per-channel "
                         f"DequantizeLinear), this graph is opset {opset}: leave --opset out")
    q = import_quantization()
    model = onnx.ModelProto()
    model.CopyFrom(fp32_model)
    del model.metadata_props[:]
    name_nodes(model)
    kept = resolve_keep_float(model, settings.keep_float)
    exclude = tail_nodes(model) + kept + list(settings.extra_exclude)
    # the quantizer puts no Q/DQ on Conv or Add outputs: the next quantized op's input gets the
    # pair (after the ReLU), and the head's logits stay float; the Q before each ReLU comes from
    # make_cpu_fusable below, with the post-ReLU scale (lossless)
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
             "CalibPercentile": settings.percentile,
             "OpTypesToExcludeOutputQuantization": list(settings.no_output_qdq)}
    with tempfile.TemporaryDirectory(prefix="bisenet-int8-") as tmp:
        src, dst = os.path.join(tmp, "fp32.onnx"), os.path.join(tmp, "int8.onnx")
        onnx.save(model, src)
        try:
            with _quiet_quantizer():
                q.quantize_static(
                    src, dst, _Reader(images, record), quant_format=q.QuantFormat.QDQ,
                    op_types_to_quantize=list(settings.op_types), per_channel=True,
                    activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
                    nodes_to_exclude=exclude, calibrate_method=getattr(
                        q.CalibrationMethod, CALIBRATION_METHODS[settings.method]),
                    extra_options=extra)
        except (InputError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise ExportError(f"INT8 quantization failed in onnxruntime.quantization: "
                              f"{type(exc).__name__}: {exc}") from None
        quantized = onnx.load(dst)
    rewired = read_float_inputs(quantized, kept)
    if settings.float_classifier:
        rewired += float_classifier(quantized, model)
    if rewired:
        from .graph_surgery import prune_dead_nodes

        prune_dead_nodes(quantized)  # pairs only a kept Conv read, the classifier's weight DQ
    if settings.cpu_fusable:
        from .qdq_relu import make_cpu_fusable

        log.debug("INT8 onnxruntime-CPU rewrites: %s", make_cpu_fusable(quantized))
    if kept and settings.keep_float_fp16:
        from .fp16 import convs_to_fp16

        try:
            log.info("INT8: %d kept Conv(s) in FP16", convs_to_fp16(quantized, kept))
        except ValueError as exc:
            raise ExportError(f"--keep-float in FP16 failed: {exc}") from None
    problems = qdq_problems(quantized)
    if problems:
        raise ExportError("the INT8 graph breaks TensorRT's Q/DQ rules (a bug, please report "
                          "it): " + "; ".join(problems[:5]))
    log.info("INT8: %d Q/DQ pair(s), %d node(s) kept float", count_qdq(quantized), len(exclude))
    return quantized


def read_float_inputs(model: Any, conv_names: Sequence[str]) -> int:
    """Make the kept-float Convs read the float tensor itself where the quantizer gave them the
    DequantizeLinear of a pair that another, quantized reader of the same tensor needs (a
    shared input): `--keep-float` means float input, not the INT8-rounded one. In place;
    returns how many inputs were rewired."""
    from .graph_surgery import dequantized_source

    producers = {o: n for n in model.graph.node for o in n.output}
    wanted, rewired = set(conv_names), 0
    for node in model.graph.node:
        if node.op_type != "Conv" or node.name not in wanted:
            continue
        source = dequantized_source(node.input[0], producers)
        if source is not None and source[0] == "activation":
            node.input[0] = source[1]
            rewired += 1
    return rewired


def float_classifier(model: Any, fp32_model: Any) -> int:
    """Give the classifier, the Conv whose output only the float tail reads (the logits), its
    float weights back; its input stays INT8. In place; returns how many Convs changed (1).

    Why: it is the layer whose quantization moves the most labels (the sensitivity scan ranks
    it first on a trained model), it is a 1x1 convolution of a few MFLOP, and as a float Conv
    onnxruntime runs it, and the upsampling of the logits after it, in its blocked float layout:
    about 5% off the INT8 graph's time on CPU (docs/int8.md). TensorRT runs it as a float layer on
    the dequantized input."""
    from .graph_surgery import dequantized_source, readers_of

    tail = set(tail_nodes(model))
    readers = readers_of(model.graph)
    producers = {o: n for n in model.graph.node for o in n.output}
    floats = {i.name: i for i in fp32_model.graph.initializer}
    have = {i.name for i in model.graph.initializer}
    changed = 0
    for conv in model.graph.node:
        after = readers.get(conv.output[0], [])
        if conv.op_type != "Conv" or not after or any(n.name not in tail for n in after):
            continue
        source = dequantized_source(conv.input[1], producers) if len(conv.input) > 1 else None
        if source is None or source[0] != "weight" or source[1] not in floats:
            continue
        weight = source[1]
        if weight not in have:
            model.graph.initializer.append(floats[weight])
            have.add(weight)
        conv.input[1] = weight
        changed += 1
    return changed


class _NoPreprocessAdvice(logging.Filter):
    """onnxruntime.quantization advises `quant_pre_process` on the root logger; our graph is
    already simplified and shape-inferred, so the advice is noise for our users."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def _quiet_quantizer():
    """The quantizer prints its calibration progress to stdout: keep it off our stdout (a
    command's output, maybe JSON) and in the debug log instead."""
    buffer = io.StringIO()
    root = logging.getLogger()
    advice = _NoPreprocessAdvice()
    root.addFilter(advice)
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        root.removeFilter(advice)
        if buffer.getvalue().strip():
            log.debug("onnxruntime.quantization: %s", buffer.getvalue().strip())


def count_qdq(model: Any) -> int:
    return sum(1 for n in model.graph.node if n.op_type == "QuantizeLinear")


def qdq_problems(model: Any) -> List[str]:
    """What in a Q/DQ graph TensorRT would refuse or we promise not to do: non-zero or non-INT8
    zero points, Q/DQ right before ArgMax/Cast or on a graph output."""
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    problems = []
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zp = inits.get(node.input[2])
            if zp is None:
                problems.append(f"{node.name}: zero point is not a constant")
            elif zp.data_type != TensorProto.INT8:
                problems.append(f"{node.name}: zero point is not INT8 (asymmetric/unsigned)")
            elif np.any(numpy_helper.to_array(zp) != 0):
                problems.append(f"{node.name}: zero point is not 0 (TensorRT needs symmetric)")
        if node.op_type in ("ArgMax", "Cast", "Resize") and node.input:
            src = producers.get(node.input[0])
            if src is not None and src.op_type == "DequantizeLinear" and node.op_type != "Resize":
                problems.append(f"{node.name}: {node.op_type} reads a quantized tensor")
    for out in model.graph.output:
        src = producers.get(out.name)
        if src is not None and src.op_type in ("QuantizeLinear", "DequantizeLinear"):
            problems.append(f"graph output {out.name} is quantized")
    return problems
