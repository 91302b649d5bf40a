"""Real engines from real exports, without a GPU: TensorRT-RTX builds ahead of time.

`build_engine()` runs end to end with TensorRT-RTX for FP32, FP16 (from the trt11 FP16 export),
a uint8 input, a dynamic batch and labels/logits/both, and each engine's sidecar must describe the
I/O the export's metadata record promises. The refusals (FP16 from an FP32 graph, INT8, a GPU
TensorRT-RTX cannot target, full TensorRT asked for but absent) are one-line errors that leave
nothing behind. The build steps also run one at a time (parse -> configure -> build -> save).
Running these engines needs a GPU: tests/test_engine_rtx_gpu.py.
"""

import logging
import os

import numpy as np
import pytest

trt = pytest.importorskip("tensorrt_rtx_bindings", reason="TensorRT-RTX is not installed: "
                          "pip install -e '.[rtx]' (CI installs it)")

from bisenet_deploy.errors import EngineError, InputError, MissingDependencyError  # noqa: E402
from bisenet_deploy.portable.building.builder import BuildOptions, build_engine  # noqa: E402

SIZES = dict(input_size=(96, 48), model_size=(64, 32))
PORTABLE = ["8.0", "8.6", "8.9", "12.0", "12.1"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """name -> (path, record) of small exports made once, without parity (tested elsewhere)."""
    import torch

    from bisenet_deploy.checkpoint import load_model
    from bisenet_deploy.export.pipeline import ExportOptions, export_onnx

    loaded = load_model(None, arch="bisenetv2-coincheung", dataset="cityscapes", seed=0)
    folder = tmp_path_factory.mktemp("rtx-exports")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    made = {}
    for name, options in (
            ("fp32-labels", dict(target="trt11")),
            ("fp16-both", dict(target="trt11", precision="fp16", output="both")),
            ("uint8-logits-dyn", dict(target="trt10", input_dtype="uint8", output="logits",
                                      dynamic_batch=(1, 2, 4))),
            ("both-dyn", dict(target="trt11", output="both", dynamic_batch=(1, 2, 3))),
            ("trt10-fp16-flag", dict(target="trt10", precision="fp16"))):
        result = export_onnx(ExportOptions(output_path=str(folder / (name + ".onnx")),
                                           parity=False, **dict(SIZES, **options)),
                             loaded=(loaded.model, loaded.metadata))
        made[name] = (result.path, result.record)
    torch.set_num_threads(threads)
    return made


def _io_of_record(record):
    from bisenet_deploy.portable.running.runner_base import specs_from_record

    inp, outs = specs_from_record(record)
    return ([(inp.name, "input", list(inp.shape), np.dtype(inp.dtype).name)]
            + [(o.name, "output", list(o.shape), np.dtype(o.dtype).name) for o in outs])


def _check_engine(result, record, precision, targets=PORTABLE):
    sc = result.sidecar
    with open(result.engine_path, "rb") as f:
        assert f.read(4) == b"vtrt"  # a TensorRT-RTX plan, as TensorRT-RTX wrote it
    assert os.path.getsize(result.engine_path) == sc["engine"]["bytes"] > 1 << 20
    assert sc["flavour"] == "tensorrt-rtx" and sc["tensorrt_version"] == trt.__version__
    assert sc["targets"] == targets and sc["gpu"] is None  # built without a GPU
    assert sc["capabilities"]["strong_typing"] == "always"
    assert sc["precision"] == precision and sc["onnx_metadata"] == record
    assert [(t["name"], t["mode"], t["shape"], t["dtype"]) for t in sc["io"]] == \
        _io_of_record(record)
    batch = record["export"]["batch"]
    if batch["dynamic"]:
        assert sc["profiles"] == [{"input": "image", "min": [batch["min"], 3, 48, 96],
                                   "opt": [batch["opt"], 3, 48, 96],
                                   "max": [batch["max"], 3, 48, 96]}]
    else:
        assert sc["profiles"] == []
    # the precisions TensorRT chose, from its own build log (no GPU needed): the strongly typed
    # build follows the graph, FP16 layers from the FP16 export and none from an FP32 one
    layers = sc["layer_precisions"]
    has_labels = "labels" in record["export"]["output_names"]
    assert layers and (layers.get("int32", 0) >= 1) == has_labels  # the Cast of the labels
    if precision == "fp16":
        assert layers.get("fp16", 0) > 3 * layers.get("fp32", 0)
    else:
        assert layers.get("fp32", 0) > 0 and "fp16" not in layers
    # TensorRT-RTX keeps no timing cache (its timing-cache calls do nothing)
    assert not os.path.exists(os.path.join(os.path.dirname(result.engine_path), "timing.cache"))


@pytest.mark.parametrize("name, precision", [
    ("fp32-labels", "fp32"), ("fp16-both", "fp16"), ("uint8-logits-dyn", "fp32"),
    ("both-dyn", "fp32")])
def test_build_engine_end_to_end(exports, tmp_path, name, precision):
    path, record = exports[name]
    result = build_engine(path, None, BuildOptions(output=str(tmp_path / "e.engine"),
                                                   flavour="tensorrt-rtx"))
    _check_engine(result, record, precision)
    assert [step for step, _ in result.steps][:1] == ["checks"]
    assert result.sidecar["build"]["options"]["strongly_typed"] is True


def test_default_folder_names_flavour_and_target_without_a_gpu(exports, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path, record = exports["fp32-labels"]
    result = build_engine(path, record, BuildOptions(flavour="tensorrt-rtx", precision="fp32"))
    assert result.engine_path == str(tmp_path / "engines" / "rtx1.7.1-portable" /
                                     "fp32-labels-fp32.engine")
    sm75 = build_engine(path, record, BuildOptions(flavour="tensorrt-rtx",
                                                   compute_capabilities=["7.5"]))
    assert os.path.dirname(sm75.engine_path).endswith("rtx1.7.1-sm75")
    _check_engine(sm75, record, "fp32", targets=["7.5"])
    # the Turing engine carries its own kernels: much larger than the portable one
    assert sm75.sidecar["engine"]["bytes"] > result.sidecar["engine"]["bytes"]


def _nothing_written(tmp_path):
    return not (tmp_path / "out").exists()


def test_fp16_from_an_fp32_graph_is_one_line_naming_the_export(exports, tmp_path):
    out = str(tmp_path / "out" / "e.engine")
    for name in ("fp32-labels", "trt10-fp16-flag"):  # asked for, or recorded by the export
        path, record = exports[name]
        with pytest.raises(InputError) as info:
            build_engine(path, record, BuildOptions(output=out, flavour="tensorrt-rtx",
                                                    precision="fp16" if "fp32" in name else None))
        msg = str(info.value)
        assert "TensorRT-RTX 1.7.1 has no FP16 flag" in msg and "\n" not in msg
        assert "`bisenet-export onnx --target trt11 --precision fp16`" in msg
        _check_exact_commands(msg, path, record)
    assert _nothing_written(tmp_path)


def _check_exact_commands(msg, path, record):
    """The refusal spells the export to run (this export's options, trt11, fp16) and the build of
    the file it writes: what the user types next, parsed by the real parsers."""
    import re
    import shlex

    from bisenet_deploy.cli.build_engine_main import build_parser as build_engine_parser
    from bisenet_deploy.cli.export_main import build_parser as export_parser

    export_line, build_line = re.findall(r"`(bisenet-export onnx [^`]*|bisenet-build-engine [^`]*)`",
                                         msg)[-2:]
    words = shlex.split(export_line)
    assert words[:2] == ["bisenet-export", "onnx"]
    args = export_parser().parse_args(words[1:])
    export = record["export"]
    assert (list(args.input_size), list(args.network_size)) == (export["input_size"],
                                                                export["model_size"])
    assert (args.outputs, args.target, args.precision) == (export["output"], "trt11", "fp16")
    assert args.arch == record["model"]["arch"] and args.checkpoint is None  # random-init weights
    assert args.output == os.path.splitext(path)[0] + "-fp16.onnx"
    build = build_engine_parser().parse_args(shlex.split(build_line)[1:])
    assert build.onnx == args.output


def test_int8_and_foreign_targets_refused_with_the_reason(exports, tmp_path):
    path, record = exports["fp32-labels"]
    out = str(tmp_path / "out" / "e.engine")
    with pytest.raises(InputError, match="no INT8 calibration: it builds INT8 only from Q/DQ"):
        build_engine(path, record, BuildOptions(output=out, flavour="tensorrt-rtx",
                                                precision="int8", calib_images=str(tmp_path)))
    for cc, who in (("6.1", "Pascal"), ("9.0", "data-centre")):
        with pytest.raises(InputError, match="cannot build for SM %s.*%s" % (cc, who)):
            build_engine(path, record, BuildOptions(output=out, flavour="tensorrt-rtx",
                                                    compute_capabilities=[cc]))
    assert _nothing_written(tmp_path)


def test_full_tensorrt_asked_for_but_absent(exports, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    path, record = exports["fp32-labels"]
    with pytest.raises(MissingDependencyError, match=r"TensorRT's Python package .*\[trt\]"):
        build_engine(path, record, BuildOptions(output=str(tmp_path / "out" / "e.engine"),
                                                flavour="tensorrt"))
    assert _nothing_written(tmp_path)


def test_the_steps_run_one_at_a_time(exports, tmp_path):
    from bisenet_deploy.portable.building.build_plan import plan_build
    from bisenet_deploy.portable.building.build_steps import (build_serialized, configure_build,
                                                     parse_network, save_engine)
    from bisenet_deploy.portable.trt.trt_logger import tensorrt_logger

    path, record = exports["both-dyn"]
    plan = plan_build(path, None, BuildOptions(output=str(tmp_path / "e.engine"),
                                               compute_capabilities=["8.6", "12.0"]))
    assert plan.caps.flavour == "tensorrt-rtx" and plan.targets == ((8, 6), (12, 0))
    assert plan.profile == ("image", [1, 3, 48, 96], [2, 3, 48, 96], [3, 3, 48, 96])
    parsed = parse_network(plan.trt, plan.caps, plan.onnx_bytes, path, tensorrt_logger(plan.trt))
    assert parsed.ok and [t["name"] for t in parsed.io] == ["image", "labels", "logits"]
    config = configure_build(plan.trt, plan, parsed)
    assert config.num_compute_capabilities == 2
    assert not config.get_flag(plan.trt.BuilderFlag.TF32)  # FP32 means FP32
    assert config.num_optimization_profiles == 1
    blob = build_serialized(parsed, config)
    assert blob[:4] == b"vtrt"
    save_engine(plan.engine_path, blob, {"kind": "test"})
    assert os.path.getsize(plan.engine_path) == len(blob)
    assert os.path.isfile(str(tmp_path / "e.json"))


def test_one_logger_per_process_so_verbose_works_on_a_second_build(exports, tmp_path, caplog):
    from bisenet_deploy.portable.trt import trt_logger
    from bisenet_deploy.portable.trt.trt_logger import tensorrt_logger

    path, record = exports["fp32-labels"]
    first = tensorrt_logger(trt)
    with caplog.at_level(logging.DEBUG, logger=trt_logger.__name__):
        build_engine(path, record, BuildOptions(output=str(tmp_path / "a.engine")))
        quiet = [r.getMessage() for r in caplog.records if r.getMessage().startswith("TensorRT:")]
        caplog.clear()
        build_engine(path, record, BuildOptions(output=str(tmp_path / "b.engine"), verbose=True))
        loud = [r.getMessage() for r in caplog.records if r.getMessage().startswith("TensorRT:")]
    assert tensorrt_logger(trt) is first
    assert len(loud) > 100 > len(quiet)  # the verbose build log of the SECOND build is there
    assert any("Layers:" in m for m in loud)  # with detailed verbosity: the layer list
    assert not any("differs from one already registered" in m for m in quiet + loud)


def test_cli_builds_and_refuses_in_one_line(exports, tmp_path, capsys):
    from bisenet_deploy.cli.build_engine_main import main

    path, _ = exports["fp16-both"]
    engine = tmp_path / "e.engine"
    assert main([path, "--trt-flavour", "tensorrt-rtx", "--fp16", "-o", str(engine)]) == 0
    out = capsys.readouterr().out
    assert "built:    FP16 engine for SM 8.0, 8.6, 8.9, 12.0, 12.1, TensorRT-RTX" in out
    assert "no GPU here: built ahead of time" in out and engine.is_file()
    assert "layers:   " in out and " fp16, " in out and "(from TensorRT's build log)" in out
    assert (tmp_path / "e.json").is_file()
    path32, _ = exports["fp32-labels"]
    assert main([path32, "--trt-flavour", "tensorrt-rtx", "--fp16", "-o",
                 str(tmp_path / "x.engine")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--target trt11 --precision fp16" in errors[0]
    assert "Traceback" not in err
    assert main([path32, "--trt-flavour", "tensorrt-rtx", "--trtexec"]) == 2
    assert main(["--inspect", str(engine)]) == 4  # no GPU here: not available (README table)
    err = capsys.readouterr().err
    assert "needs an NVIDIA GPU" in err and "layer precisions TensorRT chose" in err
    assert " fp16, " in err  # e.g. "76 fp16, 16 without data, 1 int32"
    assert not (tmp_path / "x.engine").exists()


def test_runner_refuses_without_gpu_and_full_tensorrt_refuses_rtx_engines(exports, tmp_path,
                                                                           monkeypatch):
    import sys
    import types

    from bisenet_deploy.portable.running.trt_runner import TensorRTRunner

    path, record = exports["fp32-labels"]
    result = build_engine(path, record, BuildOptions(output=str(tmp_path / "e.engine")))
    runner = TensorRTRunner(result.engine_path)
    assert runner.metadata == record and runner.describe().startswith("tensorrt-rtx")
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(MissingDependencyError, match="pycuda"):
        runner.activate()
    # a machine with full TensorRT only: the sidecar says TensorRT-RTX, refused in one line
    full = types.SimpleNamespace(__name__="tensorrt", __version__="10.13.0", Builder=object)
    monkeypatch.setitem(sys.modules, "tensorrt", full)
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)
    monkeypatch.setitem(sys.modules, "tensorrt_rtx_bindings", None)
    with pytest.raises(MissingDependencyError) as info:
        TensorRTRunner(result.engine_path).activate()
    msg = str(info.value)
    assert "built with TensorRT-RTX 1.7.1.116" in msg and "TensorRT installed here cannot" in msg
    assert "pip install -e '.[rtx]'" in msg and "\n" not in msg


def test_triton_refuses_a_tensorrt_rtx_engine(exports, tmp_path):
    # Triton's tensorrt_plan backend is full TensorRT: an RTX engine is refused from its sidecar
    from bisenet_deploy.errors import IncompatibleEngineError
    from bisenet_deploy.serve.repository import RepositoryOptions, engine_model

    path, record = exports["fp32-labels"]
    result = build_engine(path, record, BuildOptions(output=str(tmp_path / "e.engine")))
    with pytest.raises(IncompatibleEngineError, match="TensorRT-RTX engine.*--trt-flavour tensorrt"):
        engine_model(result.engine_path, "m", RepositoryOptions(output_dir=str(tmp_path / "r")))

