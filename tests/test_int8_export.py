"""`bisenet-export onnx --precision int8`: the Q/DQ graph TensorRT expects, calibrated through the
graph's own preprocessing, gated by label agreement on held-out images, with --keep-float and the
sensitivity scan. Tiny model (tests/conftest.py scale), tiny calibration sets."""

import json
import os
import re

import numpy as np
import pytest

from bisenet_deploy.errors import InputError, ParityError

SIZES = ["--input-size", "128x64", "--network-size", "64x32"]


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    from bisenet_deploy.synthetic import synthetic_image

    folder = tmp_path_factory.mktemp("calib")
    for i in range(5):
        np.save(str(folder / ("img%d.npy" % i)), synthetic_image(256, 128, seed=700 + i))
    return str(folder)


@pytest.fixture(scope="module")
def fp32(tiny_export):
    import onnx

    from bisenet_deploy.export.onnx_metadata import get_record

    _, _, path = tiny_export()
    model = onnx.load(path)
    record = get_record(model)
    record["export"]["precision"] = "int8"
    return model, record


def _export(args):
    from bisenet_deploy.cli.export_main import main

    return main(["onnx"] + SIZES + args)


def test_qdq_graph_follows_tensorrts_rules(fp32, calib_dir):
    from onnx import TensorProto, numpy_helper

    from bisenet_deploy.export.int8_export import Int8Options, make_int8

    model, record = fp32
    result = make_int8(model, record, Int8Options(calib_images=calib_dir, calib_count=3))
    q = result.model
    inits = {i.name: i for i in q.graph.initializer}
    producers = {o: n for n in q.graph.node for o in n.output}
    qdq = [n for n in q.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq and result.info["qdq_pairs"] > 0
    for node in qdq:  # signed INT8, symmetric: every zero point is an INT8 zero
        zp = inits[node.input[2]]
        assert zp.data_type == TensorProto.INT8 and not numpy_helper.to_array(zp).any()
    convs = [n for n in q.graph.node if n.op_type == "Conv"]
    for conv in convs[:-1]:  # per-channel weight scales, float bias (the classifier, the last
        dq = producers[conv.input[1]]  # Conv, keeps float weights: test_int8_placement.py)
        assert dq.op_type == "DequantizeLinear"
        out_channels = numpy_helper.to_array(inits[dq.input[0]]).shape[0]
        assert numpy_helper.to_array(inits[dq.input[1]]).shape == (out_channels,)
        if len(conv.input) > 2:
            assert conv.input[2] in inits and inits[conv.input[2]].data_type == TensorProto.FLOAT
    adds = [n for n in q.graph.node if n.op_type == "Add"]
    assert any(all(producers[i].op_type == "DequantizeLinear" for i in a.input) for a in adds)
    # nothing quantized after the last Conv: its output, the last Resize, ArgMax and Cast
    nodes = list(q.graph.node)
    tail = nodes[nodes.index(convs[-1]):]
    assert [n.op_type for n in tail if n.op_type in ("ArgMax", "Cast")] == ["ArgMax", "Cast"]
    assert "QuantizeLinear" not in [n.op_type for n in tail]
    assert any(n.op_type == "Resize" and n.input[0] == convs[-1].output[0] for n in tail)


def test_only_conv_and_add_inputs_are_quantized(fp32):
    """The issue's TensorRT placement: Q/DQ on Conv and Add inputs only. Quantizing the BGA's
    Sigmoid-gated Mul, the Concat and the pooling inputs too cost label agreement (docs/int8.md);
    MaxPool/ReduceMean may read a quantized tensor only where a Conv/Add reads it too. The one
    addition is lossless: a Conv feeding a ReLU gets a Q of the post-ReLU scale, and that ReLU
    becomes a LeakyRelu(alpha 0) (qdq_relu.py)."""
    from bisenet_deploy.export.quantize import QuantizeSettings, quantize_graph
    from bisenet_deploy.synthetic import synthetic_image

    model, record = fp32
    q = quantize_graph(model, record, [synthetic_image(128, 64, seed=1)],
                       QuantizeSettings(method="minmax"))
    inits = {i.name for i in q.graph.initializer}
    producers = {o: n for n in q.graph.node for o in n.output}
    readers = {}
    for node in q.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node.op_type)
    # the readers of each quantized float tensor, over all of its Q/DQ pairs
    quantized = {}
    for n in q.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] not in inits:
            source = producers[n.input[0]].input[0]
            quantized.setdefault(source, set()).update(readers[n.output[0]])
    assert quantized
    before_relu = 0
    for source, ops in quantized.items():
        if ops == {"LeakyRelu"}:  # the lossless Q right after a Conv, before its ReLU
            assert producers[source].op_type == "Conv", source
            before_relu += 1
            continue
        assert {"Conv", "Add"} & ops, ops
        # no pair on an Add output before its ReLU either: one pair per tensor, after the ReLU
        assert not {"Mul", "Concat", "AveragePool", "Sigmoid", "Relu", "LeakyRelu"} & ops, ops
    assert before_relu >= 20
    for node in q.graph.node:
        if node.op_type == "Add":  # both sides of every Add, residual and BGA sum alike
            assert all(producers[i].op_type == "DequantizeLinear" for i in node.input
                       if i in producers), node.name


def test_held_out_images_are_never_the_calibration_ones(fp32, calib_dir):
    from bisenet_deploy.export.int8_export import Int8Options, split_images

    _, record = fp32
    calib, held, source = split_images(Int8Options(calib_images=calib_dir, calib_count=3), record)
    assert (len(calib), len(held), source) == (3, 2, "calibration folder, unused images")
    assert not any(np.array_equal(c, h) for c in calib for h in held)
    calib, held, source = split_images(Int8Options(calib_images=calib_dir, calib_count=5), record)
    assert len(calib) == 5 and source == "synthetic street scenes" and len(held) >= 4
    width, height = record["export"]["input_size"]
    assert held[0].shape == (height, width, 3)


def test_gate_fails_below_min_agreement_and_names_the_fixes(fp32, calib_dir):
    from bisenet_deploy.export.int8_export import Int8Options, make_int8
    from bisenet_deploy.export.int8_gate import check_agreement

    model, record = fp32
    result = make_int8(model, record, Int8Options(calib_images=calib_dir, calib_count=3))
    got = result.agreement.mean
    assert 0 < got < 100 and result.info["agreement"]["percent"] == round(got, 4)
    check_agreement(result.agreement, got - 0.01)
    with pytest.raises(ParityError, match="INT8 gate failed.*--keep-float") as info:
        check_agreement(result.agreement, got + 0.01)
    assert info.value.exit_code == 3


def test_keep_float_leaves_those_layers_float_and_refuses_unknown_ones(fp32, calib_dir):
    from bisenet_deploy.export.quantize import QuantizeSettings, conv_layers, quantize_graph
    from bisenet_deploy.synthetic import synthetic_image

    model, record = fp32
    images = [synthetic_image(128, 64, seed=1)]
    q = quantize_graph(model, record, images, QuantizeSettings(keep_float=("head",)))
    producers = {o: n for n in q.graph.node for o in n.output}
    layers = conv_layers(q)
    head = [n for n in q.graph.node if n.op_type == "Conv" and layers[n.name].startswith("head.")]
    assert head
    for conv in head:  # float input and float weights
        assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear"
                   for i in conv.input)
    others = [n for n in q.graph.node if n.op_type == "Conv" and n not in head]
    assert all(producers[c.input[1]].op_type == "DequantizeLinear" for c in others)
    # a kept layer whose input another, quantized layer reads too (the detail branch's output
    # feeds bga.left1 and bga.left2) reads the float tensor, not the pair's DequantizeLinear
    q = quantize_graph(model, record, images, QuantizeSettings(keep_float=("bga.left1",)))
    producers = {o: n for n in q.graph.node for o in n.output}
    layers = conv_layers(q)
    kept = [n for n in q.graph.node
            if n.op_type == "Conv" and layers[n.name].startswith("bga.left1")]
    assert len(kept) == 2
    for conv in kept:
        assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear"
                   for i in conv.input), conv.name
    assert any(producers[c.input[0]].op_type == "DequantizeLinear" for c in q.graph.node
               if c.op_type == "Conv" and layers[c.name].startswith("bga.left2"))
    with pytest.raises(InputError, match="--keep-float 'nosuch' matches no layer.*segment.S3"):
        quantize_graph(model, record, images, QuantizeSettings(keep_float=("nosuch",)))


def test_keep_float_on_trt11_writes_those_layers_in_fp16(fp32, calib_dir):
    """TensorRT 11 is strongly typed: a kept layer runs in FP16 only if the graph says so. On
    trt11 each kept Conv gets FP16 weights between a Cast to FLOAT16 and a Cast back; nothing
    else changes (the same Q/DQ pairs), the graph is valid and its labels stay the FP32-kept
    graph's, and the record says which float the kept layers are."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto

    from bisenet_deploy.export.int8_export import Int8Options, make_int8
    from bisenet_deploy.export.int8_gate import agreement, run_labels, synthetic_held_out
    from bisenet_deploy.export.quantize import QuantizeSettings, conv_layers, quantize_graph
    from bisenet_deploy.synthetic import synthetic_image

    model, record = fp32
    images = [synthetic_image(128, 64, seed=1)]
    full = quantize_graph(model, record, images, QuantizeSettings(keep_float=("head",)))
    half = quantize_graph(model, record, images,
                          QuantizeSettings(keep_float=("head",), keep_float_fp16=True))
    inits = {i.name: i for i in half.graph.initializer}
    producers = {o: n for n in half.graph.node for o in n.output}
    readers = {}
    for node in half.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    layers = conv_layers(half)
    head = [n for n in half.graph.node
            if n.op_type == "Conv" and layers[n.name].startswith("head.")]
    assert head
    for conv in head:
        assert all(inits[w].data_type == TensorProto.FLOAT16 for w in conv.input[1:] if w)
        cast_in, cast_out = producers[conv.input[0]], readers[conv.output[0]]
        assert cast_in.op_type == "Cast" and cast_in.attribute[0].i == TensorProto.FLOAT16
        assert [(c.op_type, c.attribute[0].i) for c in cast_out] == [("Cast", TensorProto.FLOAT)]
    others = [n for n in half.graph.node if n.op_type == "Conv" and n not in head]
    assert all(inits.get(c.input[1]) is None for c in others)  # still DequantizeLinear weights
    pairs = [sum(n.op_type == "QuantizeLinear" for n in m.graph.node) for m in (full, half)]
    assert pairs[0] > 0 and pairs[0] == pairs[1]
    onnx.checker.check_model(half, full_check=True)
    held = synthetic_held_out(record, 2)

    def labels(m):
        return run_labels(ort.InferenceSession(m.SerializeToString(),
                                               providers=["CPUExecutionProvider"]), held, record)

    assert agreement(labels(full), labels(half), "synthetic").worst > 98.0

    for target, dtype in (("trt11", "fp16"), ("trt10", "fp32")):
        rec = json.loads(json.dumps(record))
        rec["export"]["target"] = target
        result = make_int8(model, rec, Int8Options(calib_images=calib_dir, calib_count=3,
                                                   keep_float=("head",)))
        assert result.info["keep_float_dtype"] == dtype
        assert any(i.data_type == TensorProto.FLOAT16
                   for i in result.model.graph.initializer) == (dtype == "fp16")


def test_export_cli_writes_the_gated_qdq_onnx_with_its_record_and_scan(tmp_path, calib_dir,
                                                                       capsys):
    import onnx

    from bisenet_deploy.export.onnx_metadata import get_record

    out = str(tmp_path / "m.onnx")
    rc = _export(["--precision", "int8", "--calib-images", calib_dir, "--calib-count", "3",
                  "--min-agreement", "50", "--sensitivity-scan", "--skip-parity", "-o", out])
    assert rc == 0
    text = capsys.readouterr().out
    model = onnx.load(out)
    int8 = get_record(model)["export"]["int8"]
    assert get_record(model)["export"]["precision"] == "int8"
    assert int8["calibration"] == {"method": "percentile", "images": 3}
    assert int8["agreement"]["images"] == 2 and int8["min_agreement"] == 50.0
    assert int8["agreement"]["held_out"] == "calibration folder, unused images"
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    assert "gate    " in text and "block quantized alone" in text
    with open(str(tmp_path / "m.int8-scan.json")) as f:
        scan = json.load(f)
    changed = [r["disagreement_percent"] for r in scan["rows"]]
    assert changed == sorted(changed, reverse=True) and len(changed) > 10
    assert scan["suggested_keep_float"] == [r["block"] for r in scan["rows"]][
        :len(scan["suggested_keep_float"])]


def test_export_cli_keeps_layers_in_fp16_on_trt11_through_every_check(tmp_path, calib_dir,
                                                                      capsys):
    """The whole trt11 path: onnx.checker, the target's rules and the installed TensorRT parser
    (TensorRT-RTX here) accept the graph with FP16 Convs between the Q/DQ ones."""
    import onnx
    from onnx import TensorProto

    from bisenet_deploy.export.onnx_metadata import get_record

    out = str(tmp_path / "m.onnx")
    rc = _export(["--precision", "int8", "--target", "trt11", "--calib-images", calib_dir,
                  "--calib-count", "3", "--min-agreement", "50", "--keep-float", "head",
                  "--skip-parity", "-o", out])
    assert rc == 0
    assert "kept in FP16: head" in capsys.readouterr().out
    model = onnx.load(out)
    assert get_record(model)["export"]["int8"]["keep_float_dtype"] == "fp16"
    assert sum(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer) >= 2


def test_export_cli_gate_failure_exits_3_and_writes_nothing(tmp_path, calib_dir, capsys):
    out = str(tmp_path / "m.onnx")
    rc = _export(["--precision", "int8", "--calib-images", calib_dir, "--calib-count", "3",
                  "--min-agreement", "100", "--skip-parity", "-o", out])
    assert rc == 3
    assert "INT8 gate failed" in capsys.readouterr().err
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("args, message", [
    (["--precision", "int8", "--target", "trt8.2", "--calib-images", "."], "TX2.*no fast INT8"),
    (["--precision", "int8"], "needs calibration images: --calib-images DIR"),
    (["--precision", "int8", "--calib-images", "/nonexistent"], "does not exist"),
    (["--precision", "int8", "--calib-images", ".", "--opset", "12"], "--opset 13 or newer"),
    (["--precision", "int8", "--calib-images", ".", "--min-agreement", "101"], "0..100"),
    (["--calib-images", "."], "applies to --precision int8 only"),
    (["--keep-float", "head"], "applies to --precision int8 only"),
    (["--precision", "int8", "--calib-images", "IMAGE"], "IMAGE is a file; give the folder"),
    (["--precision", "int8", "--calib-images", ".", "--eval-data", "."],
     r"leftImg8bit/val does not exist: a Cityscapes root holds leftImg8bit/val/ and gtFine/val/$"),
    (["--precision", "int8", "--calib-images", ".", "--eval-data", "IMAGE"],
     "--eval-data IMAGE is a file: give the dataset's root folder"),
])
def test_int8_usage_errors_are_one_line_exit_2_before_any_work(tmp_path, args, message, capsys,
                                                                calib_dir, monkeypatch):
    """Each is refused before the model is even loaded, in one line naming this command's own
    options (bisenet-eval's --layout/--split hints are not for --eval-data)."""
    import bisenet_deploy.export.pipeline as pipeline

    monkeypatch.setattr(pipeline, "_load", _no_work)
    image = os.path.join(calib_dir, sorted(os.listdir(calib_dir))[0])
    args = [{".": calib_dir, "IMAGE": image}.get(a, a) for a in args]
    message = message.replace("IMAGE", re.escape(image))
    rc = _export(args + ["-o", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert re.search(message, err.strip()), err
    assert os.listdir(str(tmp_path)) == []


def _no_work(*args, **kwargs):
    raise AssertionError("the model was loaded: the refusal came after the work started")


def test_a_foreign_file_where_the_scan_goes_is_refused_before_any_work(tmp_path, calib_dir,
                                                                     capsys, monkeypatch):
    """The scan's report (m.int8-scan.json beside m.onnx) is checked with the ONNX, before the
    export, quantization and scan run, not after them; the user's file is untouched."""
    import bisenet_deploy.export.pipeline as pipeline

    monkeypatch.setattr(pipeline, "_load", _no_work)
    theirs = tmp_path / "m.int8-scan.json"
    theirs.write_text("their notes\n")
    rc = _export(["--precision", "int8", "--calib-images", calib_dir, "--sensitivity-scan",
                  "-o", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "refusing to replace" in err and "choose another -o/--output" in err
    assert theirs.read_text() == "their notes\n"
    assert sorted(os.listdir(str(tmp_path))) == ["m.int8-scan.json"]


def test_eval_data_gives_miou_of_both_graphs_side_by_side(fp32, calib_dir, tmp_path):
    """Ground truth = the FP32 graph's own labels: its mIoU must be exactly 100, so the images,
    preprocessing and label-id mapping are wired as evaluation does them."""
    from PIL import Image

    from bisenet_deploy.datasets import CITYSCAPES_ID_TO_TRAINID
    from bisenet_deploy.export.int8_export import Int8Options, make_int8
    from bisenet_deploy.export.int8_gate import run_labels, session
    from bisenet_deploy.synthetic import synthetic_image

    model, record = fp32
    to_id = {t: i for i, t in CITYSCAPES_ID_TO_TRAINID.items()}
    images = [synthetic_image(128, 64, seed=50 + i) for i in range(2)]
    truth = run_labels(session(model), images, record)
    d_img, d_gt = tmp_path / "leftImg8bit" / "val" / "c", tmp_path / "gtFine" / "val" / "c"
    d_img.mkdir(parents=True)
    d_gt.mkdir(parents=True)
    for i, (image, labels) in enumerate(zip(images, truth)):
        Image.fromarray(image).save(str(d_img / ("c_%d_leftImg8bit.png" % i)))
        ids = np.vectorize(to_id.get)(labels).astype(np.uint8)
        Image.fromarray(ids).save(str(d_gt / ("c_%d_gtFine_labelIds.png" % i)))
    result = make_int8(model, record, Int8Options(calib_images=calib_dir, calib_count=3,
                                                  eval_data=str(tmp_path)))
    ev = result.info["eval"]
    assert ev["images"] == 2 and ev["fp32"]["miou"] == 100.0
    assert 0 < ev["int8"]["miou"] <= 100.0
    names = record["model"]["class_names"]
    assert list(ev["int8"]["per_class_iou"]) == names
    present = {names[c] for lab in truth for c in np.unique(lab)}
    assert {k for k, v in ev["fp32"]["per_class_iou"].items() if v is not None} == present


def test_default_file_name_says_int8():
    from bisenet_deploy.export.pipeline import NAME_PATTERN, export_stem

    record = {"model": {"arch": "bisenetv2", "dataset": "cityscapes"},
              "export": {"input_size": [2048, 1024], "model_size": [1024, 512],
                         "output": "labels", "target": "trt10", "precision": "int8",
                         "input_dtype": "float32", "normalize": "in-graph",
                         "channel_order": "rgb", "batch": {"dynamic": False, "size": 1}}}
    assert export_stem(record) == "bisenetv2-cityscapes-2048x1024-to-1024x512-labels-trt10-int8"
    assert "[-fp16|-int8]" in NAME_PATTERN


def test_unreadable_calibration_image_refused_before_the_export(tmp_path, capsys):
    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "a.npy").write_bytes(b"not a numpy file")
    rc = _export(["--precision", "int8", "--calib-images", str(calib), "-o",
                  str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and "a.npy" in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(str(tmp_path))) == ["calib"]


def test_bench_and_compare_carry_the_int8_agreement(fp32, calib_dir, tmp_path):
    import onnx

    from bisenet_deploy.cli.bench_main import main as bench
    from bisenet_deploy.export.int8_export import Int8Options, make_int8
    from bisenet_deploy.export.onnx_metadata import set_record

    model, record = fp32
    result = make_int8(model, record, Int8Options(calib_images=calib_dir, calib_count=3))
    set_record(result.model, dict(record, export=dict(record["export"], int8=result.info)))
    q8, f32 = str(tmp_path / "q.onnx"), str(tmp_path / "f.onnx")
    onnx.save(result.model, q8)
    onnx.save(model, f32)
    out = str(tmp_path / "b.json")
    assert bench(["--backend", "onnxruntime:" + q8, "onnxruntime:" + f32, "--iters", "2",
                  "--warmup", "1", "--no-progress", "--json", out]) == 0
    with open(out) as f:
        entries = json.load(f)["backends"]
    assert entries[0]["int8"]["agreement"] == result.info["agreement"]
    assert "int8" not in entries[1]
    from bisenet_deploy.cli.compare_main import main as compare

    out = str(tmp_path / "c.json")
    compare(["--reference", "onnxruntime:" + f32, "--against", "onnxruntime:" + q8,
             "--synthetic", "1", "--json", out])
    with open(out) as f:
        entry = json.load(f)["backends"][0]
    assert entry["precision"] == "int8" and entry["export_int8"]["agreement"] == \
        result.info["agreement"]


INT8_INFO = {"scheme": "qdq-int8-symmetric", "quantizer": "onnxruntime.quantization 1.32.0",
             "calibration": {"method": "percentile", "images": 32},
             "agreement": {"percent": 99.7, "worst_image_percent": 99.1, "images": 8,
                           "held_out": "synthetic street scenes"},
             "min_agreement": 99.0, "keep_float": ["head"], "qdq_pairs": 120}


@pytest.mark.parametrize("change, field", [
    ({"int8": None}, "export.int8"),
    ({"precision": "fp32"}, "export.int8"),
    ({"int8": dict(INT8_INFO, agreement=dict(INT8_INFO["agreement"], percent=101))},
     "export.int8.agreement.percent"),
    ({"int8": dict(INT8_INFO, calibration={"method": "magic", "images": 3})},
     "export.int8.calibration.method"),
    ({"int8": dict(INT8_INFO, keep_float="head")}, "export.int8.keep_float"),
    ({"int8": dict(INT8_INFO, keep_float_dtype="bf16")}, "export.int8.keep_float_dtype"),
    ({"int8": dict(INT8_INFO, min_agreement=float("nan"))}, "export.int8.min_agreement"),
])
def test_record_validator_checks_the_int8_section(change, field):
    from support.records import engine_record

    from bisenet_deploy.portable.files.record_schema import record_problem

    record = engine_record(precision="int8", target="trt10", opset=17)
    record["export"]["int8"] = dict(INT8_INFO)
    assert record_problem(record) is None
    record["export"].update(change)
    if record["export"].get("int8") is None:
        del record["export"]["int8"]
    problem = record_problem(record)
    assert problem is not None and problem[0] == field, problem
