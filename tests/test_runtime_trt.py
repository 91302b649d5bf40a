"""The TensorRT runner's own logic, without TensorRT or a GPU.

Small fake engines expose exactly the attributes of each API generation (8.2-8.4 bindings, 8.5+
named tensors), and a fake `pycuda.driver` keeps "device memory" in host bytes, so these tests
check our branching, buffer sizing, copies, dynamic-batch and CUDA-graph handling, the context
push/pop discipline and the cleanup; they do not pretend to build or run a real engine (the test
marked `tensorrt` at the end does that where TensorRT and a GPU exist).
"""

import json
import subprocess
import sys
import threading
import types

import numpy as np
import pytest

from bisenet_deploy.errors import (EngineError, IncompatibleEngineError, InputError,
                                   MissingDependencyError, UserError)
from bisenet_deploy.portable.trt import cuda_context
from bisenet_deploy.portable.running import trt_runner as tr
from support import fake_cuda
from support.fake_cuda import BYTES_PER_MS, ENGINE_MS
from support.fake_trt import (NUM_CLASSES, PROFILE, FakeBindingsEngine, FakeTensorsEngine, H, W,
                              compute, fake_trt)
from support.records import make_record


def image_batch(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 3, H, W)).astype(np.float32)


# -- pure logic ------------------------------------------------------------------------------------
def test_api_generation_is_a_feature_test():
    trt = fake_trt()
    assert tr.api_generation(FakeTensorsEngine(trt)) == tr.TENSORS
    assert tr.api_generation(FakeBindingsEngine(trt)) == tr.BINDINGS


def test_dtype_mapping_keeps_int32_labels_and_knows_each_version():
    trt = fake_trt()
    assert tr.numpy_dtype(trt.DataType.INT32, trt) == np.int32
    assert tr.numpy_dtype(trt.DataType.FLOAT, trt) == np.float32
    assert tr.numpy_dtype(trt.DataType.HALF, trt) == np.float16
    assert tr.numpy_dtype(trt.DataType.UINT8, trt) == np.uint8
    assert tr.numpy_dtype(trt.DataType.INT64, trt) == np.int64
    assert tr.numpy_dtype(trt.DataType.BOOL, trt) == np.bool_
    with pytest.raises(EngineError, match="BF16"):
        tr.numpy_dtype(trt.DataType.BF16, trt)
    old = fake_trt("8.2.1")  # 8.2 has no UINT8/INT64 members: still maps the rest
    assert tr.numpy_dtype(old.DataType.INT8, old) == np.int8
    with pytest.raises(EngineError):
        tr.numpy_dtype(trt.DataType.UINT8, old)


@pytest.mark.parametrize("cls", [FakeTensorsEngine, FakeBindingsEngine])
def test_engine_io_reads_both_generations_alike(cls):
    trt = fake_trt()
    io = tr.engine_io(cls(trt, dynamic=True), trt)
    assert [(t.name, t.is_input, t.shape, t.dtype) for t in io] == [
        ("image", True, (-1, 3, H, W), np.float32),
        ("labels", False, (-1, H, W), np.int32),
        ("logits", False, (-1, NUM_CLASSES, H, W), np.float32)]
    assert io[0].profile == PROFILE and io[1].profile is None
    assert tr.max_input_shape(io[0]) == (4, 3, H, W)
    assert tr.batch_range(io[0]) == (1, 4)
    static = tr.engine_io(cls(trt, dynamic=False), trt)
    assert tr.max_input_shape(static[0]) == (1, 3, H, W) and tr.batch_range(static[0]) == (1, 1)
    if cls is FakeBindingsEngine:
        assert [t.index for t in io] == [0, 1, 2]


@pytest.mark.parametrize("cls", [FakeTensorsEngine, FakeBindingsEngine])
def test_output_buffers_sized_from_the_profile_max(cls):
    trt = fake_trt()
    engine = cls(trt, dynamic=True)
    io = tr.engine_io(engine, trt)
    context = engine.create_execution_context()
    gen = tr.api_generation(engine)
    tr.set_input_shape(context, io[0], tr.max_input_shape(io[0]), gen)
    shapes = tr.resolved_output_shapes(context, io, gen)
    assert shapes == {"labels": (4, H, W), "logits": (4, NUM_CLASSES, H, W)}
    assert tr.buffer_nbytes(shapes["labels"], np.int32) == 4 * H * W * 4
    assert tr.buffer_nbytes(shapes["logits"], np.float32) == 4 * NUM_CLASSES * H * W * 4
    with pytest.raises(EngineError, match="unresolved"):
        tr.volume((-1, 3))


def test_unresolved_output_shape_is_an_engine_error():
    trt = fake_trt()
    engine = FakeTensorsEngine(trt, dynamic=True)
    io = tr.engine_io(engine, trt)
    with pytest.raises(EngineError, match="not all set"):
        tr.resolved_output_shapes(engine.create_execution_context(), io, tr.TENSORS)


def test_profile_range_check_names_the_range():
    trt = fake_trt()
    dyn = tr.engine_io(FakeTensorsEngine(trt, dynamic=True), trt)[0]
    for n in (1, 2, 4):
        tr.check_batch_in_profile(n, dyn)
    with pytest.raises(InputError, match=r"batch 5 is outside .*batch 1\.\.4"):
        tr.check_batch_in_profile(5, dyn)
    with pytest.raises(InputError, match="batch 0"):
        tr.check_batch_in_profile(0, dyn)
    static = tr.engine_io(FakeTensorsEngine(trt, dynamic=False), trt)[0]
    with pytest.raises(InputError, match="built for batch 1, got a batch of 2"):
        tr.check_batch_in_profile(2, static)


def test_refused_shape_is_an_input_error():
    trt = fake_trt()
    engine = FakeBindingsEngine(trt, dynamic=True)
    io = tr.engine_io(engine, trt)
    with pytest.raises(InputError, match="refused the input shape"):
        tr.set_input_shape(engine.create_execution_context(), io[0], (9, 3, H, W), tr.BINDINGS)


def test_specs_from_record():
    record = {"model": {"num_classes": 19},
              "export": {"input_name": "image", "input_size": [2048, 1024], "input_dtype": "uint8",
                         "output_names": ["labels", "logits"],
                         "batch": {"dynamic": True, "min": 1, "opt": 2, "max": 4}}}
    inp, outs = tr.specs_from_record(record)
    assert inp.shape == (-1, 3, 1024, 2048) and inp.dtype == np.uint8
    assert [(o.name, o.shape, o.dtype) for o in outs] == [
        ("labels", (-1, 1024, 2048), np.int32), ("logits", (-1, 19, 1024, 2048), np.float32)]


# -- the runner on the fakes -----------------------------------------------------------------------
@pytest.mark.parametrize("generation", ["tensors", "bindings"])
@pytest.mark.parametrize("zero_copy", [False, True])
def test_runner_end_to_end_on_fakes(fake_gpu, generation, zero_copy):
    path = fake_gpu(generation, dynamic=False)
    runner = tr.TensorRTRunner(path, zero_copy=zero_copy)
    with runner:
        assert runner.generation == generation
        assert runner.input_spec().shape == (1, 3, H, W)
        assert [s.dtype for s in runner.output_specs()] == [np.int32, np.float32]
        batch = image_batch(1)
        out = runner.infer(batch)
        labels, logits = compute(batch)
        assert out["labels"].dtype == np.int32 and np.array_equal(out["labels"], labels)
        np.testing.assert_allclose(out["logits"], logits, rtol=1e-6)
        # the four events split the call: input copy, engine, output copies (labels + logits)
        in_bytes, out_bytes = batch.nbytes, out["labels"].nbytes + out["logits"].nbytes
        copies = {"h2d": in_bytes / BYTES_PER_MS, "d2h": out_bytes / BYTES_PER_MS}
        if zero_copy:  # mapped memory: nothing is copied
            copies = {"h2d": 0.0, "d2h": 0.0}
        assert runner.last_phase_times_ms() == pytest.approx(dict(compute=ENGINE_MS, **copies))
        assert runner.last_device_time_ms() == ENGINE_MS and runner.phase_clock == "cuda-events"
        # results are copies: the next call does not change them
        keep = out["logits"].copy()
        runner.infer(image_batch(1, seed=1))
        assert np.array_equal(out["logits"], keep)
        with pytest.raises(InputError, match="must be float32"):
            runner.infer(batch.astype(np.float16))
        with pytest.raises(InputError, match="must have shape 1x3x8x12, got 2x3x8x12"):
            runner.infer(image_batch(2))
        assert fake_cuda.DRIVER.current_depth() == 0  # the context is current only inside calls
    assert not runner.is_active
    assert fake_cuda.DRIVER.current_depth() == 0
    # everything allocated was freed
    assert len(fake_cuda.DRIVER.freed) == len(fake_cuda.DRIVER.allocated) and fake_cuda.DRIVER.allocated
    if zero_copy:  # mapped host memory, no device allocations
        assert all(isinstance(a, bytearray) and a.flags == 2 for a in fake_cuda.DRIVER.allocated)


@pytest.mark.parametrize("generation", ["tensors", "bindings"])
def test_runner_dynamic_batch_on_fakes(fake_gpu, generation):
    path = fake_gpu(generation, dynamic=True)
    with tr.TensorRTRunner(path) as runner:
        assert runner.input_spec().shape == (-1, 3, H, W)
        # buffers are sized for the profile max
        assert runner._buffers["logits"].host.size == 4 * NUM_CLASSES * H * W
        for n in (1, 3, 4, 2):
            batch = image_batch(n, seed=n)
            out = runner.infer(batch)
            assert out["labels"].shape == (n, H, W)
            assert np.array_equal(out["labels"], compute(batch)[0])
        with pytest.raises(InputError, match=r"batch 1\.\.4"):
            runner.infer(image_batch(5))


@pytest.mark.parametrize("generation", ["tensors", "bindings"])
def test_runner_cuda_graph_per_shape(fake_gpu, generation):
    path = fake_gpu(generation, dynamic=True)
    with tr.TensorRTRunner(path, use_cuda_graph=True) as runner:
        engine = fake_gpu.state["engine"]
        for n in (2, 2, 3, 2):
            batch = image_batch(n, seed=10 + n)
            assert np.array_equal(runner.infer(batch)["labels"], compute(batch)[0])
            # a graph launch is timed like a plain enqueue: one engine run between the copies
            assert runner.last_phase_times_ms()["compute"] == pytest.approx(ENGINE_MS)
            assert runner.last_phase_times_ms()["h2d"] == pytest.approx(batch.nbytes / BYTES_PER_MS)
        assert sorted(runner._graphs) == [(2, 3, H, W), (3, 3, H, W)]
        # per shape: one plain warm-up enqueue, then graph launches
        assert engine.context.executions == 2 + 4
        assert "cuda-graph" in runner.describe()
        rt = sys.modules["cuda.bindings.runtime"]
        assert fake_cuda.DRIVER.capture_modes == [
            rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal] * 2
    assert runner._graphs == {}
    # both graphs and both instances destroyed on deactivate
    assert sorted(map(id, fake_cuda.DRIVER.destroyed)) == sorted(map(id, fake_cuda.DRIVER.graphs))
    assert len(fake_cuda.DRIVER.graphs) == 4


def test_cuda_graph_without_cuda_python_refused_at_activate(fake_gpu, monkeypatch):
    path = fake_gpu("tensors", dynamic=False)
    fake_cuda.install(monkeypatch, with_cudart=False)  # pycuda, but no cuda-python
    runner = tr.TensorRTRunner(path, use_cuda_graph=True)
    with pytest.raises(MissingDependencyError, match="CUDA graphs need cuda-python.*pip install"):
        runner.activate()
    assert not runner.is_active and fake_cuda.DRIVER.current_depth() == 0
    assert fake_cuda.DRIVER.allocated == []  # refused before any GPU work


def test_cuda_graph_capture_failure_runs_the_shape_without_a_graph(fake_gpu):
    path = fake_gpu("tensors", dynamic=True)
    fake_cuda.DRIVER.fail_capture = True
    with tr.TensorRTRunner(path, use_cuda_graph=True) as runner:
        for n in (2, 2):
            batch = image_batch(n, seed=n)
            assert np.array_equal(runner.infer(batch)["labels"], compute(batch)[0])
        assert runner._graphs == {} and runner._graph_failed == {(2, 3, H, W)}
        assert "cuda-graph (capture failed)" in runner.describe()
        # the stream was left out of capture mode: every later call ran
        assert fake_gpu.state["engine"].context.executions == 3
    assert fake_cuda.DRIVER.current_depth() == 0


def test_runner_usable_from_a_worker_thread(fake_gpu):
    path = fake_gpu("tensors", dynamic=False)
    runner = tr.TensorRTRunner(path).activate()
    result = {}

    def work():
        result["labels"] = runner.infer(image_batch(1, seed=3))["labels"]
        result["depth"] = fake_cuda.DRIVER.current_depth()

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert np.array_equal(result["labels"], compute(image_batch(1, seed=3))[0])
    assert result["depth"] == 0
    runner.deactivate()
    assert len(fake_cuda.DRIVER.freed) == len(fake_cuda.DRIVER.allocated)


def test_own_context_is_destroyed(fake_gpu):
    path = fake_gpu("tensors")
    with tr.TensorRTRunner(path, context_mode="own"):
        pass
    assert len(sys.modules["pycuda.driver"].Context._released) == 1
    assert fake_cuda.DRIVER.current_depth() == 0


def test_undeserializable_engine_is_an_incompatible_engine_error(fake_gpu):
    path = fake_gpu("tensors", blob=b"garbage")
    runner = tr.TensorRTRunner(path)
    with pytest.raises(IncompatibleEngineError, match="could not load") as err:
        runner.activate()
    # the fix works on the desktop and inside the Jetson bundle (which has no bisenet-* commands)
    assert "bisenet-build-engine" in str(err.value) and "./build_engine.sh" in str(err.value)
    assert not runner.is_active and fake_cuda.DRIVER.current_depth() == 0


def _sidecar(version, gpu_name="NVIDIA Fake GPU", cc="8.6"):
    return {"schema": 1, "kind": "bisenet_deploy.engine", "tensorrt_version": version,
            "gpu": {"name": gpu_name, "compute_capability": cc}, "precision": "fp16",
            "io": [], "onnx_metadata": make_record(num_classes=NUM_CLASSES, input_size=(W, H))}


def test_sidecar_metadata_and_compatibility(fake_gpu):
    good = fake_gpu("tensors", sidecar=_sidecar("10.3.0"))
    runner = tr.TensorRTRunner(good)
    assert runner.metadata["model"]["num_classes"] == NUM_CLASSES
    with runner:
        pass
    other_trt = fake_gpu("bindings", sidecar=_sidecar("8.6.1"))
    with pytest.raises(IncompatibleEngineError) as err:
        tr.TensorRTRunner(other_trt).activate()
    # both sides named: the engine's TensorRT and this machine's
    assert "TensorRT 8.6.1" in str(err.value) and "TensorRT 10.3.0" in str(err.value)
    assert "./build_engine.sh --force" in str(err.value)
    other_gpu = fake_gpu("tensors", dynamic=True, sidecar=_sidecar("10.3.0", "Orin", "8.7"))
    with pytest.raises(IncompatibleEngineError) as err:
        tr.TensorRTRunner(other_gpu).activate()
    assert "Orin (SM 8.7)" in str(err.value) and "NVIDIA Fake GPU (SM 8.6)" in str(err.value)
    assert fake_cuda.DRIVER.current_depth() == 0


def test_missing_engine_and_sidecar_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):  # a missing path: exit code 2
        tr.TensorRTRunner(str(tmp_path / "none.engine"))
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ENGINE")
    # construction reads nothing: a named sidecar that is missing is found on first use
    runner = tr.TensorRTRunner(str(engine), sidecar_path=str(tmp_path / "nope.json"))
    with pytest.raises(EngineError, match="sidecar"):
        runner.metadata
    with pytest.raises(EngineError, match="sidecar"):
        runner.activate()
    assert not runner.is_active


def test_construction_reads_no_file(fake_gpu, monkeypatch):
    import builtins

    path = fake_gpu("tensors", sidecar=_sidecar("10.3.0"))
    opened = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    runner = tr.TensorRTRunner(path)
    assert opened == []
    assert runner.metadata["model"]["num_classes"] == NUM_CLASSES  # the sidecar, on first use
    assert [p.endswith(".json") for p in opened] == [True]
    with runner:
        assert any(p == path for p in opened)  # the engine, on activate


@pytest.mark.parametrize("kind", ["bytes", "engine"])
def test_runner_takes_bytes_or_a_deserialized_engine(fake_gpu, kind):
    path = fake_gpu("tensors", dynamic=True)
    tensorrt = sys.modules["tensorrt"]
    with open(path, "rb") as fh:
        blob = fh.read()
    model = blob if kind == "bytes" else tensorrt.Runtime(None).deserialize_cuda_engine(blob)
    runner = tr.TensorRTRunner(model, use_cuda_graph=True)
    assert runner.engine_path is None and runner.metadata is None
    with runner:
        batch = image_batch(3, seed=7)
        assert np.array_equal(runner.infer(batch)["labels"], compute(batch)[0])
        assert runner.describe() == "tensorrt, tensors API, cuda-graph"
    assert not runner.is_active and fake_cuda.DRIVER.current_depth() == 0
    assert len(fake_cuda.DRIVER.freed) == len(fake_cuda.DRIVER.allocated)


def test_runner_refuses_an_unknown_model_source():
    with pytest.raises(InputError, match="engine path, serialized engine bytes or"):
        tr.TensorRTRunner(42)


def test_specs_before_activate_need_metadata(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ENGINE")
    runner = tr.TensorRTRunner(str(engine))
    with pytest.raises(EngineError, match="after activate"):
        runner.input_spec()
    with pytest.raises(UserError, match="not active"):
        runner.infer(image_batch(1))


# -- no tensorrt / pycuda here -----------------------------------------------------------------------
_BLOCK = (
    "import sys, importlib.abc\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('tensorrt', 'pycuda'):\n"
    "            raise ImportError('blocked ' + name)\n"
    "sys.meta_path.insert(0, Block())\n")


def test_import_needs_neither_tensorrt_nor_pycuda():
    code = _BLOCK + (
        "import bisenet_deploy.portable.running.trt_runner, bisenet_deploy.portable.trt.cuda_context\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in "
        "('tensorrt', 'pycuda', 'torch', 'onnxruntime')]\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_tensorrt_or_pycuda_is_one_clear_line(tmp_path, monkeypatch):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ENGINE")
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install -e '\.\[trt\]'"):
        tr.TensorRTRunner(str(engine)).activate()
    from bisenet_deploy.portable.shared import install_hints

    monkeypatch.setattr(install_hints, "gpu_absent", lambda: False)  # a GPU machine, no pycuda
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt())
    monkeypatch.setitem(sys.modules, "pycuda", None)
    with pytest.raises(MissingDependencyError,
                       match=r"pycuda is not installed: .*pip install -e '\.\[trt\]'"):
        tr.TensorRTRunner(str(engine)).activate()


def test_portable_files_stay_python36_compatible():
    import os
    import shutil

    import bisenet_deploy.portable.trt.cuda_context as cc

    exe = shutil.which("vermin", path=os.path.dirname(sys.executable)) or shutil.which("vermin")
    if exe is None:
        pytest.skip("vermin is not installed (pip install vermin)")
    out = subprocess.run([exe, "--target=3.6-", "--no-tips",
                          "--violations", tr.__file__, cc.__file__],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# -- the real thing ----------------------------------------------------------------------------------
def _cuda_python_problem():
    try:
        from bisenet_deploy.portable.running.cuda_graphs import import_cudart

        import_cudart()
    except MissingDependencyError as exc:
        return str(exc)
    return None


@pytest.mark.tensorrt
@pytest.mark.parametrize("graph", [False, True], ids=["plain", "cuda-graph"])
def test_real_engine_matches_onnxruntime(tmp_path, graph):
    """Build a small engine from a tiny export and compare the runner with onnxruntime."""
    if graph and _cuda_python_problem():
        pytest.skip(_cuda_python_problem())
    import tensorrt as trt

    from bisenet_deploy.ort_runner import OnnxRuntimeRunner
    from support.records import runtime_record
    from support.tiny_models import TinySegNet, export_onnx

    record = runtime_record(output="both", batch=(1, 2, 4))
    onnx_path = export_onnx(tmp_path / "tiny.onnx", TinySegNet().eval(), record)
    from bisenet_deploy.portable.trt.trt_logger import tensorrt_logger

    logger = tensorrt_logger(trt)  # TensorRT keeps the first logger of a process: share it
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) \
        if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH") else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as fh:
        assert parser.parse(fh.read()), [parser.get_error(i) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    shape = (3, record["export"]["input_size"][1], record["export"]["input_size"][0])
    profile.set_shape("image", (1,) + shape, (2,) + shape, (4,) + shape)
    config.add_optimization_profile(profile)
    blob = builder.build_serialized_network(network, config)
    engine_path = tmp_path / "tiny.engine"
    engine_path.write_bytes(bytes(blob))
    batch = np.random.default_rng(0).uniform(0, 255, (3,) + shape).astype(np.float32)
    with tr.TensorRTRunner(str(engine_path), use_cuda_graph=graph) as trt_run, \
            OnnxRuntimeRunner(onnx_path) as ort:
        for _ in range(2):  # with a graph: the capture, then a launch of the captured graph
            got, want = trt_run.infer(batch), ort.infer(batch)
            assert got["labels"].dtype == np.int32
            assert np.mean(got["labels"] == want["labels"]) > 0.999
            np.testing.assert_allclose(got["logits"], want["logits"], atol=1e-3)
            assert trt_run.last_device_time_ms() > 0
            phases = trt_run.last_phase_times_ms()
            assert all(phases[k] > 0 for k in ("h2d", "compute", "d2h"))
            assert phases["compute"] == trt_run.last_device_time_ms()
        if graph:  # captured for real (a cuda-python for another CUDA major fails here)
            assert list(trt_run._graphs) == [batch.shape], trt_run.describe()


def test_type_stubs_are_not_mistaken_for_tensorrt(tmp_path, monkeypatch):
    """tensorrt-stubs installs a bare `tensorrt/` folder: importable, but no TensorRT."""
    from bisenet_deploy.runtime.factory import backend_problem

    (tmp_path / "tensorrt").mkdir()
    (tmp_path / "tensorrt" / "__init__.pyi").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    assert "tensorrt" in backend_problem("tensorrt")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ENGINE")
    with pytest.raises(MissingDependencyError, match=r"pip install -e '\.\[trt\]'"):
        tr.TensorRTRunner(str(engine)).activate()


def test_cuda_context_scopes(fake_gpu):
    fake_gpu("tensors")  # installs the fake driver
    ctx = cuda_context.CudaContext(0, mode="own").open()
    assert fake_cuda.DRIVER.current_depth() == 0  # open() leaves nothing current
    with ctx:
        with ctx:
            assert fake_cuda.DRIVER.current_depth() == 2
        assert fake_cuda.DRIVER.current_depth() == 1
    assert fake_cuda.DRIVER.current_depth() == 0
    with pytest.raises(EngineError, match="without a matching push"):
        ctx.pop()
    assert ctx.device_name() == "NVIDIA Fake GPU" and ctx.compute_capability() == (8, 6)
    ctx.close()
    assert not ctx.is_open and fake_cuda.DRIVER.current_depth() == 0
    with pytest.raises(EngineError, match="not open"):
        ctx.push()
    with pytest.raises(EngineError, match="does not exist"):
        cuda_context.CudaContext(3).open()
    # the primary context is retained once per device and shared
    a = cuda_context.CudaContext(0).open()
    b = cuda_context.CudaContext(0).open()
    assert a._ctx is b._ctx


def test_bindings_of_several_profiles_list_each_tensor_once():
    trt = fake_trt("8.2.1")
    engine = FakeBindingsEngine(trt, dynamic=True)
    engine.io = engine.io + [(n + " [profile 1]", i, s, d) for n, i, s, d in engine.io]
    engine.num_bindings = len(engine.io)
    engine.num_optimization_profiles = 2
    assert [t.name for t in tr.engine_io(engine, trt)] == ["image", "labels", "logits"]


def test_unknown_context_mode_is_refused(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ENGINE")
    with pytest.raises(InputError, match="context_mode"):
        tr.TensorRTRunner(str(engine), context_mode="shared")
