"""`bisenet-compare --layers`: FP32 vs INT8 (and FP32 vs itself) ONNX and PyTorch vs ONNX, Conv
outputs paired by module name, on a tiny model; the table, the first layer past tolerance, JSON
and plot."""

import json

import pytest


@pytest.fixture(scope="module")
def graphs(tiny_export, tmp_path_factory):
    import onnx

    from bisenet_deploy.export.onnx_metadata import get_record, set_record
    from bisenet_deploy.export.quantize import QuantizeSettings, quantize_graph
    from bisenet_deploy.synthetic import synthetic_image

    _, _, fp32_path = tiny_export()
    model = onnx.load(fp32_path)
    record = get_record(model)
    q = quantize_graph(model, record, [synthetic_image(128, 64, seed=3)], QuantizeSettings())
    int8 = {"scheme": "qdq-int8-symmetric", "quantizer": "onnxruntime.quantization",
            "calibration": {"method": "percentile", "images": 1},
            "agreement": {"percent": 97.0, "worst_image_percent": 96.0, "images": 1,
                          "held_out": "synthetic street scenes"},
            "min_agreement": 0.0, "keep_float": [], "qdq_pairs": 80}
    set_record(q, dict(record, export=dict(record["export"], precision="int8", int8=int8)))
    int8_path = str(tmp_path_factory.mktemp("layers") / "int8.onnx")
    onnx.save(q, int8_path)
    return fp32_path, int8_path


def _compare(args):
    from bisenet_deploy.cli.compare_main import main

    return main(["--layers", "--synthetic", "1"] + args)


def test_int8_vs_fp32_layer_table_json_and_plot(graphs, tmp_path, capsys):
    fp32, int8 = graphs
    out, plot = str(tmp_path / "l.json"), str(tmp_path / "l.png")
    rc = _compare(["--reference", "onnxruntime:" + fp32, "--against", "onnxruntime:" + int8,
                   "onnxruntime:" + fp32, "--min-cosine", "0.9999", "--json", out,
                   "--plot", plot])
    assert rc == 0
    text = capsys.readouterr().out
    with open(out) as f:
        report = json.load(f)
    q, same = report["comparisons"]
    names = [r["layer"] for r in q["layers"]]
    assert q["paired"] == len(names) > 40 and names[0].startswith("detail.S1")
    assert not q["unpaired_reference"] and not q["unpaired_candidate"]
    # INT8 rounding shows in every layer; the first below 0.9999 is named in order
    assert all(0.9 < r["cosine"] < 1.0 and r["max_rel"] > 0 for r in q["layers"])
    first = next(r["layer"] for r in q["layers"] if r["cosine"] < 0.9999)
    assert q["first_past_tolerance"] == first and "<- first past tolerance" in text
    # the FP32 graph against itself: identical layer by layer
    assert all(r["cosine"] == 1.0 and r["max_rel"] == 0 for r in same["layers"])
    assert same["first_past_tolerance"] is None
    with open(plot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_pytorch_vs_onnx_layer_by_layer(tiny_export, capsys):
    """The checkpoint in PyTorch against its FP32 export: every Conv output (BN folded by the
    exporter, so PyTorch's side is the BatchNorm after the Conv) agrees to float rounding."""
    _, ckpt, fp32 = tiny_export()
    rc = _compare(["--reference", "torch:" + ckpt, "--against", "onnxruntime:" + fp32,
                   "--min-cosine", "0.99999"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "every layer's cosine >= 0.99999" in text
    rows = [line.split() for line in text.splitlines() if line.startswith(("detail.", "head."))]
    assert len(rows) > 5 and all(float(r[1]) < 1e-3 for r in rows)


def test_layers_refuses_other_backends_in_one_line(graphs, capsys):
    fp32, _ = graphs
    rc = _compare(["--reference", "tensorrt:x.engine", "--against", "onnxruntime:" + fp32])
    err = capsys.readouterr().err
    assert rc == 2 and "--layers compares ONNX graphs on onnxruntime CPU" in err
    assert len(err.strip().splitlines()) == 1


def test_layer_names_from_torchscript_scopes_match_the_dynamo_weight_names():
    """The TorchScript exporter's Conv weights lose their names after BN folding; the scope
    name gives the same module path the dynamo exporter's weight name gives."""
    import onnx
    from onnx import helper

    from bisenet_deploy.export.quantize import block_of, conv_layers

    nodes = [helper.make_node("Conv", ["x", "onnx::Conv_12"], ["y"],
                              name="/segment/S3/S3.0/conv1/conv/Conv"),
             helper.make_node("Conv", ["y", "net.detail.S2.1.conv.weight_DequantizeLinear_Output"],
                              ["z"], name="node_Conv_7"),
             helper.make_node("Conv", ["z", "onnx::Conv_14"], ["w"], name="/head/conv_out/conv_out.1/Conv")]
    model = helper.make_model(helper.make_graph(nodes, "g", [], []))
    layers = conv_layers(model)
    assert list(layers.values()) == ["segment.S3.0.conv1.conv", "detail.S2.1.conv",
                                     "head.conv_out.1"]
    assert [block_of(p) for p in layers.values()] == ["segment.S3.0", "detail.S2", "head.conv_out"]
    assert isinstance(model, onnx.ModelProto)
