"""The choice of PyTorch exporter (`--exporter`) and the opset conversion of dynamo graphs.

* the default (`auto`) uses the torch.export-based exporter on this torch and records it, and
  falls back to TorchScript with one warning line that says why;
* a CoinCheung-format checkpoint exported through either exporter equals an independent
  re-implementation of their network (plain F.interpolate, normalize, network) to float32
  rounding;
* `opset_convert` on small hand-made opset-18 graphs: what onnx's converter lacks is covered, and
  what cannot be expressed at an older opset is refused.
"""

import functools
import logging
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from bisenet_deploy.checkpoint import load_model
from bisenet_deploy.cli.export_main import main
from bisenet_deploy.errors import ExportError, InputError
from bisenet_deploy.export import exporters
from bisenet_deploy.export.check import check_onnx
from bisenet_deploy.export.onnx_metadata import read_record
from bisenet_deploy.export.opset_convert import convert_opset
from bisenet_deploy.export.parity import make_parity_input
from bisenet_deploy.export.pipeline import ExportOptions, export_onnx
from test_checkpoint_coincheung import synthetic_state_dict
from test_model_coincheung import Ref

SMALL = dict(input_size=(128, 64), model_size=(64, 32))
# CoinCheung/BiSeNet's Cityscapes normalization (RGB, on pixels / 255)
CITY_MEAN = (0.3257, 0.3690, 0.3223)
CITY_STD = (0.2112, 0.2148, 0.2115)


@pytest.fixture(scope="module")
def loaded():
    return load_model(None, arch="bisenetv2-coincheung", dataset="cityscapes", seed=0)


def _opset(model):
    return {o.domain: o.version for o in model.opset_import}[""]


def test_dynamo_is_available_on_this_torch():
    assert exporters.dynamo_unavailable_reason() is None


def test_default_export_uses_torch_export_and_records_it(loaded, tmp_path, caplog):
    path = tmp_path / "d.onnx"
    with caplog.at_level(logging.WARNING, logger="bisenet_deploy"):
        result = export_onnx(ExportOptions(output_path=str(path), target="trt10", parity=False,
                                           **SMALL), loaded=tuple(loaded))
    assert result.record["export"]["exporter"] == "dynamo"
    assert read_record(str(path))["export"]["exporter"] == "dynamo"
    assert "falling back" not in caplog.text
    assert _opset(onnx.load(str(path))) == 17


def test_auto_falls_back_to_torchscript_with_one_warning_saying_why(loaded, tmp_path, caplog,
                                                                    monkeypatch):
    def broken(*args, **kwargs):
        raise ExportError("the torch.export-based exporter failed: simulated guard failure")

    monkeypatch.setattr(exporters, "export_dynamo", broken)
    path = tmp_path / "f.onnx"
    with caplog.at_level(logging.WARNING, logger="bisenet_deploy.export"):
        result = export_onnx(ExportOptions(output_path=str(path), target="trt8.2", **SMALL),
                             loaded=tuple(loaded))
    warnings_ = [r for r in caplog.records if r.name == "bisenet_deploy.export.exporters"]
    assert len(warnings_) == 1
    message = warnings_[0].getMessage()
    assert "simulated guard failure" in message and "TorchScript" in message
    assert "\n" not in message
    assert result.record["export"]["exporter"] == "torchscript"
    assert read_record(str(path))["export"]["exporter"] == "torchscript"
    assert result.parity.passed and check_onnx(str(path), "trt8.2") == []


def _dynamo_export_raising(exc):
    """torch.onnx.export that fails with `exc` on the dynamo path and works on the other."""
    real = torch.onnx.export

    @functools.wraps(real)  # keeps the signature the exporter choice inspects
    def export(*args, **kwargs):
        if kwargs.get("dynamo"):
            raise exc
        return real(*args, **kwargs)
    return export


def test_ctrl_c_inside_torch_export_stops_the_export_instead_of_falling_back(
        loaded, tmp_path, caplog, monkeypatch):
    # torch.export turns an interrupt in some of its phases into its own export error
    wrapped = RuntimeError("Failed to export the model with torch.export")
    wrapped.__context__ = AttributeError("half-made module")
    wrapped.__context__.__context__ = KeyboardInterrupt()
    monkeypatch.setattr(torch.onnx, "export", _dynamo_export_raising(wrapped))
    path = tmp_path / "i.onnx"
    with caplog.at_level(logging.WARNING, logger="bisenet_deploy"), \
            pytest.raises(KeyboardInterrupt):
        export_onnx(ExportOptions(output_path=str(path), target="trt10", **SMALL),
                    loaded=tuple(loaded))
    assert "falling back" not in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_the_fallback_warning_has_no_terminal_colour_codes(loaded, tmp_path, caplog, monkeypatch):
    failure = RuntimeError("Failed to export. \x1b[96mThis is step 1/3\x1b[0m of exporting.\nmore")
    monkeypatch.setattr(torch.onnx, "export", _dynamo_export_raising(failure))
    with caplog.at_level(logging.WARNING, logger="bisenet_deploy.export"):
        export_onnx(ExportOptions(output_path=str(tmp_path / "c.onnx"), target="trt10",
                                  parity=False, **SMALL), loaded=tuple(loaded))
    message = [r.getMessage() for r in caplog.records if "falling back" in r.getMessage()]
    assert len(message) == 1 and "\x1b" not in message[0] and "\n" not in message[0]
    assert "This is step 1/3 of exporting." in message[0]


def test_auto_falls_back_when_the_dynamo_graph_breaks_the_target_rules(loaded, tmp_path, caplog,
                                                                       monkeypatch):
    from bisenet_deploy.export import check

    real, calls = check.check_onnx, []

    def first_graph_breaks_a_rule(model, target):
        calls.append(target)
        return ["simulated: Resize scales are computed"] if len(calls) == 1 else real(model, target)

    monkeypatch.setattr(check, "check_onnx", first_graph_breaks_a_rule)
    # the graph itself does not matter here (its check is simulated): skip the real export
    monkeypatch.setattr(exporters, "export_dynamo", lambda *args: onnx.ModelProto())
    with caplog.at_level(logging.WARNING, logger="bisenet_deploy.export"):
        result = export_onnx(ExportOptions(output_path=str(tmp_path / "r.onnx"), target="trt8.2",
                                           parity=False, **SMALL), loaded=tuple(loaded))
    assert result.record["export"]["exporter"] == "torchscript"
    assert "breaks 1 rule(s) of target trt8.2: simulated" in caplog.text
    assert len(calls) == 2  # the dynamo graph, then the final (TorchScript) graph


def test_without_onnxscript_auto_falls_back_and_dynamo_is_refused(loaded, tmp_path, caplog,
                                                                  monkeypatch, capsys):
    monkeypatch.setattr(exporters, "dynamo_unavailable_reason",
                        lambda: "the onnxscript package is not installed (pip install onnxscript)")
    with caplog.at_level(logging.WARNING, logger="bisenet_deploy.export"):
        result = export_onnx(ExportOptions(output_path=str(tmp_path / "a.onnx"), parity=False,
                                           simplify=False, **SMALL), loaded=tuple(loaded))
    assert result.record["export"]["exporter"] == "torchscript"
    assert "onnxscript package is not installed" in caplog.text
    with pytest.raises(InputError, match="--exporter dynamo is not possible: the onnxscript"):
        export_onnx(ExportOptions(output_path=str(tmp_path / "b.onnx"), exporter="dynamo",
                                  **SMALL), loaded=tuple(loaded))
    # on the command line: one clear line, exit 2, no file
    out = tmp_path / "c.onnx"
    capsys.readouterr()  # only what the command prints below
    assert main(["onnx", "--exporter", "dynamo", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "onnxscript" in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "b.onnx").exists()


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_a_normal_export_raises_no_deprecation_or_tracer_warning(loaded, tmp_path, exporter):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_onnx(ExportOptions(output_path=str(tmp_path / "w.onnx"), target="trt8.2",
                                  exporter=exporter, dynamic_batch=(1, 2, 2), **SMALL),
                    loaded=tuple(loaded))
    kinds = (DeprecationWarning, FutureWarning, torch.jit.TracerWarning)
    assert [str(w.message) for w in caught if issubclass(w.category, kinds)] == []


def test_cli_dynamo_trt82_is_an_opset13_graph_that_passes_the_rules(tmp_path, capsys):
    out = tmp_path / "j.onnx"
    assert main(["onnx", "--exporter", "dynamo", "--target", "trt8.2", "--input-size", "128x64",
                 "--network-size", "64x32", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "trt8.2 opset 13" in printed and "exporter dynamo" in printed
    assert "parity  labels identical" in printed
    model = onnx.load(str(out))
    assert _opset(model) == 13 and check_onnx(model, "trt8.2") == []
    assert read_record(str(out))["export"]["exporter"] == "dynamo"
    means = [n for n in model.graph.node if n.op_type == "ReduceMean"]
    assert means and all(len(n.input) == 1 and any(a.name == "axes" for a in n.attribute)
                         for n in means)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_coincheung_checkpoint_export_equals_their_network(tmp_path, exporter):
    """A model_final_v2_city.pth-style file (their key layout, aux heads, random weights and BN
    statistics) exported to ONNX gives the logits of an independent functional implementation
    of their network that reads the same state dict, with plain PyTorch preprocessing."""
    state = synthetic_state_dict(seed=5)
    pth = tmp_path / "model_final_v2_city.pth"
    torch.save(state, str(pth))
    out = tmp_path / "cc.onnx"
    in_w, in_h, m_w, m_h = 160, 96, 96, 64
    result = export_onnx(ExportOptions(checkpoint=str(pth), output_path=str(out), target="trt8.2",
                                       output="both", input_size=(in_w, in_h),
                                       model_size=(m_w, m_h), exporter=exporter))
    assert result.record["model"]["source"] == "coincheung"
    assert result.record["export"]["exporter"] == exporter
    pixels = make_parity_input(result.record, 1, seed=3)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    labels, logits = session.run(["labels", "logits"], {"image": pixels})

    x = F.interpolate(torch.from_numpy(pixels), size=(m_h, m_w), mode="bilinear",
                      align_corners=False)
    mean, std = torch.tensor(CITY_MEAN).view(1, 3, 1, 1), torch.tensor(CITY_STD).view(1, 3, 1, 1)
    x = (x / 255.0 - mean) / std
    with torch.no_grad():
        ref = F.interpolate(Ref(state).forward(x), size=(in_h, in_w), mode="bilinear",
                            align_corners=False).numpy()
    scale = float(np.abs(ref).max())
    assert scale > 0
    np.testing.assert_allclose(logits, ref, rtol=1e-4, atol=1e-5 * scale)
    assert np.mean(labels == ref.argmax(1)) >= 0.9999
    assert len(np.unique(ref.argmax(1))) >= 2  # not a uniform label map


# -- opset_convert on hand-made graphs --------------------------------------------------------

def _graph18(antialias=0):
    """x -> Sub -> BatchNormalization -> ReduceMean(axes input) + Resize(sizes) -> Relu."""
    c = 3
    inits = [
        numpy_helper.from_array(np.full((1, c, 1, 1), 0.5, np.float32), "shift"),
        numpy_helper.from_array(np.linspace(0.5, 1.5, c).astype(np.float32), "gamma"),
        numpy_helper.from_array(np.linspace(-0.1, 0.1, c).astype(np.float32), "beta"),
        numpy_helper.from_array(np.linspace(-0.2, 0.2, c).astype(np.float32), "mean"),
        numpy_helper.from_array(np.linspace(0.8, 1.2, c).astype(np.float32), "var"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
        numpy_helper.from_array(np.array([1, c, 8, 12], np.int64), "sizes"),
    ]
    nodes = [
        helper.make_node("Sub", ["x", "shift"], ["s"]),
        helper.make_node("BatchNormalization", ["s", "gamma", "beta", "mean", "var"], ["b"],
                         epsilon=1e-5),
        helper.make_node("ReduceMean", ["b", "axes"], ["m"], keepdims=1, noop_with_empty_axes=0),
        helper.make_node("Resize", ["b", "", "", "sizes"], ["r"], mode="linear",
                         coordinate_transformation_mode="half_pixel", antialias=antialias,
                         keep_aspect_ratio_policy="stretch"),
        helper.make_node("Add", ["r", "m"], ["a"]),
        helper.make_node("Relu", ["a"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 4, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, 8, 12])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model, x):
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the Softmax variants leave an initializer unused
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("opset", [11, 12, 13, 17, 18, 19, 20])
def test_opset18_graph_converts_to_every_target_opset_with_the_same_result(opset):
    model = _graph18()
    onnx.checker.check_model(model, full_check=True)
    converted = convert_opset(model, opset)
    assert _opset(converted) == opset
    assert [o.domain for o in converted.opset_import] == [""]
    onnx.checker.check_model(converted, full_check=True)
    onnx.shape_inference.infer_shapes(converted, check_type=True, strict_mode=True)
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 6)).astype(np.float32)
    np.testing.assert_allclose(_run(converted, x), _run(model, x), rtol=1e-6, atol=1e-6)
    if opset <= 17:
        (mean,) = [n for n in converted.graph.node if n.op_type == "ReduceMean"]
        attrs = {a.name: helper.get_attribute_value(a) for a in mean.attribute}
        assert list(mean.input) == ["b"] and list(attrs["axes"]) == [2, 3]
        assert "noop_with_empty_axes" not in attrs
        (resize,) = [n for n in converted.graph.node if n.op_type == "Resize"]
        assert {a.name for a in resize.attribute}.isdisjoint({"antialias",
                                                               "keep_aspect_ratio_policy"})


@pytest.mark.parametrize("axis", [-1, 3, 1])
def test_softmax_whose_meaning_changed_at_13_keeps_its_meaning_or_is_refused(axis):
    """Softmax(axis=a) means "over axis a" from opset 13 but "over all axes from a" before (and
    onnx's converter keeps the attribute as it is): only the last axis means the same."""
    model = _graph18()
    model.graph.node[0].CopyFrom(helper.make_node("Softmax", ["x"], ["s"], axis=axis))
    x = np.random.default_rng(1).standard_normal((1, 3, 4, 6)).astype(np.float32)
    np.testing.assert_allclose(_run(convert_opset(model, 13), x), _run(model, x), rtol=1e-6)
    if axis == 1:
        with pytest.raises(ExportError, match="axis 1, not the last one"):
            convert_opset(model, 12)
        return
    converted = convert_opset(model, 11)
    onnx.checker.check_model(converted, full_check=True)
    np.testing.assert_allclose(_run(converted, x), _run(model, x), rtol=1e-6, atol=1e-7)


def test_what_an_older_opset_cannot_express_is_refused():
    with pytest.raises(ExportError, match="antialias=1.*opset 13 cannot express"):
        convert_opset(_graph18(antialias=1), 13)
    with pytest.raises(ExportError, match="down to 10"):
        convert_opset(_graph18(), 10)
