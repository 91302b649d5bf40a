"""onnxruntime and PyTorch runners, the factory and the Segmenter API, for real on a tiny model.

The model is a two-convolution stand-in for BiSeNet (logits at input resolution, like the real
network), wrapped in the export's DeployModule (in-graph resize, normalization, argmax) and
exported with torch.onnx plus a hand-built metadata record, so these tests need neither the
export pipeline nor full-size networks.
"""

import numpy as np
import pytest
import torch

from bisenet_deploy.errors import InputError, MissingDependencyError, UnusableFileError, UserError
from bisenet_deploy.portable.running.preprocess import prepare_input
from bisenet_deploy.runtime.api import Segmenter, resize_labels_nearest
from bisenet_deploy.runtime.factory import (available_backends, backend_problem,
                                            open_runner)
from bisenet_deploy.ort_runner import OnnxRuntimeRunner
from bisenet_deploy.runtime.torch_runner import TorchRunner

from support.records import runtime_record as make_record
from support.tiny_models import INPUT_H, INPUT_W, NUM_CLASSES, export_onnx, tiny_net


@pytest.fixture(scope="module")
def net():
    return tiny_net()


@pytest.fixture(scope="module")
def models(tiny_models):
    """{name: (onnx path, record)} for the variants the tests use (support/fixtures.py)."""
    return tiny_models


def rgb_batch(n=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, size=(n, 3, INPUT_H, INPUT_W)).astype(np.float32)


def ort_runner(models, name):
    return OnnxRuntimeRunner(models[name][0], providers="cpu", threads=1)


def torch_runner(models, name, net):
    return TorchRunner(model=net, record=models[name][1])


RUNNERS = ["onnxruntime", "torch"]


def make_runner(kind, models, name, net):
    return ort_runner(models, name) if kind == "onnxruntime" else torch_runner(models, name, net)


# -- the shared contract ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", RUNNERS)
def test_specs_dtypes_and_shapes(kind, models, net):
    with make_runner(kind, models, "both", net) as runner:
        spec = runner.input_spec()
        assert (spec.name, spec.shape, spec.dtype) == ("image", (1, 3, INPUT_H, INPUT_W),
                                                       np.dtype(np.float32))
        outs = runner.output_specs()
        assert [o.name for o in outs] == ["labels", "logits"]
        assert outs[0].dtype == np.int32 and outs[1].dtype == np.float32
        result = runner.infer(rgb_batch())
        assert set(result) == {"labels", "logits"}
        assert result["labels"].dtype == np.int32
        assert result["labels"].shape == (1, INPUT_H, INPUT_W)
        assert result["logits"].dtype == np.float32
        assert result["logits"].shape == (1, NUM_CLASSES, INPUT_H, INPUT_W)
        assert result["labels"].min() >= 0 and result["labels"].max() < NUM_CLASSES
        # labels are the argmax of the logits the same call returned
        assert np.array_equal(result["labels"], result["logits"].argmax(axis=1))
        assert runner.metadata["model"]["num_classes"] == NUM_CLASSES


@pytest.mark.parametrize("kind", RUNNERS)
def test_input_validation_is_clear(kind, models, net):
    with make_runner(kind, models, "labels", net) as runner:
        with pytest.raises(InputError, match="must be float32, got uint8"):
            runner.infer(rgb_batch().astype(np.uint8))
        with pytest.raises(InputError, match=r"must have shape 1x3x48x96, got 1x3x64x96"):
            runner.infer(np.zeros((1, 3, 64, 96), np.float32))
        with pytest.raises(InputError, match="must have shape"):
            runner.infer(np.zeros((3, INPUT_H, INPUT_W), np.float32))
        with pytest.raises(InputError, match="numpy array"):
            runner.infer([[0.0]])
        with pytest.raises(InputError, match="got 2x3x48x96"):
            runner.infer(rgb_batch(2))  # a static batch of 1


# activate/infer/deactivate and the state after deactivate: tests/test_runner_contract.py


def test_context_manager_frees_the_backend_objects(models, net):
    ort = ort_runner(models, "labels")
    with ort:
        assert ort._session is not None
    assert ort._session is None
    tr = torch_runner(models, "labels", net)
    with tr:
        assert tr._graph is not None
    assert tr._graph is None


def test_outputs_are_not_aliased_between_calls(models, net):
    with ort_runner(models, "both") as runner:
        a = runner.infer(rgb_batch(seed=1))
        keep = a["logits"].copy()
        runner.infer(rgb_batch(seed=2))
        assert np.array_equal(a["logits"], keep)


# -- the backends agree --------------------------------------------------------------------------
def test_onnxruntime_and_torch_agree(models, net):
    batch = rgb_batch(seed=3)
    with ort_runner(models, "both") as ort, torch_runner(models, "both", net) as tr:
        a, b = ort.infer(batch), tr.infer(batch)
    np.testing.assert_allclose(a["logits"], b["logits"], rtol=1e-4, atol=1e-4)
    agree = np.mean(a["labels"] == b["labels"])
    assert agree > 0.999, agree


@pytest.mark.parametrize("kind", RUNNERS)
def test_dynamic_batch(kind, models, net):
    with make_runner(kind, models, "dynamic", net) as runner:
        assert runner.input_spec().shape == (-1, 3, INPUT_H, INPUT_W)
        assert runner.output_specs()[0].shape[0] == -1
        single = runner.infer(rgb_batch(1, seed=4))
        triple = runner.infer(np.concatenate([rgb_batch(1, seed=5), rgb_batch(1, seed=4),
                                              rgb_batch(1, seed=6)]))
        assert triple["labels"].shape == (3, INPUT_H, INPUT_W)
        assert triple["logits"].shape == (3, NUM_CLASSES, INPUT_H, INPUT_W)
        # batching does not change an image's result
        assert np.array_equal(triple["labels"][1], single["labels"][0])
        np.testing.assert_allclose(triple["logits"][1], single["logits"][0], atol=1e-4)


def test_uint8_graph_input(tmp_path, net):
    record = make_record(input_dtype="uint8")
    path = export_onnx(tmp_path / "u8.onnx", net, record)
    image = rgb_batch(seed=7).astype(np.uint8)
    with OnnxRuntimeRunner(path) as ort, TorchRunner(model=net, record=record) as tr:
        assert ort.input_spec().dtype == np.uint8 == tr.input_spec().dtype
        assert np.array_equal(ort.infer(image)["labels"], tr.infer(image)["labels"])
        with pytest.raises(InputError, match="must be uint8, got float32"):
            ort.infer(image.astype(np.float32))


# -- torch runner options --------------------------------------------------------------------------
def test_torch_refuses_fp16_and_cuda_graph_on_cpu(models, net):
    with pytest.raises(InputError, match="fp16 needs a CUDA device"):
        TorchRunner(model=net, record=models["labels"][1], precision="fp16")
    with pytest.raises(InputError, match="CUDA graphs need a CUDA device"):
        TorchRunner(model=net, record=models["labels"][1], cuda_graph=True)
    with pytest.raises(InputError, match="precision must be"):
        TorchRunner(model=net, record=models["labels"][1], precision="int8")
    with pytest.raises(InputError, match="needs its metadata record"):
        TorchRunner(model=net)


@pytest.mark.parametrize("name, n", [("both", 1), ("dynamic", 3)])
def test_onnxruntime_io_binding_path_gives_the_same_outputs_and_times_three_steps(models, name, n):
    """The I/O-binding path the GPU providers take (copy in, run, copy out), exercised with real
    onnxruntime on the CPU: same outputs as session.run, and a time for each step."""
    batch = rgb_batch(n, seed=12)
    with ort_runner(models, name) as plain, \
            OnnxRuntimeRunner(models[name][0], providers="cpu", threads=1,
                              io_binding=True) as bound:
        want, got = plain.infer(batch), bound.infer(batch)
        assert plain.last_phase_times_ms() is None and plain.phase_clock is None
        phases = bound.last_phase_times_ms()
    assert list(got) == list(want)
    for key in want:
        assert got[key].dtype == want[key].dtype and np.array_equal(got[key], want[key])
    assert sorted(phases) == ["compute", "d2h", "h2d"] and min(phases.values()) >= 0
    assert bound.phase_clock == "host-clock" and "io-binding" in bound.describe()


@pytest.mark.cuda
def test_onnxruntime_cuda_times_copies_and_compute(models):
    from bisenet_deploy.ort_runner import available_providers

    if "cuda" not in available_providers():
        pytest.skip("this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    batch = rgb_batch(2, seed=13)
    with ort_runner(models, "dynamic") as cpu, \
            OnnxRuntimeRunner(models["dynamic"][0], providers="cuda") as gpu:
        want, got = cpu.infer(batch), gpu.infer(batch)
        phases = gpu.last_phase_times_ms()
    assert np.mean(got["labels"] == want["labels"]) > 0.999
    assert all(phases[k] > 0 for k in ("h2d", "compute", "d2h"))


def test_onnxruntime_gpu_providers_use_io_binding(models):
    runner = OnnxRuntimeRunner(models["both"][0], providers="cuda")  # not activated: no GPU needed
    assert runner.io_binding and runner.phase_clock == "host-clock"
    assert not OnnxRuntimeRunner(models["both"][0]).io_binding


def test_torch_channels_last_gives_the_same_labels(models, net):
    batch = rgb_batch(seed=8)
    with torch_runner(models, "both", net) as plain, \
            TorchRunner(model=net, record=models["both"][1], channels_last=True) as cl:
        a, b = plain.infer(batch), cl.infer(batch)
    np.testing.assert_allclose(a["logits"], b["logits"], atol=1e-4)
    assert cl.last_device_time_ms() is None  # no device time on the CPU
    assert cl.last_phase_times_ms() is None and cl.phase_clock is None  # and no copies to split


def test_torch_missing_cuda_is_a_clear_error(models, net):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    runner = TorchRunner(model=net, record=models["labels"][1], device="cuda")
    with pytest.raises(MissingDependencyError, match="no CUDA"):
        runner.activate()
    assert not runner.is_active


@pytest.mark.cuda
@pytest.mark.parametrize("precision,cuda_graph", [("fp32", False), ("fp16", False),
                                                  ("fp32", True), ("fp16", True)])
def test_torch_cuda(models, net, precision, cuda_graph):
    batch = rgb_batch(seed=9)
    with torch_runner(models, "both", net) as ref, \
            TorchRunner(model=net, record=models["both"][1], device="cuda",
                        precision=precision, cuda_graph=cuda_graph) as gpu:
        want = ref.infer(batch)
        for _ in range(2):  # the second call replays the captured graph
            got = gpu.infer(batch)
        assert gpu.last_device_time_ms() > 0
        phases = gpu.last_phase_times_ms()  # CUDA events around each copy and the compute
        assert all(phases[k] > 0 for k in ("h2d", "compute", "d2h"))
        assert phases["compute"] == gpu.last_device_time_ms() and gpu.phase_clock == "cuda-events"
    assert got["labels"].dtype == np.int32 and got["logits"].dtype == np.float32
    assert np.mean(got["labels"] == want["labels"]) > (0.99 if precision == "fp16" else 0.999)


# -- factory ----------------------------------------------------------------------------------------
def test_factory_opens_each_present_backend(models, net):
    present = available_backends()
    assert "onnxruntime" in present and "torch" in present
    onnx_path, record = models["labels"]
    batch = rgb_batch(seed=10)
    with open_runner("onnxruntime", onnx=onnx_path, threads=1) as a, \
            open_runner("torch", onnx=onnx_path, model=net) as b:
        assert a.backend == "onnxruntime" and b.backend == "torch"
        assert a.infer(batch)["labels"].shape == b.infer(batch)["labels"].shape


def test_factory_errors_are_clear(models, tmp_path):
    with pytest.raises(InputError, match="unknown backend 'tensorflow'"):
        open_runner("tensorflow", onnx=models["labels"][0])
    with pytest.raises(InputError, match="needs an ONNX file"):
        open_runner("onnxruntime")
    with pytest.raises(InputError, match="needs an engine"):
        open_runner("tensorrt")
    with pytest.raises(InputError, match="does not exist"):
        open_runner("onnxruntime", onnx=str(tmp_path / "missing.onnx"))
    with pytest.raises(InputError, match="is a folder, not an ONNX file"):  # was "does not exist"
        open_runner("onnxruntime", onnx=str(tmp_path))
    with pytest.raises(InputError, match="exported for fp32"):
        open_runner("onnxruntime", onnx=models["labels"][0], precision="fp16")
    with pytest.raises(InputError, match="runs on the CPU"):
        open_runner("torch", record=models["labels"][1], device="cuda")
    assert "unknown backend" in backend_problem("nope")


def test_factory_reports_missing_gpu_backends(models):
    import onnxruntime

    from bisenet_deploy.portable.shared.install_hints import gpu_absent

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        wanted = "has none" if gpu_absent() else "onnxruntime-gpu"  # the real blocker
        assert wanted in backend_problem("onnxruntime-cuda")
        with pytest.raises(MissingDependencyError, match=wanted):
            open_runner("onnxruntime-cuda", onnx=models["labels"][0])
    if not torch.cuda.is_available():
        with pytest.raises(MissingDependencyError, match="no CUDA"):
            open_runner("torch-cuda", record=models["labels"][1])


def test_corrupt_onnx_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an onnx file")
    runner = OnnxRuntimeRunner(str(bad))
    with pytest.raises(UserError, match="could not load"):
        runner.activate()


# -- Segmenter -------------------------------------------------------------------------------------
def test_segmenter_end_to_end_on_another_image_size(models):
    from bisenet_deploy.synthetic import synthetic_image

    image = synthetic_image(80, 40, seed=1)   # not the graph's 96x48
    onnx_path, record = models["labels"]
    with Segmenter.from_file(onnx_path, threads=1) as seg:
        labels = seg(image)
        assert labels.shape == (40, 80) and labels.dtype == np.int32
        # the same as preparing by hand, running, and resizing the labels back
        raw = seg.runner.infer(prepare_input(image, record))["labels"][0]
        assert np.array_equal(labels, resize_labels_nearest(raw, 80, 40))
        picture = seg.colorize(labels)
        assert picture.shape == (40, 80, 3) and picture.dtype == np.uint8
        palette = np.array(record["model"]["palette"], np.uint8)
        assert np.array_equal(picture, palette[labels])
        # BGR input gives the same answer as RGB
        assert np.array_equal(seg(image[:, :, ::-1].copy(), channel_order="bgr"), labels)
        assert seg.class_names == record["model"]["class_names"]
    assert not seg.runner.is_active


def test_segmenter_logits_only_graph_argmax_on_host(models):
    from bisenet_deploy.synthetic import synthetic_image

    image = synthetic_image(INPUT_W, INPUT_H, seed=2)
    with Segmenter.from_file(models["logits"][0]) as a, \
            Segmenter.from_file(models["labels"][0]) as b:
        assert np.array_equal(a(image), b(image))


def test_segment_batch_static_and_dynamic(models):
    from bisenet_deploy.synthetic import synthetic_image

    images = [synthetic_image(96, 48, seed=s) for s in range(3)] + \
        [synthetic_image(50, 30, seed=9)]
    with Segmenter.from_file(models["labels"][0]) as static, \
            Segmenter.from_file(models["dynamic"][0]) as dynamic:
        one_by_one = [static(im) for im in images]
        for seg in (static, dynamic):
            batch = seg.segment_batch(images)
            assert [b.shape for b in batch] == [(48, 96)] * 3 + [(30, 50)]
            for got, want in zip(batch, one_by_one):
                assert np.mean(got == want) > 0.999


def test_segment_batch_pads_a_static_batch(tmp_path, net, models):
    from bisenet_deploy.synthetic import synthetic_image

    record = make_record()
    record["export"]["batch"] = {"dynamic": False, "size": 2}
    path = export_onnx(tmp_path / "static2.onnx", net, record)
    images = [synthetic_image(96, 48, seed=s) for s in range(3)]
    with Segmenter.from_file(path) as pairs, Segmenter.from_file(models["labels"][0]) as single:
        assert pairs.runner.input_spec().shape[0] == 2
        got = pairs.segment_batch(images)  # 2 + (1 padded to 2)
        assert len(got) == 3
        for image, labels in zip(images, got):
            assert np.array_equal(labels, single(image))


def test_segmenter_errors(models, tmp_path):
    with pytest.raises(InputError, match="cannot tell the backend"):
        Segmenter.from_file(str(tmp_path / "model.bin"))
    with pytest.raises(InputError, match="does not exist"):
        Segmenter.from_file(str(tmp_path / "model.onnx"))
    with Segmenter.from_file(models["labels"][0]) as seg:
        with pytest.raises(InputError, match="uint8"):
            seg(np.zeros((10, 10, 3), np.float32))
        with pytest.raises(InputError, match="H x W x 3"):
            seg(np.zeros((10, 10), np.uint8))
        with pytest.raises(InputError, match="segment_batch"):
            seg(np.zeros((2, 10, 10, 3), np.uint8))
        # ids outside the palette (e.g. ignore 255) are black
        assert seg.colorize(np.array([[255, 0]], np.int32))[0, 0].tolist() == [0, 0, 0]


def test_torch_runner_from_checkpoint(tmp_path):
    pytest.importorskip("bisenet_deploy.model")
    from bisenet_deploy.checkpoint import load_model, save_checkpoint
    from bisenet_deploy.runtime.torch_runner import default_export_info

    loaded = load_model(None, arch="bisenetv2", num_classes=4)
    path = save_checkpoint(str(tmp_path / "tiny.safetensors"), loaded.model, loaded.metadata)
    # a bare checkpoint implies the default export's graph (the paper's 2048x1024 input)
    runner = TorchRunner(path)
    with runner:
        assert runner.metadata["export"] == default_export_info(runner.metadata["model"])
        assert runner.input_spec().shape == (1, 3, 1024, 2048)
    # with a record (e.g. an ONNX's), the graph is that record's: here a small input
    record = {"schema": 1, "toolkit_version": "test", "model": runner.metadata["model"],
              "export": dict(make_record()["export"], model_size=[64, 64])}
    image = np.random.default_rng(0).uniform(0, 255, (INPUT_H, INPUT_W, 3)).astype(np.uint8)
    with Segmenter(TorchRunner(path, record=record)) as seg:
        labels = seg(image)
    assert labels.shape == (INPUT_H, INPUT_W) and labels.max() < 4


# -- with the real export pipeline -------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipeline_onnx(tmp_path_factory):
    pipeline = pytest.importorskip("bisenet_deploy.export.pipeline")
    folder = tmp_path_factory.mktemp("pipeline")
    result = pipeline.export_onnx(pipeline.ExportOptions(
        output_path=str(folder / "bisenetv2.onnx"), input_size=(128, 64), model_size=(128, 64),
        output="both", parity=False, dynamic_batch=(1, 2, 3), num_classes=4, dataset="custom"))
    return result.path, result.record


def test_pipeline_export_onnxruntime_and_torch_agree(pipeline_onnx):
    """The real BiSeNet V2 graph: onnxruntime on the ONNX and PyTorch on the same record and
    (seeded) weights give the same labels, at batch 1 and 2."""
    path, record = pipeline_onnx
    rng = np.random.default_rng(0)
    with open_runner("onnxruntime", onnx=path, threads=1) as ort, \
            open_runner("torch", onnx=path) as tr:
        assert ort.metadata == record
        assert ort.input_spec().shape == tr.input_spec().shape == (-1, 3, 64, 128)
        for n in (1, 2):
            batch = rng.uniform(0, 255, (n, 3, 64, 128)).astype(np.float32)
            a, b = ort.infer(batch), tr.infer(batch)
            assert a["labels"].dtype == b["labels"].dtype == np.int32
            assert np.mean(a["labels"] == b["labels"]) > 0.999
            np.testing.assert_allclose(a["logits"], b["logits"], rtol=1e-3, atol=1e-3)
        with pytest.raises(InputError, match="must have shape Nx3x64x128"):
            ort.infer(np.zeros((1, 3, 64, 64), np.float32))


def test_pipeline_export_segmenter(pipeline_onnx):
    from bisenet_deploy.synthetic import synthetic_image

    with Segmenter.from_file(pipeline_onnx[0], threads=1) as seg:
        labels = seg(synthetic_image(200, 100, seed=3))
        assert labels.shape == (100, 200) and labels.dtype == np.int32
        assert labels.min() >= 0 and labels.max() < 4
        assert seg.colorize(labels).shape == (100, 200, 3)


def test_shared_image_helpers(tmp_path):
    """One reader / label helper serves the Segmenter, bench, compare, eval and predict."""
    from PIL import Image

    from bisenet_deploy.runtime import colorize, read_image
    from bisenet_deploy.runtime.images import labels_from_outputs

    rgb = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "grey.png")
    assert np.array_equal(read_image(str(tmp_path / "a.png")), rgb)
    assert read_image(str(tmp_path / "grey.png")).shape == (4, 6, 3)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    for path, words, error in ((tmp_path / "nope.png", "does not exist", InputError),
                               (tmp_path, "is a folder", InputError),
                               (tmp_path / "bad.png", "cannot read image", UnusableFileError)):
        with pytest.raises(error, match=words):
            read_image(str(path))
    logits = np.zeros((1, 3, 2, 2), np.float32)
    logits[0, 2] = 1.0
    logits[0, 1, 0, 0] = np.nan  # NaN never wins the argmax
    assert labels_from_outputs({"logits": logits}).tolist() == [[[2, 2], [2, 2]]]
    assert labels_from_outputs({"labels": np.ones((1, 2, 2), np.int64)}).dtype == np.int32
    with pytest.raises(InputError, match="neither"):
        labels_from_outputs({"other": logits})
    picture = colorize(np.array([[0, 1], [-1, 7]]), [(10, 20, 30), (40, 50, 60)])
    assert picture.tolist() == [[[10, 20, 30], [40, 50, 60]], [[0, 0, 0], [0, 0, 0]]]


def test_without_a_gpu_the_hints_name_the_gpu_not_packages(monkeypatch):
    """On a machine with no NVIDIA GPU, installing pycuda, `.[trt]` or onnxruntime-gpu would not
    help: the line says there is no GPU. With a GPU, it says what to install."""
    import sys

    from bisenet_deploy.portable.trt import cuda_context, gpu_info
    from bisenet_deploy.portable.shared import install_hints
    from bisenet_deploy.runtime import factory

    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    monkeypatch.setattr(install_hints, "gpu_absent", lambda: True)
    monkeypatch.setattr(factory, "gpu_absent", lambda: True)
    monkeypatch.setattr(gpu_info, "gpu_absent", lambda: True)
    monkeypatch.setattr(gpu_info, "_query_nvidia_smi", lambda index: None)
    monkeypatch.setattr(gpu_info, "is_jetson", lambda: False)
    monkeypatch.setattr(factory, "_has_module", lambda name: name != "pycuda")
    monkeypatch.setattr("bisenet_deploy.ort_runner.available_providers", lambda: ["cpu"])
    problems = [factory.backend_problem("tensorrt"), factory.backend_problem("onnxruntime-cuda")]
    with pytest.raises(MissingDependencyError) as pycuda_missing:
        cuda_context.import_pycuda_driver()
    with pytest.raises(MissingDependencyError) as no_gpu:
        gpu_info.query_gpu()
    for line in problems + [str(pycuda_missing.value), str(no_gpu.value)]:
        assert "no NVIDIA driver is loaded" in line, line
        assert "[trt]" not in line and "[gpu]" not in line and "pip install" not in line, line

    monkeypatch.setattr(install_hints, "gpu_absent", lambda: False)
    monkeypatch.setattr(factory, "gpu_absent", lambda: False)
    assert "pip install -e '.[trt]'" in factory.backend_problem("tensorrt")
    assert "onnxruntime-gpu" in factory.backend_problem("onnxruntime-cuda")


def test_an_onnx_given_as_the_engine_is_named_for_what_it_is(models):
    """`--engine model.onnx` (predict, serve, bench...): one line saying it is an ONNX, not an
    engine, and what to do, before the TensorRT runner calls it a foreign engine (exit 5)."""
    from bisenet_deploy.portable.shared.errors import EngineFileError

    onnx_path = next(iter(models.values()))[0]
    with pytest.raises(EngineFileError, match="is an ONNX model, not a TensorRT engine: build "
                                                "an engine from it with `bisenet-build-engine"):
        open_runner("tensorrt", engine=str(onnx_path), require_metadata=True)
    assert EngineFileError.exit_code == 5
