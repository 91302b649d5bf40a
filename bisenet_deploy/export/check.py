"""Check an ONNX graph against one TensorRT target's rules (`targets.py`, and section 3 of
docs/tensorrt-versions.md).

`check_onnx` returns human-readable violations (empty list = the graph obeys the rules). It runs
after every export and alone as `bisenet-export check MODEL.onnx --target T`. It catches, on this
machine, what would otherwise surface as a failed parse or silently wrong results on the device:
an opset the parser does not read, ReduceMean with axes as an input on TensorRT 8.2, computed
Resize scales ("Resize scales must be an initializer!"), UINT8 on 8.2, INT64 or float labels,
ops outside the verified set (a custom ArgMax plugin), aux heads left in the graph.

`parser_check` then asks the real thing where it is installed: TensorRT's own ONNX parser (full
TensorRT, else TensorRT-RTX, which runs without a GPU; portable/building/parser_check.py).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Set, Union

from ..errors import ExportError
from .targets import RESIZE_COORD_MODES, TargetRules, get_target

log = logging.getLogger(__name__)


def _dtype_name(elem_type: int) -> str:
    import onnx

    return onnx.TensorProto.DataType.Name(elem_type)


def _constant_names(graph: Any) -> Set[str]:
    names = {init.name for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            names.update(node.output)
    return names


def _constant_values(graph: Any, name: str):
    """The numpy value of an initializer or Constant output, or None."""
    from onnx import numpy_helper

    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init).ravel()
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t).ravel()
    return None


def _has_dynamic_dims(graph: Any) -> bool:
    for value in graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                return True
    return False


def check_onnx(model_or_path: Union[str, os.PathLike, Any], target: Union[str, TargetRules]
               ) -> List[str]:
    """Violations of `target`'s rules in an ONNX model (path or onnx.ModelProto); [] = passes."""
    import onnx

    from .onnx_metadata import load_onnx

    rules = get_target(target) if isinstance(target, str) else target
    model = load_onnx(model_or_path) if isinstance(model_or_path, (str, os.PathLike)) \
        else model_or_path
    graph = model.graph
    tp = onnx.TensorProto
    problems: List[str] = []

    # opset of the default domain
    opsets = {o.domain: o.version for o in model.opset_import}
    opset = opsets.get("", opsets.get("ai.onnx"))
    if opset is None:
        problems.append("the model declares no default-domain (ai.onnx) opset")
    elif not rules.min_opset <= opset <= rules.max_opset:
        problems.append(f"opset {opset} is outside {rules.min_opset}..{rules.max_opset} accepted "
                        f"for {rules.name} (TensorRT {rules.tensorrt}); re-export with --target "
                        f"{rules.name}")
    for domain in opsets:
        if domain not in ("", "ai.onnx"):
            problems.append(f"custom operator domain {domain!r} (needs a TensorRT plugin)")

    consts = _constant_names(graph)
    dynamic = _has_dynamic_dims(graph)
    producers: Dict[str, Any] = {out: node for node in graph.node for out in node.output}

    for node in graph.node:
        where = f"{node.op_type} node {node.name or node.output[0]!r}"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{where} is in custom domain {node.domain!r} (needs a plugin)")
            continue
        if node.op_type not in rules.allowed_ops:
            problems.append(f"{where}: op type {node.op_type} is not in the set verified for "
                            f"{rules.name}")
        if any(part.lower().startswith("aux")
               for part in (node.name or "").replace(".", "/").split("/")):
            problems.append(f"{where} belongs to an auxiliary (training-only) head")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "ReduceMean" and rules.reduce_mean_axes_attribute:
            if len(node.input) > 1 and node.input[1]:
                problems.append(f"{where} takes axes as an input (opset 18 form); TensorRT "
                                f"{rules.tensorrt} reads axes only from the attribute and would "
                                f"reduce every axis: export at opset <= 13")
            elif "axes" not in attrs:
                problems.append(f"{where} has no axes attribute (would reduce every axis)")
        if node.op_type == "Resize":
            mode = attrs.get("mode", b"nearest")
            mode = mode.decode() if isinstance(mode, bytes) else str(mode)
            if mode not in rules.resize_modes:
                problems.append(f"{where}: mode {mode!r} not supported by TensorRT {rules.tensorrt}")
            coord = attrs.get("coordinate_transformation_mode", b"half_pixel")
            coord = coord.decode() if isinstance(coord, bytes) else str(coord)
            if coord not in RESIZE_COORD_MODES:
                problems.append(f"{where}: coordinate_transformation_mode {coord!r} is not "
                                f"accepted by TensorRT's ONNX parser")
            scales = node.input[2] if len(node.input) > 2 else ""
            sizes = node.input[3] if len(node.input) > 3 else ""
            if scales and scales not in consts:
                problems.append(f"{where}: scales {scales!r} are computed, not a constant "
                                f"initializer (TensorRT: 'Resize scales must be an initializer!')")
            if sizes and sizes not in consts and not dynamic:
                problems.append(f"{where}: sizes {sizes!r} are computed in a graph with static "
                                f"shapes; they must be a constant")
            if scales and scales in consts and mode == "linear":
                values = _constant_values(graph, scales)
                if values is not None and len(values) >= 4 and float(values[0]) != 1.0:
                    problems.append(f"{where}: a linear resize may only scale the innermost 3 "
                                    f"dimensions (scales {list(values)} scale the batch)")
            if not scales and not sizes:
                problems.append(f"{where} has neither scales nor sizes")

    # dtypes: UINT8 anywhere on targets without it; UINT8 only at the graph input elsewhere
    def tensor_types():
        for v in list(graph.input) + list(graph.output) + list(graph.value_info):
            yield v.name, v.type.tensor_type.elem_type
        for init in graph.initializer:
            yield init.name, init.data_type
        for node in graph.node:
            if node.op_type == "Cast":
                to = [a.i for a in node.attribute if a.name == "to"]
                if to:
                    yield node.output[0], to[0]

    seen: Set[str] = set()
    for name, elem in tensor_types():
        if name in seen:
            continue
        if elem == tp.UINT8:
            seen.add(name)
            if not rules.uint8_input:
                problems.append(f"tensor {name!r} is UINT8: TensorRT {rules.tensorrt} has no UINT8 "
                                f"type; use a float32 input")
            elif name not in {v.name for v in graph.input}:
                problems.append(f"tensor {name!r} is UINT8 but not a graph input (TensorRT allows "
                                f"UINT8 only at the network's inputs/outputs)")
            else:
                readers = sorted({n.op_type for n in graph.node if name in n.input} - {"Cast"})
                if readers:
                    problems.append(f"UINT8 input {name!r} is read by {', '.join(readers)}: "
                                    f"TensorRT layers do not take UINT8 (Resize rejects it), "
                                    f"it must go through a Cast first")

    for value in list(graph.input) + list(graph.output):
        elem = value.type.tensor_type.elem_type
        if elem == tp.INT64 and not rules.int64_io:
            problems.append(f"graph {'input' if value in graph.input else 'output'} "
                            f"{value.name!r} is INT64, which TensorRT {rules.tensorrt} does not "
                            f"have (it arrived in 10.0)")
    for value in graph.input:
        elem = value.type.tensor_type.elem_type
        if elem not in (tp.FLOAT, tp.FLOAT16, tp.UINT8):
            problems.append(f"graph input {value.name!r} is {_dtype_name(elem)}; expected FLOAT "
                            f"(or UINT8 where the target allows it)")
    for value in graph.output:
        elem = value.type.tensor_type.elem_type
        if value.name == "labels":
            if elem != tp.INT32:
                problems.append(f"output 'labels' is {_dtype_name(elem)}; it must be INT32 "
                                f"(ArgMax followed by Cast(to=INT32))")
            node = producers.get(value.name)
            if node is None or node.op_type != "Cast":
                problems.append("output 'labels' is not produced by an explicit Cast(to=INT32)")
            elif getattr(producers.get(node.input[0]), "op_type", None) != "ArgMax":
                problems.append("output 'labels' is not a Cast of an ArgMax (the one label form "
                                "every TensorRT from 8.2 to 11 agrees on)")
        elif value.name == "logits":
            if elem != tp.FLOAT:
                problems.append(f"output 'logits' is {_dtype_name(elem)}; it must be FLOAT (FP32 "
                                f"at the graph boundary, also for FP16 graphs)")
        else:
            problems.append(f"unexpected graph output {value.name!r} (aux heads or debug "
                            f"outputs must not be exported; expected labels/logits)")
    return problems


def parser_check(model_or_path: Union[str, os.PathLike, Any]) -> Optional[Any]:
    """The real TensorRT ONNX parser's verdict (portable.building.parser_check.ParserVerdict) on an ONNX
    model (path or onnx.ModelProto); None when no TensorRT is installed here."""
    from ..portable.building.parser_check import run_parser_check

    if isinstance(model_or_path, (str, os.PathLike)):
        path = os.fspath(model_or_path)
        with open(path, "rb") as f:
            data = f.read()
        return run_parser_check(data, os.path.basename(path))
    return run_parser_check(model_or_path.SerializeToString(), "exported.onnx")


def tensorrt_parser_check(model: Any) -> Optional[Any]:
    """The real TensorRT parser's verdict (None without TensorRT); a rejection stops the export."""
    from ..portable.building.parser_check import NO_PARSER

    verdict = parser_check(model)
    if verdict is None:
        log.debug("TensorRT parser: %s", NO_PARSER)  # the command prints its verdict once
        return None
    if not verdict.ok:
        raise ExportError(f"{verdict.label}'s ONNX parser rejects the exported graph: "
                          f"{verdict.details()}. Nothing was written; the target's rules should "
                          f"have caught this, so please report it")
    log.debug("%s", verdict.summary())  # the command prints its verdict once
    return verdict


def check_graph(model: Any) -> Any:
    """onnx.checker with full (strict) shape inference; returns the shape-inferred model."""
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:
        raise ExportError(f"the exported graph fails onnx.checker: {type(exc).__name__}: {exc}") \
            from None


def target_check(model: Any, rules: TargetRules) -> None:
    """The target's rules as one export failure naming every broken rule."""
    problems = check_onnx(model, rules)
    if problems:
        raise ExportError(f"the graph breaks {len(problems)} rule(s) of target {rules.name}: "
                          + "; ".join(problems))
