"""Shared fixtures and the skip rules for tests that need TensorRT or a GPU."""

import importlib.util
import os
import re

import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

#: the fake GPU, the tiny model's exports and the runner fixtures (tests/support/)
pytest_plugins = ["support.fixtures", "support.runners"]


def _has(module):
    """True when `module` is really installed: a bare folder of type stubs (the namespace package
    that tensorrt-stubs leaves) does not count."""
    spec = importlib.util.find_spec(module)
    return spec is not None and spec.origin not in (None, "namespace")


def _has_cuda():
    return torch.cuda.is_available()


def _has_tensorrt():
    """Full TensorRT or TensorRT-RTX: engines of either run only on an NVIDIA GPU."""
    return any(_has(m) for m in ("tensorrt", "tensorrt_rtx", "tensorrt_rtx_bindings"))


def pytest_configure(config):
    """CI runs the real TensorRT-RTX tests: there (BISENET_REQUIRE_RTX=1) a missing TensorRT-RTX
    is an error, not a reason to skip them."""
    if os.environ.get("BISENET_REQUIRE_RTX") == "1" and not _has("tensorrt_rtx_bindings"):
        raise pytest.UsageError("BISENET_REQUIRE_RTX=1 but TensorRT-RTX is not installed: "
                                "pip install -e '.[rtx]' (scripts/setup_env.sh does)")


#: the inner loop (`pytest -m "not slow"`) skips these as well as the tests marked `slow` where they
#: are written: the heaviest tests of the suite (node ids from the rootdir; `*` is the only
#: wildcard). Each entry must still name a collected test (tests/test_suite_selection.py).
HEAVY = (
    # ~110 exports through the real parser (TorchScript every combination, torch.export pairwise)
    "tests/test_export_tensorrt_parser.py::test_every_export_parses[*",
    "tests/test_export_tensorrt_parser.py::test_default_exporter_graphs_parse[*",
    # torch.export-based exports: the torchscript twins of the same checks stay in the inner loop
    "tests/test_export.py::*dynamo*",
    "tests/test_export.py::test_checkpoint_for_another_class_count_exports",
    "tests/test_export.py::test_coincheung_style_pth_with_aux_heads_exports_without_them",
    "tests/test_export.py::test_trt11_fp16_with_uint8_input_labels_only_and_dynamic_batch",
    "tests/test_export_exporters.py::*[dynamo]",
    "tests/test_export_exporters.py::test_default_export_uses_torch_export_and_records_it",
    "tests/test_export_exporters.py::test_cli_dynamo_trt82_is_an_opset13_graph_that_passes_the_rules",
    "tests/test_export_deploy.py::test_equal_sizes_export_has_no_resize_on_the_input",
    "tests/test_runtime.py::test_pipeline_export_onnxruntime_and_torch_agree",
    "tests/test_engine_calibration.py::test_exported_graphs_see_the_same_from_calibration_batches",
    "tests/test_summary_cli.py::test_console_stdout_is_pure_json",
    "tests/test_model_forward.py::*[bisenetv2-large]",
    "tests/test_model_forward.py::test_eval_does_not_run_aux_heads",
    # the Jetson bundle: a real export, parity and the sample labels per module
    "tests/test_jetson_bundle.py::*",
    # the reference checks against mmsegmentation itself (where it is installed: a heavy import)
    "tests/test_mmseg_reference.py::*",
    # the serving fault tests: each starts, freezes or kills a real Triton server (the inner loop's
    # server start is INNER_LOOP's)
    "tests/test_serve_faults.py::*",
    # scripts/train_synthetic.py for two iterations: builds, trains and scores the real network
    "tests/test_train_synthetic.py::test_two_iterations_write_a_loadable_trained_checkpoint",
)


def _measured_slow():
    """tests/slow_tests.txt: the tests the inner loop leaves out because they were measured slow
    (scripts/measure_slow_tests.py writes it; `#` starts a comment), one node id per line."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slow_tests.txt")
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    return tuple(line for line in lines if line and not line.startswith("#"))


HEAVY += _measured_slow()
#: what the inner loop always keeps, one real run of each: an export (torch.export, parity, the
#: real TensorRT parser), a TensorRT-RTX engine build, a Triton server start
INNER_LOOP = (
    "tests/test_export_cli.py::test_export_onnx_cli_writes_a_proven_graph_and_prints_a_summary",
    "tests/test_engine_rtx_build.py::test_build_engine_end_to_end[fp32-labels-fp32]",
    "tests/test_serve_load.py::test_served_model_listens_only_where_told",
)


def node_pattern(pattern):
    """A HEAVY entry as a regex: node ids hold brackets, so `*` is the only wildcard."""
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")


_HEAVY = [node_pattern(p) for p in HEAVY]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(p.match(item.nodeid) for p in _HEAVY) and item.nodeid not in INNER_LOOP:
            item.add_marker(pytest.mark.slow)
    skip_trt = pytest.mark.skip(
        reason="needs TensorRT (or TensorRT-RTX) and an NVIDIA GPU to run an engine; this machine "
               "has no GPU (run scripts/gpu_check.sh on a GPU machine)")
    skip_cuda = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA; none on this machine")
    for item in items:
        if "tensorrt" in item.keywords and not (_has_tensorrt() and _has_cuda()):
            item.add_marker(skip_trt)
        if "cuda" in item.keywords and not _has_cuda():
            item.add_marker(skip_cuda)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """Factory: a random-init checkpoint and its ONNX, made once per session and output kind.

    `tiny_export(output)` -> (folder, checkpoint path, onnx path): the paper's protocol at 1/16
    scale (a 128x64 input resized in the graph to a 64x32 network), 19 classes. Tests may add
    files of their own to the folder but must not change the two model files.
    """
    made = {}

    def make(output="labels"):
        if output not in made:
            from bisenet_deploy.checkpoint import load_model, save_checkpoint
            from bisenet_deploy.export.pipeline import ExportOptions, export_onnx

            folder = tmp_path_factory.mktemp("tiny-" + output)
            loaded = load_model(None, num_classes=19)
            ckpt = str(folder / "tiny.safetensors")
            save_checkpoint(ckpt, loaded.model, loaded.metadata)
            onnx_path = str(folder / "tiny.onnx")
            export_onnx(ExportOptions(checkpoint=ckpt, output_path=onnx_path,
                                      input_size=(128, 64), model_size=(64, 32), output=output,
                                      parity=False, simplify=False),
                        loaded=(loaded.model, loaded.metadata))
            made[output] = (folder, ckpt, onnx_path)
        return made[output]

    return make


@pytest.fixture(scope="session")
def tiny_dynamic_export(tmp_path_factory):
    """A random-init ONNX with a dynamic batch 1:4:8 and both outputs (labels, logits) at the
    tiny scale of `tiny_export`, made once per session (serving and repository tests)."""
    from bisenet_deploy.checkpoint import load_model
    from bisenet_deploy.export.pipeline import ExportOptions, export_onnx

    folder = tmp_path_factory.mktemp("tiny-dynamic")
    loaded = load_model(None, num_classes=19)
    path = str(folder / "dyn.onnx")
    export_onnx(ExportOptions(output_path=path, input_size=(128, 64), model_size=(64, 32),
                              output="both", dynamic_batch=(1, 4, 8), parity=False,
                              simplify=False), loaded=(loaded.model, loaded.metadata))
    return path


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A simulated Ctrl-C or SIGTERM (tests/support/bench_fakes) that escapes the code under test
    fails that test; pytest would otherwise take it for the user's Ctrl-C and stop the whole run.
    A real Ctrl-C still stops pytest."""
    try:
        return (yield)
    except KeyboardInterrupt as exc:
        if not getattr(exc, "simulated", False):
            raise
        raise AssertionError("a simulated %s escaped the code under test (it must be caught "
                             "there)" % type(exc).__name__) from exc
