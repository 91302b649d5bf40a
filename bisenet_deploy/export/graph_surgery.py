"""Graph surgery on exported ONNX graphs: Resize sizes the TorchScript exporter computes from Shape
ops become constants when the shapes are static (the graph stays simple even without
onnx-simplifier), and nodes and initializers no output needs are dropped (after such rewrites,
and when the INT8 sensitivity scan strips Q/DQ pairs), and what a Q/DQ graph's DequantizeLinear
stands for is read back (to give a node its float input)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

#: onnxruntime.quantization names a quantized weight initializer `<float name>_quantized`
QUANTIZED_WEIGHT_SUFFIX = "_quantized"


def readers_of(graph: Any) -> Dict[str, List[Any]]:
    """{tensor name: the nodes that read it, in graph order}."""
    readers: Dict[str, List[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def dequantized_source(name: str, producers: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    """What the tensor `name` dequantizes, where a DequantizeLinear writes it:
    ("activation", the tensor its QuantizeLinear read) or ("weight", the name of the float
    initializer the quantizer made `<name>_quantized` from); None for anything else."""
    dq = producers.get(name)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    src = dq.input[0]
    q = producers.get(src)
    if q is not None and q.op_type == "QuantizeLinear":
        return "activation", q.input[0]
    if src.endswith(QUANTIZED_WEIGHT_SUFFIX):
        return "weight", src[:-len(QUANTIZED_WEIGHT_SUFFIX)]
    return None


def freeze_resize_sizes(model: Any) -> int:
    """Replace computed Resize `sizes` whose output shape is static by a constant initializer.

    The TorchScript exporter computes `sizes` from Shape ops even when every shape is static;
    onnx-simplifier folds them, but with --no-simplify (or a failed simplification) they would stay
    computed. Returns the number of Resize nodes changed.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    consts = {i.name for i in graph.initializer} | \
        {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    todo = [n for n in graph.node if n.op_type == "Resize" and len(n.input) > 3 and n.input[3]
            and n.input[3] not in consts]
    if not todo:
        return 0
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = v.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[v.name] = [d.dim_value for d in dims]
    changed = 0
    for node in todo:
        shape = shapes.get(node.output[0])
        if shape is None:
            continue
        name = node.output[0] + "_static_sizes"
        graph.initializer.append(numpy_helper.from_array(np.asarray(shape, np.int64), name))
        node.input[3] = name
        changed += 1
    if changed:
        prune_dead_nodes(model)
    return changed


def prune_dead_nodes(model: Any) -> None:
    """Keep only the nodes and initializers the graph's outputs depend on."""
    graph = model.graph
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep.reverse()
    del graph.node[:]
    graph.node.extend(keep)
    used = needed
    inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
