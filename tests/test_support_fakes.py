"""The shared fakes (tests/support/) offer only what the real libraries do.

- the fake TensorRT of each version has exactly the features trt_api.py's version table gives it,
  and its 10.13 module offers nothing tensorrt-stubs 10.13 lacks;
- the fake pycuda.driver's classes stay within pycuda 2026.1's API (no stream capture);
- the fake CUDA runtime offers only names, enum members and results cuda-python's
  `cuda.bindings.runtime` has, and cuda_graphs.py calls the real module with arguments it accepts.
Checks against a real package skip where it is not installed.
"""

import ast
import os
import types

import pytest

from bisenet_deploy.errors import EngineError
from bisenet_deploy.portable.running import cuda_graphs
from bisenet_deploy.portable.trt import trt_api
from support import fake_cuda
from support.fake_trt import FakeTensorsContext, FakeTensorsEngine, fake_trt
from support.trt_stubs import patched_pyi, stub_dirs

VERSIONS = ["8.2.1", "8.4.3", "8.5.2", "8.6.1", "10.0.1", "10.13.0", "11.0.0"]


@pytest.mark.parametrize("version", VERSIONS)
def test_fake_tensorrt_has_the_features_of_its_version(version):
    detected = trt_api.detect_features(fake_trt(version)).as_dict()
    assert detected == trt_api.features_for_version(version).as_dict()


# -- against tensorrt-stubs ------------------------------------------------------------------------
def _stub_members():
    """{class name: member names} and the module's names, from tensorrt-stubs' tensorrt.pyi."""
    dirs = stub_dirs()
    if dirs is None:
        pytest.skip("tensorrt-stubs is not installed (scripts/setup_env.sh installs it)")
    with open(os.path.join(dirs[1], "tensorrt.pyi"), encoding="utf-8") as f:
        tree = ast.parse(patched_pyi(f.read()))

    def names(node):
        out = set()
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.ClassDef)):
                out.add(item.name)
            if isinstance(item, ast.ClassDef):  # pybind's export_values: members in the parent
                out |= names(item)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                out.add(item.target.id)
        return out

    classes = dict((n.name, (n, names(n))) for n in tree.body if isinstance(n, ast.ClassDef))
    members = {}
    for name, (node, own) in classes.items():
        todo, seen = [node], set(own)
        while todo:  # inherited members
            for base in todo.pop().bases:
                if isinstance(base, ast.Name) and base.id in classes:
                    seen |= classes[base.id][1]
                    todo.append(classes[base.id][0])
        members[name] = seen
    module = set(members) | {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    return members, module | {"__version__"}


def _public(obj):
    return {n for n in vars(obj) if not n.startswith("_")} if not isinstance(obj, type) else \
        {n for n in obj.__dict__ if not n.startswith("_")}


def test_fake_tensorrt_10_offers_nothing_the_stubs_lack():
    members, module = _stub_members()
    trt = fake_trt("10.13.0")
    missing = []
    for name in _public(trt) | {"__version__"}:
        if name not in module:
            missing.append(name)
            continue
        value = getattr(trt, name)
        if isinstance(value, (type, types.SimpleNamespace)) and name in members:
            missing += ["%s.%s" % (name, m) for m in _public(value) - members[name]]
    for cls, real in ((FakeTensorsEngine, "ICudaEngine"), (FakeTensorsContext, "IExecutionContext")):
        methods = {n for c in cls.__mro__[:-1] for n, v in vars(c).items()
                   if callable(v) and not n.startswith("_")}
        missing += ["%s.%s" % (real, m) for m in methods - members[real]]
    assert missing == []


# -- against pycuda's API --------------------------------------------------------------------------
def test_fake_pycuda_stays_within_pycuda_and_has_no_stream_capture():
    mod = fake_cuda.FakeDriver().module()
    for cls, api in sorted(fake_cuda.PYCUDA_API.items()):
        assert _public(getattr(mod, cls)) <= api, cls
    assert not hasattr(mod.Stream, "begin_capture") and not hasattr(mod, "Graph")


# -- against cuda-python -------------------------------------------------------------------------
def _real_cudart():
    try:
        from cuda.bindings import runtime
    except ImportError:
        pytest.skip("cuda-python (cuda-bindings) is not installed: pip install -e '.[test]'")
    return runtime


def test_fake_cudart_offers_only_what_cuda_python_has():
    real = _real_cudart()
    fake = fake_cuda.FakeDriver().cudart()
    for name in _public(fake):
        assert hasattr(real, name), name
        value = getattr(fake, name)
        if isinstance(value, type) and hasattr(value, "__members__"):
            real_members = getattr(real, name).__members__
            for member, item in value.__members__.items():
                assert member in real_members and int(real_members[member]) == int(item), member


def test_capture_calls_the_real_runtime_with_arguments_it_accepts():
    """No GPU, or a stream handle that is not one: CUDA answers with an error code, which becomes
    an EngineError naming the call; a wrong argument type would be a TypeError instead."""
    real = _real_cudart()
    enqueued = []
    with pytest.raises(EngineError, match=r"^cudaStreamBeginCapture failed \(cudaError"):
        cuda_graphs.capture_graph(real, 0x5000, lambda: enqueued.append(1))
    assert enqueued == []
    graph = cuda_graphs.CudaGraph(real, real.cudaGraph_t(), real.cudaGraphExec_t())
    with pytest.raises(EngineError, match=r"^cudaGraphLaunch failed \(cudaError"):
        graph.launch(0x5000)


def test_capture_on_the_fake_runtime_ends_the_capture_when_the_enqueue_fails(monkeypatch):
    driver = fake_cuda.install(monkeypatch)
    rt = driver.cudart()
    ctx = driver.module().Context()
    ctx.push()
    stream = driver.module().Stream()

    def bad_enqueue():
        raise EngineError("TensorRT failed to enqueue")

    with pytest.raises(EngineError, match="failed to enqueue"):
        cuda_graphs.capture_graph(rt, stream.handle, bad_enqueue)
    assert stream._capture is None  # the stream is usable again
    graph = cuda_graphs.capture_graph(rt, stream.handle, lambda: None)
    graph.destroy()
    assert graph.graph is None and len(driver.destroyed) == 2
