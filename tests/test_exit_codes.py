"""The README's "Exit codes" table, walked: for every code, one command per kind of failure it
stands for, run as a user would, gives that code and one `error:` line that points the right way.

One kind of problem, one code, in every command: a precision refused is usage (2) whether the
TensorRT is RTX or not and whether the build is ours or `--trtexec`; no GPU is 4; a file of the
wrong kind is 5 and is named as what it is."""

import os
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from bisenet_deploy.errors import EXIT_CODES
from bisenet_deploy.synthetic import synthetic_image
from support.bench_fakes import FakeRunner, SimulatedCtrlC, SimulatedSigterm
from support.disk_full import disk_full  # noqa: F401 - a fixture
from support.onnx_graphs import preprocessing_graph, save
from support.records import bench_record, engine_record

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme_codes():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    table = text.split("### Exit codes", 1)[1].split("###", 1)[0]
    codes = set()
    for cell in re.findall(r"^\| ([0-9][0-9 /]*) \|", table, re.M):
        codes.update(int(c) for c in cell.split("/"))
    return codes


@pytest.fixture(scope="module")
def files(tiny_export, tmp_path_factory):
    """The inputs of the walk: the tiny model, pictures, and hostile files."""
    d = tmp_path_factory.mktemp("walk")
    folder, ckpt, onnx_path = tiny_export("labels")
    Image.fromarray(synthetic_image(128, 64, seed=1)).save(str(d / "street.png"))
    images = d / "images"
    images.mkdir()
    Image.fromarray(synthetic_image(128, 64, seed=2)).save(str(images / "a.png"))
    (images / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    (d / "corrupt.onnx").write_bytes(b"\x08\x07 not a model")
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    (d / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(data)) + kind + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
        for kind, data in ((b"IHDR", ihdr), (b"IDAT", zlib.compress(b"\0" * 64)),
                           (b"IEND", b""))))
    (d / "rtx.engine").write_bytes(b"vtrt" + os.urandom(64))  # a TensorRT-RTX plan's magic
    (d / "user.png").write_bytes(b"a user's own picture")
    from test_compare import _perturb

    _, ckpt_both, onnx_both = tiny_export("both")  # logits too: compared within tolerances
    _perturb(onnx_both, str(d / "perturbed.onnx"), 3.0)
    rec = engine_record(batch={"dynamic": True, "min": 1, "opt": 2, "max": 4}, target="trt8.2",
                        precision="fp16")
    jetson_onnx = save(preprocessing_graph(rec), d / "trt82.onnx")
    paths = {name: str(d / name) for name in os.listdir(str(d))}
    paths.update(dir=str(d), images=str(images), ckpt=ckpt, onnx=onnx_path, ckpt_both=ckpt_both,
                 trt82=str(jetson_onnx))
    return paths


def _run(capsys, command, argv):
    from bisenet_deploy.cli import (bench_main, build_engine_main, compare_main, export_main,
                                    predict_main)

    main = {"predict": predict_main.main, "compare": compare_main.main,
            "bench": bench_main.main, "export": export_main.main,
            "build-engine": build_engine_main.main}[command]
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _check(capsys, command, argv, code, says, tmp_path=None):
    got, err = _run(capsys, command, argv)
    assert got == code, err
    if code == 0:
        return err
    errors = [line for line in err.splitlines() if line.startswith("error:")
              or line.startswith("internal error:") or "terminated" in line
              or "interrupted" in line or "cannot run here" in line]  # bench: per backend
    assert errors, err
    assert re.search(says, errors[-1]), errors[-1]
    assert "Traceback" not in err
    return err


def test_0_success(files, tmp_path, capsys):
    _check(capsys, "predict", ["--onnx", files["onnx"], files["street.png"], "-o", tmp_path, "-q"],
           0, "")


def test_1_a_step_failed(files, tmp_path, capsys, disk_full):
    disk_full(tmp_path)  # the export's write failed: the disk is full
    _check(capsys, "export", ["checkpoint", "--checkpoint", files["ckpt"], "-o",
                              tmp_path / "m.safetensors", "-q"], 1, "No space left on device")


@pytest.mark.parametrize("kind", [
    "wrong-value", "missing-path", "folder-for-a-file", "user-file-in-the-way",
    "precision-refused-trtexec", "memory-too-large"])
def test_2_usage(files, tmp_path, capsys, kind):
    out = tmp_path / "out"
    cases = {
        "wrong-value": ("predict", ["--onnx", files["onnx"], files["street.png"], "-o", out,
                                    "--alpha", "2"], r"--alpha must be between 0 and 1"),
        "missing-path": ("predict", ["--onnx", files["onnx"], tmp_path / "nope.png", "-o", out],
                         r"does not exist"),
        "folder-for-a-file": ("export", ["jetson", "--onnx", files["dir"], "-o", out],
                              r"is a folder, not an ONNX file"),
        "precision-refused-trtexec": (
            "build-engine", [files["trt82"], "--trtexec", "--trt-version", "8.2.1", "--int8",
                             "--compute-capability", "6.2", "--gpu-name", "NVIDIA Tegra X2"],
            r"INT8 refused.*no fast INT8"),
        "memory-too-large": ("bench", ["--onnx", files["onnx"], "--backend", "onnxruntime",
                                       "--iters", "1000000000000", "--no-json"],
                             r"--iters 1000000000000 .*more than this machine can give"),
    }
    if kind == "user-file-in-the-way":
        out.mkdir()
        (out / "street_labels.png").write_bytes(b"mine")
        cases[kind] = ("predict", ["--onnx", files["onnx"], files["street.png"], "-o", out],
                       r"refusing to replace")
    command, argv, says = cases[kind]
    _check(capsys, command, argv, 2, says)


def test_2_int8_and_fp16_refused_by_tensorrt_rtx_alike(files, tmp_path, capsys):
    """Both precisions this TensorRT-RTX cannot build from this ONNX are usage errors (2)."""
    pytest.importorskip("tensorrt_rtx_bindings", reason="needs the TensorRT-RTX wheels")
    calib = tmp_path / "calib"
    calib.mkdir()
    for flags, says in ((["--int8", "--calib-images", calib], "no INT8 calibration"),
                        (["--fp16"], "has no FP16 flag")):
        _check(capsys, "build-engine", [files["onnx"], "--trt-flavour", "tensorrt-rtx", "-o",
                                        tmp_path / "e.engine"] + flags, 2, says)
    assert not (tmp_path / "e.engine").exists()


def test_3_check_failed(files, tmp_path, capsys):
    _check(capsys, "compare", ["--checkpoint", files["ckpt_both"], "--against",
                               "onnxruntime:" + files["perturbed.onnx"], "--synthetic", "2",
                               "--threads", "1", "-q"], 3, r"beyond tolerance")


@pytest.mark.parametrize("kind", ["no-backend-could-run", "gpu-unsupported-by-this-tensorrt",
                                  "inspect-without-gpu"])
def test_4_not_available_here(files, tmp_path, capsys, kind):
    from bisenet_deploy.portable.shared.install_hints import gpu_absent

    if kind == "no-backend-could-run":
        if not gpu_absent():
            pytest.skip("this machine has a GPU: the tensorrt backend may run")
        _check(capsys, "bench", ["--engine", files["rtx.engine"], "--backend", "tensorrt",
                                 "--iters", "2", "--no-json"], 4, r"")
    elif kind == "gpu-unsupported-by-this-tensorrt":
        _check(capsys, "build-engine", [files["trt82"], "--trtexec", "--trt-version", "10.3",
                                        "--compute-capability", "6.1", "--gpu-name",
                                        "NVIDIA GeForce GTX 1080 Ti"], 4, r"TensorRT 8\.6")
    else:
        if not gpu_absent():
            pytest.skip("this machine has a GPU")
        _check(capsys, "build-engine", ["--inspect", files["rtx.engine"]], 4, r"GPU")


@pytest.mark.parametrize("kind", ["corrupt-onnx", "onnx-as-engine-inspect",
                                  "onnx-as-engine-triton", "onnx-for-another-target",
                                  "decompression-bomb"])
def test_5_unusable_file(files, tmp_path, capsys, kind):
    out = tmp_path / "out"
    command, argv, says = {
        "corrupt-onnx": ("predict", ["--onnx", files["corrupt.onnx"], files["street.png"], "-o",
                                     out], r"not a readable ONNX model.*another kind of file"),
        "onnx-as-engine-inspect": ("build-engine", ["--inspect", files["onnx"]],
                                   r"is an ONNX model, not a TensorRT engine"),
        "onnx-as-engine-triton": ("export", ["triton", "--engine", files["onnx"], "-o", out],
                                  r"is an ONNX model, not a TensorRT engine"),
        "onnx-for-another-target": ("export", ["jetson", "--onnx", files["onnx"], "-o", out],
                                    r"exported for target 'trt10'.*--target trt8\.2"),
        "decompression-bomb": ("predict", ["--onnx", files["onnx"], files["bomb.png"], "-o",
                                           out], r"decompression bomb"),
    }[kind]
    err = _check(capsys, command, argv, 5, says)
    for wrong in ("export it again", "was built with TensorRT", "sidecar", "internal error"):
        assert wrong not in err.splitlines()[-1], err
    assert not out.exists()


def test_6_inputs_skipped(files, tmp_path, capsys):
    _check(capsys, "predict", ["--onnx", files["onnx"], files["images"], "-o", tmp_path, "-q"],
           6, r"1 of 2 input\(s\) could not be read.*b\.png")


def test_70_internal_error(files, tmp_path, capsys, monkeypatch):
    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("bisenet_deploy.evaluation.predict.predict_image", bug)
    _check(capsys, "predict", ["--onnx", files["onnx"], files["street.png"], "-o", tmp_path],
           70, r"internal error: ZeroDivisionError.*--debug")


@pytest.mark.parametrize("interrupt, code, says", [(SimulatedCtrlC, 130, r"Ctrl-C"),
                                                  (SimulatedSigterm, 143, r"SIGTERM")])
def test_130_143_interrupted(files, capsys, monkeypatch, interrupt, code, says):
    from bisenet_deploy.cli import bench_main

    runner = FakeRunner(bench_record(), [1.0], name="onnxruntime", interrupt_at=0,
                        interrupt=interrupt)
    monkeypatch.setattr(bench_main, "_open_runner", lambda backend, **kwargs: runner)
    monkeypatch.setattr(bench_main, "_backend_problem", lambda backend: None)
    _check(capsys, "bench", ["--onnx", files["onnx"], "--backend", "onnxruntime", "--iters",
                             "5", "--no-json", "--no-progress"], code, says)


def test_the_walk_covers_every_code_of_the_readme_table():
    """Every code of the README's table (and of errors.EXIT_CODES) has its test above, named
    test_<code>_..., each of which runs commands that must exit with that code."""
    table = {code for code, _ in EXIT_CODES} | {143}
    assert _readme_codes() == table
    walked = set()
    for name in globals():
        match = re.match(r"test_((?:\d+_)+)", name)
        if match:
            walked.update(int(c) for c in match.group(1).split("_") if c)
    assert walked == table, "exit codes without a test: %s" % sorted(table - walked)


def test_5_an_onnx_the_system_cannot_read_is_not_told_to_export_again(files, monkeypatch):
    """A permission or I/O problem says what the system said, not "export it again"."""
    import onnx

    from bisenet_deploy.errors import UnusableFileError
    from bisenet_deploy.export.onnx_metadata import load_onnx

    def refused(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(onnx, "load", refused)
    with pytest.raises(UnusableFileError) as info:
        load_onnx(files["onnx"])
    assert str(info.value) == ("cannot read the ONNX file %s: Permission denied; check that it "
                               "is there and readable" % files["onnx"])
