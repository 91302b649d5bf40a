"""Runner fixtures: the fake GPU (fake pycuda + cuda-python runtime + fake TensorRT) and engines."""

import json
import sys

import pytest

from . import fake_cuda
from .fake_trt import FakeBindingsEngine, FakeTensorsEngine, fake_trt


@pytest.fixture
def fake_gpu(monkeypatch, tmp_path):
    """Installs fake tensorrt + pycuda modules; returns a function making an engine file."""
    fake_cuda.install(monkeypatch)
    state = {}

    def make(generation="tensors", dynamic=False, version="10.3.0", sidecar=None, blob=b"ENGINE"):
        trt = fake_trt(version)
        cls = FakeTensorsEngine if generation == "tensors" else FakeBindingsEngine

        def factory(t):
            state["engine"] = cls(t, dynamic=dynamic)
            return state["engine"]

        trt._engine_factory = factory
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        engine_path = tmp_path / ("model-%s-%s.engine" % (generation, dynamic))
        engine_path.write_bytes(blob)
        if sidecar is not None:
            (tmp_path / ("model-%s-%s.json" % (generation, dynamic))).write_text(
                json.dumps(sidecar))
        return str(engine_path)

    make.state = state
    return make


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """{name: (onnx path, record)}: the tiny model exported once per session with static labels
    ("labels"), both outputs, logits only, and both outputs with a dynamic batch 1..4."""
    from .records import runtime_record
    from .tiny_models import export_onnx, tiny_net

    folder = tmp_path_factory.mktemp("runtime_models")
    net = tiny_net()
    out = {}
    for name, fields in {"labels": {}, "both": {"output": "both"},
                         "logits": {"output": "logits"},
                         "dynamic": {"output": "both", "batch": (1, 2, 4)}}.items():
        record = runtime_record(**fields)
        out[name] = (export_onnx(folder / ("%s.onnx" % name), net, record), record)
    return out
