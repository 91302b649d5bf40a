"""The ONNX export pipeline: graphs per target, parity with PyTorch, metadata, option errors.

Small sizes (input 128x64 -> network 64x32) on the CoinCheung-variant network with seeded random
weights keep each export to a few seconds; one `slow` test runs the real 2048x1024 -> 1024x512.
The tests of what a graph must be (per target, per input variant, batch modes, FP16) run for
both PyTorch exporters; the others use the default (`auto`: the torch.export-based one here).
"""

import logging
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from bisenet_deploy.checkpoint import load_model, save_checkpoint
from bisenet_deploy.errors import ExportError, InputError, NoMetadataError, ParityError
from bisenet_deploy.export.check import check_onnx
from bisenet_deploy.export.onnx_metadata import get_parity, read_record
from bisenet_deploy.export.parity import TOLERANCES, check_parity, make_parity_input
from bisenet_deploy.export.pipeline import (
    ExportOptions,
    default_output_path,
    export_onnx,
)
from bisenet_deploy.portable.files.fileio import sha256_file

ARCH = "bisenetv2-coincheung"
SMALL = dict(input_size=(128, 64), model_size=(64, 32))
EXPORTERS = ["dynamo", "torchscript"]


@pytest.fixture(scope="module")
def loaded():
    return load_model(None, arch=ARCH, dataset="cityscapes", seed=0)


@pytest.fixture(scope="module")
def exported(loaded, tmp_path_factory):
    """Export once per target and exporter (outputs labels+logits) and share the files."""
    cache = {}

    def get(target, exporter="dynamo", **kwargs):
        key = (target, exporter, tuple(sorted(kwargs.items())))
        if key not in cache:
            path = str(tmp_path_factory.mktemp("onnx") / f"{target}.onnx")
            opts = ExportOptions(output_path=path, target=target, output="both",
                                 exporter=exporter, **dict(SMALL, **kwargs))
            cache[key] = export_onnx(opts, loaded=tuple(loaded))
            # never a silent fallback: the graph comes from the exporter asked for
            assert cache[key].record["export"]["exporter"] == exporter
        return cache[key]
    return get


@pytest.fixture
def reuse_export(exported, monkeypatch):
    """For tests of the steps after the export: the pipeline's export step returns a copy of a
    graph already exported (by the `exported` fixture) for `target` instead of exporting again."""
    from bisenet_deploy.export import pipeline

    def use(target):
        graph = onnx.load(exported(target).path)
        monkeypatch.setattr(pipeline, "torch_export", lambda *args, **kwargs: (graph, "dynamo"))
    return use


def _ort(path, image):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: image})))


def _elem_types(model):
    g = model.graph
    return {v.name: v.type.tensor_type.elem_type for v in list(g.input) + list(g.output)}


def independent_reference(loaded, pixels, export):
    """The textbook pipeline in plain PyTorch, sharing no code with DeployModule: bilinear resize
    to the model size, (x / 255 - mean) / std in the network's channel order (a graph with
    normalize "none" takes normalized input: resize only), the network, bilinear resize back,
    argmax."""
    meta = loaded.metadata
    (in_w, in_h), (m_w, m_h) = export["input_size"], export["model_size"]
    x = F.interpolate(torch.from_numpy(np.asarray(pixels, dtype=np.float32)), size=(m_h, m_w),
                      mode="bilinear", align_corners=False)
    if export["normalize"] == "in-graph":
        if export["channel_order"] != meta.channel_order:
            x = x.flip(1)
        mean = torch.tensor(meta.mean).view(1, 3, 1, 1)
        std = torch.tensor(meta.std).view(1, 3, 1, 1)
        x = (x / 255.0 - mean) / std
    with torch.no_grad():
        logits = F.interpolate(loaded.model.eval()(x), size=(in_h, in_w), mode="bilinear",
                               align_corners=False)
    return logits.argmax(1).numpy(), logits.numpy()


def assert_matches_independent_reference(loaded, result, image, rel=1e-5):
    """The graph's labels and logits for `image` are those of `independent_reference`."""
    out = _ort(result.path, image)
    ref_labels, ref_logits = independent_reference(loaded, image, result.record["export"])
    assert out["logits"].shape == ref_logits.shape
    assert np.max(np.abs(out["logits"] - ref_logits)) <= rel * np.max(np.abs(ref_logits))
    assert np.mean(out["labels"] == ref_labels) >= 0.9999


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("target", ["trt8.2", "trt8.6", "trt10", "trt11"])
def test_each_target_writes_a_checked_graph_matching_pytorch(exported, loaded, target, exporter):
    result = exported(target, exporter)
    model = onnx.load(result.path)
    onnx.checker.check_model(model, full_check=True)
    assert check_onnx(model, target) == []
    expected_opset = 13 if target == "trt8.2" else 17
    assert {o.domain: o.version for o in model.opset_import}[""] == expected_opset
    assert read_record(result.path)["export"]["exporter"] == exporter
    assert result.parity.passed
    assert result.parity.labels_identical_pct >= 99.99
    assert result.parity.logits_rel_error <= 1e-4
    assert result.parity.reference_classes >= 3  # the label comparison is not on a uniform map
    assert [o.name for o in model.graph.output] == ["labels", "logits"]
    out = _ort(result.path, make_parity_input(result.record, 1))
    assert out["labels"].shape == (1, 64, 128) and out["labels"].dtype == np.int32
    assert out["logits"].shape == (1, 19, 64, 128) and out["logits"].dtype == np.float32
    # labels are the argmax of the logits at the input size
    assert np.array_equal(out["labels"], np.argmax(out["logits"], axis=1))
    # the graph computes what the plain PyTorch pipeline computes
    assert_matches_independent_reference(loaded, result, make_parity_input(result.record, 1))
    # no aux heads
    assert not any("aux" in n.name.lower() for n in model.graph.node)


@pytest.mark.parametrize("target", ["trt8.2", "trt10"])
def test_dynamo_graph_has_no_more_nodes_than_the_torchscript_one(exported, target):
    """Graph quality after onnx-simplifier: the default exporter costs no extra nodes."""
    dynamo, torchscript = exported(target, "dynamo"), exported(target, "torchscript")
    assert dynamo.simplified and torchscript.simplified
    assert 0 < dynamo.num_nodes <= torchscript.num_nodes


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_trt82_graph_has_no_uint8_or_int64_and_old_opset(exported, exporter):
    model = onnx.load(exported("trt8.2", exporter).path)
    assert model.opset_import[0].version <= 13
    tp = onnx.TensorProto
    types = _elem_types(model)
    assert types["image"] == tp.FLOAT
    assert types["labels"] == tp.INT32
    assert tp.UINT8 not in types.values() and tp.INT64 not in types.values()
    assert all(i.data_type != tp.UINT8 for i in model.graph.initializer)
    # the labels come from ArgMax followed by an explicit Cast to INT32
    producers = {o: n for n in model.graph.node for o in n.output}
    cast = producers["labels"]
    assert cast.op_type == "Cast" and cast.attribute[0].i == tp.INT32
    assert producers[cast.input[0]].op_type == "ArgMax"
    # ReduceMean keeps its axes as an attribute, Resize parameters are constants
    for node in model.graph.node:
        if node.op_type == "ReduceMean":
            assert len(node.input) == 1 and any(a.name == "axes" for a in node.attribute)


def test_uint8_input_is_refused_for_trt82_with_the_reason(loaded, tmp_path):
    path = tmp_path / "x.onnx"
    with pytest.raises(InputError, match="UINT8"):
        export_onnx(ExportOptions(output_path=str(path), target="trt8.2", input_dtype="uint8",
                                  **SMALL), loaded=tuple(loaded))
    assert not path.exists()


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("kwargs", [
    dict(target="trt10", input_dtype="uint8", channel_order="bgr"),
    dict(target="trt8.2", normalize="none"),
    dict(target="trt8.2", channel_order="bgr"),
])
def test_input_variants_match_pytorch(exported, loaded, kwargs, exporter):
    result = exported(kwargs["target"], exporter,
                      **{k: v for k, v in kwargs.items() if k != "target"})
    model = onnx.load(result.path)
    assert check_onnx(model, kwargs["target"]) == []
    assert result.parity.passed, result.parity.summary()
    # the export's own parity check runs DeployModule; this reference shares no code with it
    assert_matches_independent_reference(loaded, result, make_parity_input(result.record, 1))
    info = result.record["export"]
    for key, value in kwargs.items():
        if key != "target":
            assert info[key] == value
    want = onnx.TensorProto.UINT8 if kwargs.get("input_dtype") == "uint8" else onnx.TensorProto.FLOAT
    assert _elem_types(model)["image"] == want


def test_bgr_graph_gives_the_rgb_answer_for_the_same_picture(exported):
    rgb = exported("trt8.2")
    bgr = exported("trt8.2", channel_order="bgr")
    image = make_parity_input(rgb.record, 1)
    a = _ort(rgb.path, image)
    b = _ort(bgr.path, np.ascontiguousarray(image[:, ::-1]))
    assert np.mean(a["labels"] == b["labels"]) >= 0.9999
    assert np.max(np.abs(a["logits"] - b["logits"])) <= 1e-4 * np.max(np.abs(a["logits"]))


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_dynamic_batch_graph_runs_several_batch_sizes(exported, loaded, exporter):
    result = exported("trt8.2", exporter, dynamic_batch=(1, 2, 4))
    model = onnx.load(result.path)
    assert check_onnx(model, "trt8.2") == []
    assert result.record["export"]["batch"] == {"dynamic": True, "min": 1, "opt": 2, "max": 4}
    assert result.parity.batch == 2 and result.parity.passed
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert not dim0.HasField("dim_value")
    assert all(v.type.tensor_type.shape.dim[0].dim_param == "batch"
               for v in list(model.graph.input) + list(model.graph.output))
    # the in-graph resizes use constant scales: the batch is not in them
    consts = {i.name for i in model.graph.initializer} | \
        {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    for node in model.graph.node:
        if node.op_type == "Resize" and len(node.input) > 2 and node.input[2]:
            assert node.input[2] in consts
    one = make_parity_input(result.record, 1)
    three = np.concatenate([one, one[:, :, ::-1].copy(), one * 0.5], axis=0).astype(np.float32)
    out1 = _ort(result.path, one)
    out3 = _ort(result.path, three)
    assert out3["labels"].shape == (3, 64, 128)
    # resized by constant scales, not sizes: still the plain PyTorch pipeline's answer
    assert_matches_independent_reference(loaded, result, three)
    assert np.array_equal(out3["labels"][0], out1["labels"][0])


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_static_batch_and_no_simplify_still_have_constant_resizes(exported, exporter):
    result = exported("trt8.2", exporter, batch=2, simplify=False)
    assert not result.simplified
    model = onnx.load(result.path)
    assert check_onnx(model, "trt8.2") == []
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    assert result.parity.passed and result.parity.batch == 2


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_trt11_fp16_is_an_fp16_graph_with_fp32_io(exported, exporter):
    result = exported("trt11", exporter, precision="fp16")
    model = onnx.load(result.path)
    tp = onnx.TensorProto
    assert check_onnx(model, "trt11") == []
    types = _elem_types(model)
    assert types["image"] == tp.FLOAT and types["logits"] == tp.FLOAT
    assert types["labels"] == tp.INT32
    conv_weights = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    inits = {i.name: i.data_type for i in model.graph.initializer}
    assert conv_weights and all(inits[w] == tp.FLOAT16 for w in conv_weights)
    assert result.parity.graph_precision == "fp16"
    assert result.parity.tolerance == TOLERANCES["fp16"]
    assert result.parity.passed, result.parity.summary()


def test_fp16_on_older_targets_keeps_an_fp32_graph(loaded, tmp_path, reuse_export):
    reuse_export("trt10")
    path = str(tmp_path / "x.onnx")
    result = export_onnx(ExportOptions(output_path=path, target="trt10", precision="fp16",
                                       simplify=False, parity=False, **SMALL), loaded=tuple(loaded))
    model = onnx.load(path)
    inits = {i.data_type for i in model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 not in inits
    assert result.record["export"]["precision"] == "fp16"
    assert result.parity is None


def test_checkpoint_for_another_class_count_exports(tmp_path):
    other = load_model(None, arch=ARCH, dataset="custom", num_classes=7, seed=3)
    ckpt = tmp_path / "seven.safetensors"
    save_checkpoint(str(ckpt), other.model, other.metadata)
    out = tmp_path / "seven.onnx"
    result = export_onnx(ExportOptions(checkpoint=str(ckpt), output_path=str(out), output="logits",
                                       target="trt8.2", **SMALL))
    assert result.parity.passed
    record = read_record(str(out))
    assert record["model"]["num_classes"] == 7
    assert record["model"]["checkpoint_sha256"] == sha256_file(str(ckpt))
    logits = _ort(str(out), make_parity_input(record, 1))["logits"]
    assert logits.shape == (1, 7, 64, 128)


def test_metadata_round_trips(exported, tmp_path):
    result = exported("trt10")
    record = read_record(result.path)
    assert record == result.record
    info = record["export"]
    assert info["input_size"] == [128, 64] and info["model_size"] == [64, 32]
    assert info["target"] == "trt10" and info["opset"] == 17
    assert info["output_names"] == ["labels", "logits"]
    assert record["model"]["num_classes"] == 19 and len(record["model"]["class_names"]) == 19
    assert record["model"]["weights"] == "random-init"
    stored = get_parity(onnx.load(result.path))
    assert stored["labels_identical_pct"] == result.parity.labels_identical_pct
    assert stored["passed"] is True
    # a plain ONNX without the record is a clear error
    plain = onnx.load(result.path)
    del plain.metadata_props[:]
    path = tmp_path / "plain.onnx"
    onnx.save(plain, str(path))
    with pytest.raises(NoMetadataError, match="no bisenet-deploy metadata"):
        read_record(str(path))


@pytest.mark.parametrize("sizes, match", [
    (dict(input_size=(16, 64), model_size=(64, 32)), "--input-size"),
    (dict(input_size=(128, 64), model_size=(64, 30)), "multiples of 32"),
    (dict(input_size=(128, 64), model_size=(0, 32)), "multiples of 32"),
])
def test_bad_sizes_are_clear_errors_and_leave_no_file(loaded, tmp_path, sizes, match):
    path = tmp_path / "out.onnx"
    with pytest.raises(InputError, match=match):
        export_onnx(ExportOptions(output_path=str(path), **sizes), loaded=tuple(loaded))
    assert os.listdir(tmp_path) == []


def test_failed_export_leaves_an_existing_file_untouched(loaded, tmp_path, monkeypatch,
                                                        reuse_export):
    reuse_export("trt10")
    path = tmp_path / "out.onnx"
    previous = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "previous",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])]))
    previous.metadata_props.add(key="bisenet_deploy", value="{}")  # ours: it may be replaced
    path.write_bytes(previous.SerializeToString())
    before = path.read_bytes()
    import bisenet_deploy.export.pipeline as pipeline

    def broken_check(model, rules):
        raise ExportError("simulated target-check failure")
    monkeypatch.setattr(pipeline, "target_check", broken_check)
    with pytest.raises(ExportError, match="simulated"):
        export_onnx(ExportOptions(output_path=str(path), simplify=False, parity=False, **SMALL),
                    loaded=tuple(loaded))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.onnx"]


@pytest.mark.parametrize("target", ["trt8.2", "trt8.6", "trt10", "trt11"])
def test_each_target_s_opset_range_ends_where_its_parser_does(target):
    """The ends of each target's range: the first opset outside is refused, the last accepted."""
    from bisenet_deploy.export.targets import TARGETS, validate_target_options

    rules = TARGETS[target]
    expected = {"trt8.2": (11, 13), "trt8.6": (11, 17), "trt10": (11, 20), "trt11": (11, 20)}
    assert (rules.min_opset, rules.max_opset) == expected[target]
    for opset in (rules.min_opset, rules.max_opset):
        assert validate_target_options(target, input_dtype="float32", precision="fp32",
                                       opset=opset)[1] == opset
    for opset in (rules.min_opset - 1, rules.max_opset + 1):
        with pytest.raises(InputError, match=f"--opset {opset} .*{target}"):
            validate_target_options(target, input_dtype="float32", precision="fp32", opset=opset)


def test_opset_14_for_trt82_is_refused_before_the_model_is_built_or_exported(tmp_path,
                                                                             monkeypatch):
    from bisenet_deploy.export import pipeline

    calls = []
    monkeypatch.setattr(pipeline, "_load", lambda *a, **k: calls.append("build model"))
    monkeypatch.setattr(pipeline, "torch_export", lambda *a, **k: calls.append("export"))
    with pytest.raises(InputError, match=r"--opset 14 .*trt8\.2.*11\.\.13"):
        export_onnx(ExportOptions(output_path=str(tmp_path / "x.onnx"), target="trt8.2", opset=14,
                                  **SMALL))
    assert calls == [] and os.listdir(tmp_path) == []


def test_opset_override_outside_the_target_range_is_refused(loaded, tmp_path):
    with pytest.raises(InputError, match="11..13"):
        export_onnx(ExportOptions(output_path=str(tmp_path / "x.onnx"), target="trt8.2", opset=17,
                                  **SMALL), loaded=tuple(loaded))
    assert os.listdir(tmp_path) == []


def test_failed_simplification_falls_back_with_a_warning(loaded, tmp_path, monkeypatch, caplog,
                                                         reuse_export):
    import onnxsim

    reuse_export("trt8.2")
    def boom(model, *a, **k):
        raise RuntimeError("simulated onnxsim crash")
    monkeypatch.setattr(onnxsim, "simplify", boom)
    path = tmp_path / "x.onnx"
    with caplog.at_level(logging.WARNING, logger="bisenet_deploy"):
        result = export_onnx(ExportOptions(output_path=str(path), target="trt8.2", **SMALL),
                             loaded=tuple(loaded))
    assert not result.simplified
    assert "simulated onnxsim crash" in caplog.text
    assert check_onnx(str(path), "trt8.2") == []
    assert result.parity.passed


def test_parity_failure_raises_with_the_numbers(exported, loaded):
    result = exported("trt10")
    model = onnx.load(result.path)
    # corrupt the weights of the last convolution: the graph no longer computes the network
    last_conv = [n for n in model.graph.node if n.op_type == "Conv"][-1]
    for init in model.graph.initializer:
        if init.name == last_conv.input[1]:
            w = onnx.numpy_helper.to_array(init) * -1.0
            init.CopyFrom(onnx.numpy_helper.from_array(w.astype(np.float32), init.name))
    with pytest.raises(ParityError, match="labels identical .*relative error"):
        check_parity(loaded.model, result.record, model)


def test_default_output_path_names_the_export(loaded):
    from bisenet_deploy.export.pipeline import export_record

    def name(**kw):
        return default_output_path(export_record(ExportOptions(**kw), loaded.metadata,
                                                 kw.get("target", "trt10"), 13))

    stem = f"{ARCH}-cityscapes-2048x1024-to-1024x512"
    # -fp16 names an FP16 graph only: trt8.2 keeps the FP32 graph (FP16 is the builder's flag)
    assert name(target="trt8.2", dynamic_batch=(1, 2, 4), precision="fp16") == os.path.join(
        "export", f"{stem}-labels-trt8.2-dyn1-4.onnx")
    assert name(target="trt10", precision="fp16") == os.path.join(
        "export", f"{stem}-labels-trt10.onnx")
    assert name(target="trt11", precision="fp16") == os.path.join(
        "export", f"{stem}-labels-trt11-fp16.onnx")
    assert name(target="trt10", input_dtype="uint8", channel_order="bgr", batch=4,
                output="both") == os.path.join("export", f"{stem}-both-trt10-uint8-bgr-b4.onnx")
    assert name(normalize="none", output="logits") == os.path.join(
        "export", f"{stem}-logits-trt10-prenorm.onnx")


def test_export_readme_quotes_the_naming_pattern():
    """export/README.md tells users how files are named: it must be the code's pattern."""
    from bisenet_deploy.export.pipeline import NAME_PATTERN

    readme = os.path.join(os.path.dirname(__file__), os.pardir, "export", "README.md")
    with open(readme, encoding="utf-8") as f:
        assert f"`{NAME_PATTERN}`" in f.read()


@pytest.mark.slow
def test_full_size_2048x1024_to_1024x512_matches_pytorch(loaded, tmp_path):
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    path = tmp_path / "full.onnx"
    result = export_onnx(ExportOptions(output_path=str(path), target="trt10", output="both"),
                         loaded=tuple(loaded))
    assert result.parity.input_shape == (1, 3, 1024, 2048)
    assert result.parity.labels_identical_pct >= 99.99
    assert result.parity.logits_rel_error <= 1e-4
    assert check_onnx(str(path), "trt10") == []
    assert_matches_independent_reference(loaded, result, make_parity_input(result.record, 1),
                                          rel=1e-4)


def test_unwritable_output_is_a_clear_error(loaded, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match="cannot write"):  # a path problem: exit code 2
        export_onnx(ExportOptions(output_path=str(blocker / "x.onnx"), simplify=False,
                                  parity=False, **SMALL), loaded=tuple(loaded))
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def test_output_under_a_file_is_refused_before_the_export(loaded, tmp_path, monkeypatch):
    # was refused only after export and parity, with a misleading "File exists"
    from bisenet_deploy.export import pipeline

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")

    def no_export(*args, **kwargs):
        raise AssertionError("the export ran before the output path was checked")

    monkeypatch.setattr(pipeline, "torch_export", no_export)
    with pytest.raises(InputError, match="a_file is a file, not a folder"):
        export_onnx(ExportOptions(output_path=str(blocker / "x.onnx"), **SMALL),
                    loaded=tuple(loaded))
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def test_trt11_fp16_with_uint8_input_labels_only_and_dynamic_batch(loaded, tmp_path):
    path = str(tmp_path / "f16.onnx")
    result = export_onnx(ExportOptions(output_path=path, target="trt11", precision="fp16",
                                       input_dtype="uint8", output="labels",
                                       dynamic_batch=(1, 2, 3), **SMALL), loaded=tuple(loaded))
    model = onnx.load(path)
    tp = onnx.TensorProto
    assert check_onnx(model, "trt11") == []
    assert _elem_types(model) == {"image": tp.UINT8, "labels": tp.INT32}
    inits = {i.name: i.data_type for i in model.graph.initializer}
    assert all(inits[n.input[1]] == tp.FLOAT16 for n in model.graph.node if n.op_type == "Conv")
    # the uint8 input is cast straight to FLOAT16
    first = [n for n in model.graph.node if "image" in n.input]
    assert [n.op_type for n in first] == ["Cast"] and first[0].attribute[0].i == tp.FLOAT16
    assert result.parity.graph_precision == "fp16" and result.parity.passed
    assert result.parity.batch == 2


def test_coincheung_style_pth_with_aux_heads_exports_without_them(tmp_path):
    """A CoinCheung-format state dict (aux heads included) -> a graph with no aux-head node."""
    from bisenet_deploy.model import build_model

    torch.manual_seed(1)
    net = build_model(ARCH, 19, aux=True)
    pth = tmp_path / "model_final_v2_city.pth"
    torch.save(net.state_dict(), str(pth))
    out = tmp_path / "cc.onnx"
    result = export_onnx(ExportOptions(checkpoint=str(pth), output_path=str(out), target="trt8.2",
                                       output="both", **SMALL))
    assert result.record["model"]["source"] == "coincheung"
    assert result.record["model"]["arch"] == ARCH
    assert result.parity.passed
    model = onnx.load(str(out))
    assert check_onnx(model, "trt8.2") == []
    assert not any("aux" in n.name.lower() for n in model.graph.node)
    assert not any("aux" in i.name.lower() for i in model.graph.initializer)
