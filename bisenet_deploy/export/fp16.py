"""Turn a checked FP32 deploy graph into an FP16 graph with FP32 I/O (TensorRT 11 --precision fp16).

Why a graph pass and not tracing the network in half precision: tracing runs one real forward
pass, and half-precision convolutions on a CPU are ~50x slower than FP32 (a 2048x1024 export took
3.5 minutes instead of seconds). The FP32 graph is already simplified and checked, so the pass
only has to change types:

* float32 initializers and Constant values -> float16, except Resize `scales`/`roi` (ONNX
  requires float32 scales; they are constants TensorRT reads, not computed values);
* Casts to FLOAT inside the graph -> to FLOAT16 (e.g. the uint8 input cast);
* a float32 graph input gets a Cast to FLOAT16 right after it;
* a float32 graph output (logits) is produced in FLOAT16 and cast back to FLOAT at the end.

The result is re-checked (onnx.checker with strict shape inference, the target check) and proven
against the FP32 PyTorch network by the parity step with the FP16 tolerance.
"""

from __future__ import annotations

from typing import Any, Set

FP32_ONLY_RESIZE_INPUTS = (1, 2)  # Resize roi, scales


def convert_to_fp16(model: Any) -> Any:
    """Return an FP16 copy of an FP32 onnx.ModelProto with FP32 (or uint8) inputs and outputs."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph

    keep_fp32: Set[str] = set()
    for node in graph.node:
        if node.op_type == "Resize":
            for index in FP32_ONLY_RESIZE_INPUTS:
                if len(node.input) > index and node.input[index]:
                    keep_fp32.add(node.input[index])

    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and init.name not in keep_fp32:
            array = numpy_helper.to_array(init).astype(np.float16)
            init.CopyFrom(numpy_helper.from_array(array, init.name))
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] not in keep_fp32:
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    array = numpy_helper.to_array(attr.t).astype(np.float16)
                    attr.t.CopyFrom(numpy_helper.from_array(array, attr.t.name))
        if node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16

    new_nodes = []
    # float32 inputs: cast to FLOAT16 once, at the top
    for value in graph.input:
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        half = value.name + "_fp16"
        for node in graph.node:
            for i, name in enumerate(node.input):
                if name == value.name:
                    node.input[i] = half
        new_nodes.append(helper.make_node("Cast", [value.name], [half], to=TensorProto.FLOAT16,
                                          name=value.name + "_to_fp16"))
    tail = []
    # float32 outputs: computed in FLOAT16, cast back at the end
    for value in graph.output:
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        half = value.name + "_fp16"
        producer = None
        for node in graph.node:
            for i, name in enumerate(node.output):
                if name == value.name:
                    node.output[i] = half
                    producer = node
            for i, name in enumerate(node.input):
                if name == value.name:
                    node.input[i] = half
        if producer is not None and producer.op_type == "Cast":
            # an exporter's own Cast(to FLOAT) (turned into FLOAT16 above) becomes the FP32 cast
            producer.output[0] = value.name
            for attr in producer.attribute:
                if attr.name == "to":
                    attr.i = TensorProto.FLOAT
            for node in graph.node:
                for i, name in enumerate(node.input):
                    if name == half:
                        node.input[i] = value.name
            continue
        tail.append(helper.make_node("Cast", [half], [value.name], to=TensorProto.FLOAT,
                                     name=value.name + "_to_fp32"))
    nodes = new_nodes + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # stale float32 annotations; shape inference recomputes them
    return out


def convs_to_fp16(model: Any, conv_names: Any) -> int:
    """Run the named float Convs of an onnx.ModelProto in FP16, in place; returns how many.

    For `--keep-float` on a strongly typed target (TensorRT 11): there the graph's types, not
    builder flags, decide each layer's precision, so a layer kept out of INT8 runs in FP16 only
    if the graph says so. Each Conv gets FP16 copies of its weight and bias, a Cast to FLOAT16
    before it and a Cast back to FLOAT after it; the tensors around it stay FP32, so the Q/DQ
    pairs and every other node are untouched. A Conv whose weight or bias is not a constant (a
    quantized one, reading a DequantizeLinear) is refused with ValueError, as is a weight beyond
    FP16's range."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    wanted = set(conv_names)
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    ordered, done = [], 0
    for node in list(graph.node):
        if node.op_type != "Conv" or node.name not in wanted:
            ordered.append(node)
            continue
        for name in node.input[1:]:
            if name and name not in inits:
                source = producers.get(name)
                raise ValueError(f"{node.name}: input {name!r} is not a constant "
                                 f"({source.op_type if source is not None else 'graph input'})")
        for k, name in enumerate(node.input):
            if k == 0 or not name:
                continue
            half = name + "_fp16"
            if half not in inits:
                array = numpy_helper.to_array(inits[name]).astype(np.float16)
                if not np.isfinite(array).all():
                    raise ValueError(f"{node.name}: {name} has values beyond FP16's range")
                inits[half] = numpy_helper.from_array(array, half)
                graph.initializer.append(inits[half])
            node.input[k] = half
        source, out = node.input[0], node.output[0]
        node.input[0], node.output[0] = f"{node.name}_input_fp16", f"{node.name}_output_fp16"
        ordered.append(helper.make_node("Cast", [source], [node.input[0]],
                                        to=TensorProto.FLOAT16, name=f"{node.name}_to_fp16"))
        ordered.append(node)
        ordered.append(helper.make_node("Cast", [node.output[0]], [out], to=TensorProto.FLOAT,
                                        name=f"{node.name}_to_fp32"))
        done += 1
    del graph.node[:]
    graph.node.extend(ordered)
    return done
