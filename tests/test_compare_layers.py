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
    assert rc == 2 and "--layers compares ONNX graphs" in err and "--reference" in err
    assert len(err.strip().splitlines()) == 1
    # an engine cannot show its layers: tensorrt needs the ONNX, to build its own marked engine
    rc = _compare(["--reference", "onnxruntime:" + fp32, "--against", "tensorrt:m.engine"])
    err = capsys.readouterr().err
    assert rc == 2 and "needs the ONNX for tensorrt (tensorrt:PATH.onnx), not an engine" in err
    assert len(err.strip().splitlines()) == 1


def _tensorrt_problem():
    from bisenet_deploy.runtime.factory import backend_problem

    return backend_problem("tensorrt")


def test_layers_against_tensorrt_without_an_engine_runtime_is_one_line_exit_4(graphs, capsys,
                                                                              tmp_path):
    if _tensorrt_problem() is None:
        pytest.skip("this machine can run TensorRT engines")
    fp32, int8 = graphs
    rc = _compare(["--reference", "onnxruntime:" + fp32, "--against", "tensorrt:" + int8,
                   "--json", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 4 and err.startswith("error: --layers against tensorrt: ")
    assert len(err.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


def test_the_tensorrt_probe_builds_an_engine_with_every_conv_output_marked(graphs, tmp_path):
    """Built here for real with TensorRT-RTX (no GPU needed to build): the engine's outputs are
    the graph's own plus each Conv output the comparison pairs by module path."""
    pytest.importorskip("tensorrt_rtx_bindings", reason="TensorRT-RTX is not installed")
    from bisenet_deploy.evaluation.engine_layers import EngineProbe
    from bisenet_deploy.portable.running.engine_load import load_sidecar

    _, int8 = graphs
    probe = EngineProbe(int8, flavour="tensorrt-rtx")
    engine = probe.build(str(tmp_path))
    sidecar = load_sidecar(engine)[1]
    outputs = {t["name"]: t["dtype"] for t in sidecar["io"] if t["mode"] == "output"}
    assert len(probe.paths()) >= 50
    assert set(probe.outputs.values()) <= set(outputs)
    assert outputs["labels"] == "int32"
    assert all(outputs[name] == "float32" for name in probe.outputs.values())
    assert sidecar["precision"] == "int8-qdq"


def test_the_tensorrt_probe_runs_its_marked_engine_and_removes_its_folder(graphs, monkeypatch):
    """The probe's whole path with a stand-in runner (running an engine needs a GPU): it builds
    the marked engine (for real, TensorRT-RTX), opens it through the runtime factory, reads each
    Conv output by its tensor name, and removes the folder it made when closed. The stand-in
    runs the marked ONNX beside the engine on onnxruntime, so the INT8 layers must equal the
    INT8 graph's own."""
    pytest.importorskip("tensorrt_rtx_bindings", reason="TensorRT-RTX is not installed")
    import os

    import onnxruntime as ort

    from bisenet_deploy.evaluation.engine_layers import EngineProbe
    from bisenet_deploy.evaluation.layers import compare_layers
    from bisenet_deploy.export.onnx_metadata import read_record
    from bisenet_deploy.runtime import factory
    from bisenet_deploy.synthetic import synthetic_image

    opened = []

    class StandIn:
        def __init__(self, engine):
            marked = os.path.join(os.path.dirname(engine), "layers-marked.onnx")
            self.session = ort.InferenceSession(marked, providers=["CPUExecutionProvider"])
            self.active = False

        def activate(self):
            self.active = True

        def deactivate(self):
            self.active = False

        def infer(self, batch):
            assert self.active
            names = [o.name for o in self.session.get_outputs()]
            return dict(zip(names, self.session.run(names, {"image": batch})))

    def open_runner(backend, engine=None, **_):
        assert backend == "tensorrt" and engine.endswith(".engine") and os.path.isfile(engine)
        opened.append(StandIn(engine))
        return opened[-1]

    monkeypatch.setattr(factory, "open_runner", open_runner)
    _, int8 = graphs
    probe = EngineProbe(int8, flavour="tensorrt-rtx")
    report = compare_layers(probe.model, probe, read_record(int8),
                            [synthetic_image(128, 64, seed=5)])
    folder = os.path.dirname(probe.engine_path)
    assert report["paired"] == len(probe.paths()) >= 50
    assert all(row["cosine"] > 0.99999 for row in report["layers"]), report["layers"][:3]
    probe.close()
    assert not os.path.exists(folder) and not opened[0].active


@pytest.mark.tensorrt
def test_a_tensorrt_engine_layer_by_layer_against_onnxruntime(graphs, capsys):
    """On a GPU: the FP32 graph built into an engine keeps every layer's cosine >= 0.999 against
    onnxruntime (FP32 on both sides), and the INT8 engine >= 0.99 against the INT8 graph."""
    problem = _tensorrt_problem()
    if problem:
        pytest.skip(problem)
    fp32, int8 = graphs
    assert _compare(["--reference", "onnxruntime:" + fp32, "--against", "tensorrt:" + fp32,
                     "--min-cosine", "0.999"]) == 0
    assert "every layer's cosine >= 0.999" in capsys.readouterr().out
    assert _compare(["--reference", "onnxruntime:" + int8, "--against", "tensorrt:" + int8]) == 0
    assert "every layer's cosine >= 0.99" in capsys.readouterr().out


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
