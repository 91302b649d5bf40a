"""The INT8 graph's lossless onnxruntime-CPU rewrites (export/qdq_relu.py): a Q right after each
Conv that feeds a ReLU that feeds a Q (same scale), one Q/DQ pair per reader of a shared tensor.
They must change no label and must let onnxruntime turn those convolutions into integer ones
(docs/int8.md "Measurements": without them the INT8 graph ran slower than FP32 on CPU)."""

import collections

import numpy as np
import pytest


@pytest.fixture(scope="module")
def graphs(tiny_export):
    """(FP32 model, record, INT8 without the rewrites, INT8 as exported), one calibration."""
    import onnx

    from bisenet_deploy.export.onnx_metadata import get_record
    from bisenet_deploy.export.qdq_relu import make_cpu_fusable
    from bisenet_deploy.export.quantize import QuantizeSettings, quantize_graph
    from bisenet_deploy.synthetic import synthetic_image

    _, _, path = tiny_export()
    model = onnx.load(path)
    record = get_record(model)
    images = [synthetic_image(128, 64, seed=60 + i) for i in range(2)]
    plain = quantize_graph(model, record, images, QuantizeSettings(cpu_fusable=False))
    exported = quantize_graph(model, record, images, QuantizeSettings())
    again = onnx.ModelProto()
    again.CopyFrom(plain)
    make_cpu_fusable(again)
    assert again.SerializeToString() == exported.SerializeToString()  # same calibration
    return model, record, plain, exported


def _q(x, s):
    return np.clip(np.rint(x / s), -128, 127).astype(np.int8)


def test_relu_commutes_with_a_zero_point_0_quantization_exactly():
    rng = np.random.default_rng(0)
    for s in (np.float32(1e-3), np.float32(0.0173), np.float32(3.1)):
        x = np.concatenate([(rng.standard_normal(200_000) * 80 * s).astype(np.float32),
                            s * np.arange(-200, 200, 0.5, dtype=np.float32)])  # halves, clamps
        before = np.maximum(_q(x, s).astype(np.float32) * s, 0)  # relu(DQ(Q(x)))
        after = _q(np.maximum(x, 0), s).astype(np.float32) * s   # DQ(Q(relu(x)))
        assert np.array_equal(before, after)


def test_every_conv_feeding_relu_feeding_q_has_a_q_of_that_scale_right_after_it(graphs):
    from onnx import numpy_helper

    _, _, plain, exported = graphs
    for model, expect in ((plain, False), (exported, True)):
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        readers = collections.defaultdict(list)
        for node in model.graph.node:
            for name in node.input:
                readers[name].append(node)
        checked = 0
        for conv in (n for n in model.graph.node if n.op_type == "Conv"):
            out = readers[conv.output[0]]
            if expect:  # Conv -> Q -> DQ -> LeakyRelu(alpha 0) -> Q
                if [n.op_type for n in out] != ["QuantizeLinear"]:
                    continue
                dq = readers[out[0].output[0]]
                relu = readers[dq[0].output[0]] if len(dq) == 1 else []
                if [n.op_type for n in relu] != ["LeakyRelu"]:
                    continue
                assert [(a.name, a.f) for a in relu[0].attribute] == [("alpha", 0.0)], conv.name
                after = readers[relu[0].output[0]]
                # one Q per reader of the ReLU's output, each of the Conv's Q's scale
                assert after and {n.op_type for n in after} == {"QuantizeLinear"}, conv.name
                assert all(inits[out[0].input[1]] == inits[q.input[1]] for q in after)
                assert not inits[out[0].input[2]].any()                    # zero point 0
                checked += 1
            else:  # the quantizer's own placement: Conv -> Relu -> Q, nothing before the ReLU
                if [n.op_type for n in out] == ["Relu"] and \
                        [n.op_type for n in readers[out[0].output[0]]] == ["QuantizeLinear"]:
                    checked += 1
        assert checked >= 20
        if expect:  # and no Conv -> Relu -> Q left without its Q
            for conv in (n for n in model.graph.node if n.op_type == "Conv"):
                out = readers[conv.output[0]]
                if [n.op_type for n in out] == ["Relu"]:
                    assert "QuantizeLinear" not in [
                        n.op_type for n in readers[out[0].output[0]]], conv.name
        # one DequantizeLinear reader per activation QuantizeLinear (onnxruntime's x86 kernels
        # need it) and one reader per such DequantizeLinear
        shared = [q.name for q in model.graph.node if q.op_type == "QuantizeLinear"
                  and q.input[0] not in inits
                  and (len(readers[q.output[0]]) != 1
                       or len(readers[readers[q.output[0]][0].output[0]]) != 1)]
        assert bool(shared) != expect, shared


def test_labels_equal_the_quantizers_own_placement(graphs):
    """The graphs compute the same function: run as written (onnxruntime's graph optimizations
    off, so no integer kernel with its own rounding stands in for DQ -> Conv -> Q), every label
    is equal."""
    import onnxruntime as ort

    from bisenet_deploy.export.int8_gate import run_labels, synthetic_held_out

    _, record, plain, exported = graphs

    def as_written(model):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(model.SerializeToString(), options,
                                    providers=["CPUExecutionProvider"])

    held = synthetic_held_out(record, 3)
    old = run_labels(as_written(plain), held, record)
    new = run_labels(as_written(exported), held, record)
    assert all(np.array_equal(a, b) for a, b in zip(old, new))


def _optimized_ops(model, tmp_path, name):
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / name)
    options.log_severity_level = 3
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(str(tmp_path / name)).graph.node)


def test_onnxruntime_runs_the_quantized_convolutions_in_integers(graphs, tmp_path):
    """Every Conv with Q/DQ inputs and a Q after it becomes an integer QLinearConv in
    onnxruntime's optimized graph; only the few Convs without a Q after them (the BGA's gates
    and the head, whose outputs stay float) remain float convolutions."""
    _, _, plain, exported = graphs
    convs = sum(n.op_type == "Conv" for n in exported.graph.node)
    old, new = (_optimized_ops(m, tmp_path, f"{k}.onnx")
                for k, m in (("plain", plain), ("exported", exported)))
    assert new["QLinearConv"] >= convs - 8, new
    assert new["QLinearConv"] > old["QLinearConv"] + 15, (old, new)


def test_onnxruntime_runs_the_relus_between_quantized_convolutions_on_the_integers(graphs,
                                                                                   tmp_path):
    """Each rewritten ReLU (LeakyRelu, alpha 0) read by one Q becomes one integer
    QLinearLeakyRelu (one read by several Qs, a shared GE input, stays float); written as Relu
    it stays float (DequantizeLinear, Relu, QuantizeLinear over each activation). The
    integer table is exact: with onnxruntime's optimizations on, the labels equal those of the
    same graph with plain Relu nodes, pixel for pixel."""
    import onnx
    import onnxruntime as ort

    from bisenet_deploy.export.int8_gate import run_labels, synthetic_held_out

    _, record, _, exported = graphs
    readers = collections.Counter(i for n in exported.graph.node for i in n.input)
    leaky = [n for n in exported.graph.node
             if n.op_type == "LeakyRelu" and readers[n.output[0]] == 1]
    assert len(leaky) >= 15
    as_relu = onnx.ModelProto()
    as_relu.CopyFrom(exported)
    for node in as_relu.graph.node:
        if node.op_type == "LeakyRelu":
            node.op_type = "Relu"
            del node.attribute[:]
    new, old = (_optimized_ops(m, tmp_path, f"{k}.onnx")
                for k, m in (("leaky", exported), ("relu", as_relu)))
    assert new["QLinearLeakyRelu"] == len(leaky), new
    assert old["QLinearLeakyRelu"] == 0 and old["Relu"] >= len(leaky), old
    assert new["DequantizeLinear"] + len(leaky) <= old["DequantizeLinear"], (old, new)

    def labels(model):
        return run_labels(ort.InferenceSession(model.SerializeToString(),
                                               providers=["CPUExecutionProvider"]),
                          synthetic_held_out(record, 2), record)

    assert all(np.array_equal(a, b) for a, b in zip(labels(exported), labels(as_relu)))


def _shared_pair_graph(shape):
    """x -> Q -> DQ -> {Neg, Abs}: one activation pair read by two ops."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"], name="dq"),
             helper.make_node("Neg", ["dq"], ["a"], name="neg"),
             helper.make_node("Abs", ["dq"], ["b"], name="abs")]
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z")]
    graph = helper.make_graph(
        nodes, "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("a", "b")], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_each_reader_gets_its_own_pair_with_the_same_values():
    import onnx
    import onnxruntime as ort

    from bisenet_deploy.export.qdq_relu import one_pair_per_reader

    model = _shared_pair_graph([1, 2, 3, 4])
    x = np.random.default_rng(1).standard_normal((1, 2, 3, 4)).astype(np.float32) * 4
    before = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    assert one_pair_per_reader(model) == 1
    onnx.checker.check_model(model, full_check=True)
    qs = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert len(qs) == 2 and qs[0].input[:] == qs[1].input[:]
    # the copy differs by an `axis` (ignored with a scalar scale) valid for a rank-4 tensor, so
    # onnxruntime's common-subexpression elimination does not merge it back
    axes = sorted(tuple(a.i for a in q.attribute if a.name == "axis") for q in qs)
    assert axes[0] == () and len(axes[1]) == 1 and -4 <= axes[1][0] <= 3 and axes[1][0] != 1
    after = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    assert all(np.array_equal(b, a) for b, a in zip(before, after))
    # a tensor of unknown rank gets no copies: no `axis` value is known to be valid for it
    assert one_pair_per_reader(_shared_pair_graph(None)) == 0


def test_the_classifier_keeps_float_weights_and_an_int8_input(graphs, tmp_path):
    """The Conv that writes the logits reads the FP32 graph's own weights (no DequantizeLinear)
    but still a quantized input; every other Conv keeps INT8 weights. onnxruntime then runs it,
    and the logits' upsampling after it, in its blocked float layout (the measured speed-up,
    docs/int8.md); without it they run in the plain layout."""
    import onnx
    from onnx import numpy_helper

    from bisenet_deploy.export.quantize import QuantizeSettings, conv_layers, quantize_graph
    from bisenet_deploy.synthetic import synthetic_image

    model, record, _, exported = graphs
    floats = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producers = {o: n for n in exported.graph.node for o in n.output}
    inits = {i.name: numpy_helper.to_array(i) for i in exported.graph.initializer}
    layers = conv_layers(exported)
    convs = [n for n in exported.graph.node if n.op_type == "Conv"]
    classifier = [c for c in convs if layers[c.name] == "head.conv_out.0"]
    assert len(classifier) == 1
    (conv,) = classifier
    assert conv.input[1] in inits and np.array_equal(inits[conv.input[1]], floats[conv.input[1]])
    assert producers[conv.input[0]].op_type == "DequantizeLinear"
    assert all(producers[c.input[1]].op_type == "DequantizeLinear" for c in convs if c is not conv)

    images = [synthetic_image(128, 64, seed=60 + i) for i in range(2)]
    without = quantize_graph(model, record, images, QuantizeSettings(float_classifier=False))
    layers = conv_layers(without)
    producers = {o: n for n in without.graph.node for o in n.output}
    (conv,) = [c for c in without.graph.node
               if c.op_type == "Conv" and layers[c.name] == "head.conv_out.0"]
    assert producers[conv.input[1]].op_type == "DequantizeLinear"

    def blocked(m, name):
        _optimized_ops(m, tmp_path, name)
        return collections.Counter(n.op_type for n in onnx.load(str(tmp_path / name)).graph.node
                                   if n.domain == "com.microsoft.nchwc")

    new, old = blocked(exported, "float.onnx"), blocked(without, "int8.onnx")
    if not new and not old:
        pytest.skip("this CPU's onnxruntime uses no blocked (NCHWc) layout")
    assert new["Upsample"] == 2 and old["Upsample"] == 0, (old, new)
