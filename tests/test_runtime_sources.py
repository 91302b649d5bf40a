"""The onnxruntime runner's model sources: a path, the serialized ONNX, or a prepared session run
alike; construction reads and creates nothing, activation does."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bisenet_deploy.errors import InputError, UserError
from bisenet_deploy.export.onnx_metadata import set_record
from bisenet_deploy.metadata import ExportInfo, ModelMetadata, build_record
from bisenet_deploy.ort_runner import OnnxRuntimeRunner

W, H, C = 16, 8, 4


def tiny_model():
    """image 1x3xHxW -> logits (1x1 convolution) -> labels (ArgMax, int32), with its record."""
    weight = np.random.default_rng(0).normal(size=(C, 3, 1, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["logits"]),
         helper.make_node("ArgMax", ["logits"], ["idx"], axis=1, keepdims=0),
         helper.make_node("Cast", ["idx"], ["labels"], to=TensorProto.INT32)],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, H, W])],
        [helper.make_tensor_value_info("labels", TensorProto.INT32, [1, H, W]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, C, H, W])],
        [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = ModelMetadata(arch="tiny-test", num_classes=C, dataset="custom",
                         class_names=[f"c{i}" for i in range(C)],
                         palette=[[i, i, i] for i in range(C)], mean=[0.5] * 3, std=[0.5] * 3,
                         channel_order="rgb")
    info = ExportInfo(input_name="image", input_size=[W, H], model_size=[W, H],
                      input_dtype="float32", channel_order="rgb", normalize="in-graph",
                      output="both", output_names=["labels", "logits"], target="trt10",
                      precision="fp32", opset=17, batch={"dynamic": False, "size": 1})
    record = build_record(meta, info)
    set_record(model, record)
    return model, record


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model, record = tiny_model()
    path = tmp_path_factory.mktemp("sources") / "tiny.onnx"
    onnx.save(model, str(path))
    return str(path), model.SerializeToString(), record


def batch():
    return np.random.default_rng(1).uniform(-1, 1, (1, 3, H, W)).astype(np.float32)


def session_of(data):
    import onnxruntime as ort

    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_path_bytes_and_session_run_alike(tiny):
    path, data, record = tiny
    results = []
    for source in (path, data, bytearray(data), session_of(data)):
        with OnnxRuntimeRunner(source) as runner:
            assert runner.metadata == record
            assert runner.input_spec().shape == (1, 3, H, W)
            assert [s.name for s in runner.output_specs()] == ["labels", "logits"]
            results.append(runner.infer(batch()))
    for other in results[1:]:
        assert np.array_equal(other["labels"], results[0]["labels"])
        assert np.array_equal(other["logits"], results[0]["logits"])
    assert results[0]["labels"].dtype == np.int32


def test_construction_creates_no_session(tiny, monkeypatch):
    import onnxruntime as ort

    path, data, _ = tiny
    made = []
    real = ort.InferenceSession

    def counting(*args, **kwargs):
        made.append(args[0] if args else kwargs.get("path_or_bytes"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", counting)
    runners = [OnnxRuntimeRunner(path), OnnxRuntimeRunner(data)]
    assert made == [] and not any(r.is_active for r in runners)
    for runner in runners:
        runner.activate()
        runner.deactivate()
    assert made == [path, data]
    assert runners[0].onnx_path == path and runners[1].onnx_path is None


def test_a_given_session_is_used_and_outlives_the_runner(tiny):
    _, data, _ = tiny
    session = session_of(data)
    runner = OnnxRuntimeRunner(session)
    for _ in range(2):  # deactivate drops the runner's hold, not the caller's session
        with runner:
            assert runner._session is session
            runner.infer(batch())
        assert runner._session is None
    assert session.run(None, {"image": batch()})[0].shape == (1, H, W)


def test_bad_sources_are_one_line_errors(tiny, tmp_path):
    _, data, _ = tiny
    with pytest.raises(InputError, match="bytes is empty"):
        OnnxRuntimeRunner(b"")
    with pytest.raises(InputError, match="file path, bytes or an onnxruntime InferenceSession"):
        OnnxRuntimeRunner(42)
    with pytest.raises(InputError, match="prepared InferenceSession already has its own"):
        OnnxRuntimeRunner(session_of(data), threads=2)
    with pytest.raises(InputError, match="does not exist"):
        OnnxRuntimeRunner(str(tmp_path / "missing.onnx"))
    with pytest.raises(InputError, match="is a folder"):
        OnnxRuntimeRunner(str(tmp_path))
    runner = OnnxRuntimeRunner(b"not an onnx model")
    with pytest.raises(UserError, match="could not load the in-memory ONNX model"):
        runner.activate()
    assert not runner.is_active


def test_export_parity_runs_the_graph_through_the_runtime_runner(monkeypatch):
    """A labels-only graph given to parity as a ModelProto: the runner gets the serialized model
    with the ArgMax's logits exposed, and parity names them "logits"."""
    from bisenet_deploy.export import parity
    from bisenet_deploy import ort_runner

    model, _ = tiny_model()
    del model.graph.output[1]  # labels only
    sources = []

    class Spy(ort_runner.OnnxRuntimeRunner):
        def __init__(self, source, **kwargs):
            sources.append((source, kwargs))
            super().__init__(source, **kwargs)

    monkeypatch.setattr(ort_runner, "OnnxRuntimeRunner", Spy)
    got = parity.run_onnxruntime(model, batch())
    (source, kwargs), = sources
    assert isinstance(source, bytes) and kwargs == {"providers": "cpu"}
    assert [o.name for o in model.graph.output] == ["labels"]  # the caller's model is untouched
    assert sorted(got) == ["labels", "logits"] and got["logits"].shape == (1, C, H, W)
    assert np.array_equal(got["labels"], got["logits"].argmax(1))


def test_torch_runner_takes_the_network_as_its_model_source(tiny):
    import torch

    from bisenet_deploy.runtime.torch_runner import TorchRunner

    _, _, record = tiny
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, C, 1).eval()
    with TorchRunner(net, record=record) as positional, \
            TorchRunner(model=net, record=record) as keyword:
        a, b = positional.infer(batch()), keyword.infer(batch())
    assert np.array_equal(a["labels"], b["labels"]) and np.array_equal(a["logits"], b["logits"])
    assert positional.checkpoint is None
    with pytest.raises(InputError, match="needs its metadata record"):
        TorchRunner(net)
    with pytest.raises(InputError, match="give the network once"):
        TorchRunner(net, model=net, record=record)
    with pytest.raises(InputError, match="checkpoint path or a torch nn.Module, got bytes"):
        TorchRunner(b"weights", record=record)
