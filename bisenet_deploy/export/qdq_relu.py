"""Give every `Conv -> Relu -> QuantizeLinear` a QuantizeLinear right after its Conv, losslessly.

The quantizer places the Q/DQ pair after the ReLU (on the next op's input), as TensorRT wants:
it fuses Conv+BN+ReLU and reads the pair after the ReLU as the fused layer's INT8 output. But
onnxruntime's CPU kernels only make an integer convolution of DequantizeLinear -> Conv ->
QuantizeLinear; without a Q right after the Conv it runs every convolution in float on
dequantized tensors, slower than the FP32 graph (docs/int8.md).

The rewrite `Conv -> Relu -> Q(s, 0)` into `Conv -> Q(s, 0) -> DQ(s, 0) -> ReLU -> Q(s, 0)`
(the scale and zero point of the existing post-ReLU Q, no new calibration) changes no value: with
a zero point of 0, relu(DQ(Q(x, s))) == DQ(Q(relu(x), s)) exactly (a negative x quantizes to a
non-positive integer, which the ReLU zeroes, as it zeroes x itself; tests/test_int8_placement.py
checks it numerically). The trailing DQ -> ReLU -> Q is then max(q, 0) on the integers; it cannot
be dropped (the negatives would survive), but it is an elementwise op, not a float convolution.

That ReLU is written `LeakyRelu(alpha=0)`, the same function: onnxruntime turns
`DQ -> LeakyRelu -> Q` into one integer `QLinearLeakyRelu` (a 256-entry table, exact), while it
has no integer ReLU and ran `DQ -> Relu -> Q` as three float passes over each activation (about a
tenth of the INT8 graph's time on the default model, docs/int8.md). TensorRT reads either as a
ReLU activation between a DQ and a Q. TensorRT-RTX's build (its layer list needs no GPU) folds
the whole Q -> DQ -> ReLU -> Q into the pointwise kernel it runs after each convolution anyway:
the same layers and tensors with and without these rewrites (tests/test_int8_engine.py). Full
TensorRT was not checked (docs/int8.md "Engines").
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from .graph_surgery import readers_of


def quantize_before_relu(model: Any, op_types: Sequence[str] = ("Conv",)) -> int:
    """Rewrite `model` (a Q/DQ onnx.ModelProto) in place; returns how many Convs got their Q.

    Only where nothing else reads the values: the Conv's output feeds the ReLU alone, the ReLU's
    output feeds exactly one QuantizeLinear (an activation one, zero point 0) and nothing else,
    and is no graph output. Anywhere else a float reader would see the rounded values."""
    from onnx import helper, numpy_helper

    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    readers = readers_of(graph)
    inits = {i.name: i for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    nodes = list(graph.node)
    inserted: Dict[int, List[Any]] = {}
    for index, conv in enumerate(nodes):
        if conv.op_type not in op_types or conv.output[0] in outputs:
            continue
        relus = readers.get(conv.output[0], [])
        if len(relus) != 1 or relus[0].op_type != "Relu" or relus[0].output[0] in outputs:
            continue
        relu = relus[0]
        after = readers.get(relu.output[0], [])
        if len(after) != 1 or after[0].op_type != "QuantizeLinear" or len(after[0].input) < 3:
            continue
        quant = after[0]
        zero = inits.get(quant.input[2])
        if quant.input[1] not in inits or zero is None or numpy_helper.to_array(zero).any():
            continue
        if producers.get(relu.input[0]) is not conv:
            continue
        base = conv.output[0]
        q_out, dq_out = base + "_QuantizeLinear_PreRelu", base + "_DequantizeLinear_PreRelu"
        q = helper.make_node("QuantizeLinear", [base, quant.input[1], quant.input[2]], [q_out],
                             name=conv.name + "_QuantizeLinear_PreRelu")
        q.attribute.extend(quant.attribute)
        dq = helper.make_node("DequantizeLinear", [q_out, quant.input[1], quant.input[2]],
                              [dq_out], name=conv.name + "_DequantizeLinear_PreRelu")
        relu.input[0] = dq_out
        relu.op_type = "LeakyRelu"  # alpha 0: a ReLU onnxruntime runs on the integers
        del relu.attribute[:]
        relu.attribute.append(helper.make_attribute("alpha", 0.0))
        inserted[index] = [q, dq]
    if inserted:
        ordered = []
        for index, node in enumerate(nodes):
            ordered.append(node)
            ordered.extend(inserted.get(index, []))
        del graph.node[:]
        graph.node.extend(ordered)
    return len(inserted)


def _ranks(model: Any) -> Dict[str, int]:
    """{tensor name: rank} where shape inference knows it."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    values = list(inferred.graph.value_info) + list(inferred.graph.input) \
        + list(inferred.graph.output)
    return {v.name: len(v.type.tensor_type.shape.dim) for v in values
            if v.type.tensor_type.HasField("shape")}


def one_pair_per_reader(model: Any) -> int:
    """Give each reader of a shared activation Q/DQ pair its own QuantizeLinear and
    DequantizeLinear (same inputs, so the same values); returns how many pairs were added.

    onnxruntime's x86 kernels convert a signed INT8 Q -> DQ pair to unsigned only where the Q
    has a single DQ reader; a Conv reading a pair that also feeds another op keeps a signed
    input and stays a float convolution."""
    from onnx import helper

    graph = model.graph
    readers = readers_of(graph)
    inits = {i.name: i for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    ranks = _ranks(model)
    added = 0
    ordered = []
    for node in list(graph.node):
        ordered.append(node)
        if node.op_type != "QuantizeLinear" or node.input[0] in inits:
            continue
        dqs = readers.get(node.output[0], [])
        if len(dqs) != 1 or dqs[0].op_type != "DequantizeLinear" \
                or dqs[0].output[0] in outputs or node.output[0] in outputs \
                or len(node.input) < 2 or node.input[1] not in inits \
                or any(d != 1 for d in inits[node.input[1]].dims) \
                or any(a.name == "axis" for a in node.attribute):
            continue  # only per-tensor activation pairs with a constant scale
        dq = dqs[0]
        # a per-tensor (scalar) scale ignores `axis`: a distinct valid one per copy keeps
        # onnxruntime's common-subexpression elimination from merging the copies back into one
        # Q (1, the default, stays the original's); readers beyond the distinct values share
        rank = ranks.get(node.input[0], 0)
        axes = [a for a in list(range(rank)) + list(range(-rank, 0)) if a != 1]
        for k, reader in enumerate(readers.get(dq.output[0], [])[1:len(axes) + 1], start=1):
            q_name, dq_name = f"{node.output[0]}_reader{k}", f"{dq.output[0]}_reader{k}"
            q_copy = helper.make_node("QuantizeLinear", [node.input[0]] + list(node.input[1:]),
                                      [q_name], name=f"{node.name}_reader{k}")
            q_copy.attribute.extend(a for a in node.attribute if a.name != "axis")
            q_copy.attribute.append(helper.make_attribute("axis", axes[k - 1]))
            dq_copy = helper.make_node("DequantizeLinear", [q_name] + list(dq.input[1:]),
                                       [dq_name], name=f"{dq.name}_reader{k}")
            dq_copy.attribute.extend(dq.attribute)
            ordered.extend([q_copy, dq_copy])
            reader.input[:] = [dq_name if i == dq.output[0] else i for i in reader.input]
            added += 1
    if added:
        del graph.node[:]
        graph.node.extend(ordered)
    return added


def make_cpu_fusable(model: Any) -> Dict[str, int]:
    """Both rewrites, in place: {"conv_output_q": N, "pairs_per_reader": M}."""
    return {"conv_output_q": quantize_before_relu(model),
            "pairs_per_reader": one_pair_per_reader(model)}
