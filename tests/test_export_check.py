"""`check_onnx` and `bisenet-export check`: hand-built graphs that break one target rule each."""

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from bisenet_deploy.cli.export_main import main
from bisenet_deploy.export.check import check_onnx
from bisenet_deploy.export.onnx_metadata import set_record
from support.records import make_record


def _model(nodes, inputs, outputs, inits=(), opset=13):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _image(dtype=TP.FLOAT):
    return helper.make_tensor_value_info("image", dtype, [1, 3, 64, 64])


def _reduce_mean_graph(opset):
    """image -> ReduceMean over H, W -> logits (opset 18: axes as an input)."""
    out = helper.make_tensor_value_info("logits", TP.FLOAT, [1, 3, 1, 1])
    if opset >= 18:
        axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
        node = helper.make_node("ReduceMean", ["image", "axes"], ["logits"], keepdims=1)
        return _model([node], [_image()], [out], [axes], opset)
    node = helper.make_node("ReduceMean", ["image"], ["logits"], axes=[2, 3], keepdims=1)
    return _model([node], [_image()], [out], opset=opset)


def _computed_scales_resize_graph():
    """Resize whose scales are computed from the input shape (what breaks TensorRT 8.2)."""
    out = helper.make_tensor_value_info("logits", TP.FLOAT, None)
    want = numpy_helper.from_array(np.array([1, 3, 32, 32], np.float32), "want")
    nodes = [
        helper.make_node("Shape", ["image"], ["shape"]),
        helper.make_node("Cast", ["shape"], ["shape_f"], to=TP.FLOAT),
        helper.make_node("Div", ["want", "shape_f"], ["scales"]),
        helper.make_node("Resize", ["image", "", "scales"], ["logits"], mode="linear",
                         coordinate_transformation_mode="half_pixel"),
    ]
    return _model(nodes, [_image()], [out], [want], 13)


def _labels_graph(cast_to_int32=True, input_dtype=TP.FLOAT, opset=13):
    nodes, x = [], "image"
    if input_dtype != TP.FLOAT:
        nodes.append(helper.make_node("Cast", ["image"], ["image_f"], to=TP.FLOAT))
        x = "image_f"
    argmax_out = "am" if cast_to_int32 else "labels"
    nodes.append(helper.make_node("ArgMax", [x], [argmax_out], axis=1, keepdims=0))
    if cast_to_int32:
        nodes.append(helper.make_node("Cast", ["am"], ["labels"], to=TP.INT32))
    out = helper.make_tensor_value_info("labels", TP.INT32 if cast_to_int32 else TP.INT64,
                                        [1, 64, 64])
    return _model(nodes, [_image(input_dtype)], [out], opset=opset)


def test_opset18_reduce_mean_breaks_trt82_but_not_trt10():
    model = _reduce_mean_graph(18)
    problems = check_onnx(model, "trt8.2")
    assert any("opset 18" in p for p in problems)
    assert any("ReduceMean" in p and "axes as an input" in p for p in problems)
    assert check_onnx(model, "trt10") == []
    assert check_onnx(_reduce_mean_graph(13), "trt8.2") == []


def test_computed_resize_scales_are_flagged_for_every_target():
    model = _computed_scales_resize_graph()
    for target in ("trt8.2", "trt8.6", "trt10", "trt11"):
        problems = check_onnx(model, target)
        assert any("scales" in p and "initializer" in p for p in problems), (target, problems)


def test_uint8_and_int64_rules():
    assert check_onnx(_labels_graph(), "trt8.2") == []
    uint8 = _labels_graph(input_dtype=TP.UINT8)
    assert any("UINT8" in p for p in check_onnx(uint8, "trt8.2"))
    assert check_onnx(uint8, "trt10") == []
    int64 = _labels_graph(cast_to_int32=False)
    problems = check_onnx(int64, "trt8.2")
    assert any("INT64" in p for p in problems)
    assert any("must be INT32" in p for p in problems)
    # on TensorRT 10 INT64 exists, but labels must still be INT32 from an explicit Cast
    assert any("Cast" in p for p in check_onnx(int64, "trt10"))


def test_unknown_ops_custom_domains_and_aux_heads_are_flagged():
    model = _labels_graph()
    model.graph.node.insert(0, helper.make_node("Relu", ["image"], ["r"], name="/aux2/Relu"))
    model.graph.node.append(helper.make_node("ArgMaxPlugin", ["image"], ["p"], domain="custom"))
    model.graph.node.append(helper.make_node("Einsum", ["image"], ["e"], equation="ij->ij"))
    problems = check_onnx(model, "trt10")
    assert any("auxiliary" in p for p in problems)
    assert any("custom domain" in p for p in problems)
    assert any("Einsum" in p for p in problems)


def test_check_cli_flags_a_bad_graph_and_passes_a_good_one(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    onnx.save(_reduce_mean_graph(18), str(bad))
    assert main(["check", str(bad), "--target", "trt8.2"]) == 3  # a failed check, as in compare
    out = capsys.readouterr().out
    assert "no bisenet_deploy metadata" in out
    out = out.split("\n", 1)[1]
    assert out.startswith("FAIL") and "ReduceMean" in out and "opset 18" in out

    good = tmp_path / "good.onnx"
    onnx.save(_reduce_mean_graph(13), str(good))
    assert main(["check", str(good), "--target", "trt8.2"]) == 0
    assert "\nPASS" in capsys.readouterr().out
    assert main(["check", "--onnx", str(bad), "--target", "trt8.2"]) == 3  # the other spelling
    assert "ReduceMean" in capsys.readouterr().out
    assert main(["check", "--target", "trt8.2"]) == 2
    assert capsys.readouterr().err.strip() == ("error: give the ONNX to check: bisenet-export "
                                               "check MODEL.onnx")


def test_check_cli_uses_the_files_target_and_reports_missing_files(tmp_path, capsys):
    model = _reduce_mean_graph(18)
    set_record(model, make_record(target="trt8.2"))
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert main(["check", str(path)]) == 3
    assert "target trt8.2" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "missing.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_check_cli_fails_on_metadata_that_is_not_json(tmp_path, capsys):
    # it said PASS (exit 0): a runtime would then refuse the file, or worse
    model = _reduce_mean_graph(13)
    model.metadata_props.add(key="bisenet_deploy", value="{not json")
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert main(["check", str(path)]) == 5
    out, err = capsys.readouterr()
    assert "PASS" not in out and str(path) in err and "not valid JSON" in err


def test_check_cli_refuses_a_corrupt_file(tmp_path, capsys):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"\x00not an onnx file at all" * 10)
    assert main(["check", str(path)]) != 0
    err = capsys.readouterr().err
    assert "not a readable ONNX model" in err and "Traceback" not in err


def test_check_cli_refuses_an_empty_file_and_a_folder(tmp_path, capsys):
    # an empty file parsed as an empty model and was reported as a target violation
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    assert main(["check", str(path)]) != 0
    captured = capsys.readouterr()
    assert "holds no graph" in captured.err and "Traceback" not in captured.err
    assert "FAIL" not in captured.out
    assert main(["check", str(tmp_path)]) == 2
    assert "is a folder, not an ONNX file" in capsys.readouterr().err


def test_linear_resize_scaling_the_batch_is_flagged():
    out = helper.make_tensor_value_info("logits", TP.FLOAT, None)
    scales = numpy_helper.from_array(np.array([2, 1, 0.5, 0.5], np.float32), "scales")
    node = helper.make_node("Resize", ["image", "", "scales"], ["logits"], mode="linear")
    problems = check_onnx(_model([node], [_image()], [out], [scales]), "trt8.2")
    assert any("innermost 3" in p for p in problems)
    ok = numpy_helper.from_array(np.array([1, 1, 0.5, 0.5], np.float32), "scales")
    assert check_onnx(_model([node], [_image()], [out], [ok]), "trt8.2") == []


def test_uint8_input_must_be_cast_before_any_layer():
    """TensorRT layers (Resize among them) do not take UINT8: only a Cast may read the input."""
    model = _labels_graph(input_dtype=TP.UINT8)
    model.graph.node.insert(0, helper.make_node("Relu", ["image"], ["r"]))
    problems = check_onnx(model, "trt10")
    assert any("UINT8 input 'image' is read by Relu" in p for p in problems), problems


def test_labels_must_be_a_cast_of_an_argmax():
    model = _labels_graph()
    # labels = Cast(ReduceMax(...)) is INT32 from a Cast, but not class ids from an ArgMax
    for node in model.graph.node:
        if node.op_type == "ArgMax":
            node.op_type = "ReduceMax"
            del node.attribute[:]
            node.attribute.extend([helper.make_attribute("axes", [1]),
                                   helper.make_attribute("keepdims", 0)])
    problems = check_onnx(model, "trt10")
    assert any("not a Cast of an ArgMax" in p for p in problems), problems
    assert check_onnx(_labels_graph(), "trt10") == []
