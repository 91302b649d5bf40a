"""A full disk is one line and exit 1 in every command that writes, and nothing half-written is
left: the same mechanism (portable.files.fileio) serves them all."""

import errno
import os

import pytest
from PIL import Image

from bisenet_deploy.errors import OutputWriteError
from bisenet_deploy.portable.files.fileio import atomic_output, write_json_atomic
from bisenet_deploy.synthetic import synthetic_image
from support.disk_full import disk_full, files_under  # noqa: F401 - a fixture

FULL = os.strerror(errno.ENOSPC)


def _one_line_exit_1(code, capsys, where):
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert errors == [err.splitlines()[-1]] and FULL in errors[0], err  # one line, the last
    assert str(where) in errors[0], err


def test_atomic_output_turns_a_refused_write_into_one_line_and_leaves_nothing(tmp_path, disk_full):
    out = tmp_path / "new" / "r.json"
    disk_full(tmp_path)
    with pytest.raises(OutputWriteError, match=FULL) as info:
        write_json_atomic(str(out), {"a": 1})
    assert info.value.exit_code == 1 and str(out) in str(info.value)
    assert files_under(tmp_path) == []  # neither the temporary file nor the folder it made
    with pytest.raises(ValueError):  # any other error passes through unchanged
        with atomic_output(str(tmp_path / "x")):
            raise ValueError("a bug")


def test_export_checkpoint_on_a_full_disk(tmp_path, tiny_export, disk_full, capsys):
    from bisenet_deploy.cli.export_main import main

    _, ckpt, _ = tiny_export("labels")
    out = tmp_path / "out"
    out.mkdir()
    disk_full(out)
    capsys.readouterr()  # what the fixtures printed
    code = main(["checkpoint", "--checkpoint", ckpt, "-o", str(out / "m.safetensors"), "-q"])
    _one_line_exit_1(code, capsys, out / "m.safetensors")
    assert files_under(out) == []


def test_jetson_bundle_on_a_full_disk(tmp_path, tiny_export, disk_full, capsys):
    from bisenet_deploy.cli.export_main import main
    from bisenet_deploy.export.pipeline import ExportOptions, export_onnx

    onnx_path = str(tmp_path / "trt82.onnx")  # the bundle's target: TensorRT 8.2
    export_onnx(ExportOptions(checkpoint=tiny_export("labels")[1], output_path=onnx_path,
                              input_size=(128, 64), model_size=(64, 32), target="trt8.2",
                              parity=False, simplify=False))
    out = tmp_path / "out"
    out.mkdir()
    disk_full(out)
    capsys.readouterr()  # what the fixtures printed
    code = main(["jetson", "--onnx", onnx_path, "-o", str(out / "bundle"), "--fp32", "-q"])
    _one_line_exit_1(code, capsys, out / "bundle")
    assert files_under(out) == []


def test_triton_repository_on_a_full_disk(tmp_path, tiny_dynamic_export, disk_full, capsys):
    from bisenet_deploy.cli.export_main import main

    out = tmp_path / "out"
    out.mkdir()
    disk_full(out)
    capsys.readouterr()  # what the fixtures printed
    code = main(["triton", "--onnx", tiny_dynamic_export, "-o", str(out / "repo"), "-q"])
    _one_line_exit_1(code, capsys, out / "repo")
    assert files_under(out) == []


def test_predict_on_a_full_disk(tmp_path, tiny_export, disk_full, capsys):
    from bisenet_deploy.cli.predict_main import main

    _, _, onnx_path = tiny_export("labels")
    image = tmp_path / "street.png"
    Image.fromarray(synthetic_image(128, 64, seed=1)).save(str(image))
    out = tmp_path / "out"
    out.mkdir()
    disk_full(out)
    capsys.readouterr()  # what the fixtures printed
    code = main(["--onnx", onnx_path, str(image), "-o", str(out), "--threads", "1", "-q"])
    _one_line_exit_1(code, capsys, out / "street_labels.png")
    assert files_under(out) == []


def test_compare_json_on_a_full_disk(tmp_path, tiny_export, disk_full, capsys):
    from bisenet_deploy.cli.compare_main import main

    _, ckpt, onnx_path = tiny_export("labels")
    out = tmp_path / "out"
    out.mkdir()
    disk_full(out)
    capsys.readouterr()  # what the fixtures printed
    code = main(["--checkpoint", ckpt, "--against", "onnxruntime:" + onnx_path, "--synthetic",
                 "1", "--json", str(out / "c.json"), "--threads", "1", "-q"])
    _one_line_exit_1(code, capsys, out / "c.json")
    assert files_under(out) == []


def test_bench_json_on_a_full_disk(tmp_path, tiny_export, disk_full, capsys):
    from bisenet_deploy.cli.bench_main import main

    _, _, onnx_path = tiny_export("labels")
    out = tmp_path / "out"
    out.mkdir()
    disk_full(out)
    capsys.readouterr()  # what the fixtures printed
    code = main(["--onnx", onnx_path, "--backend", "onnxruntime", "--iters", "2", "--warmup",
                 "1", "--threads", "1", "--json", str(out / "b.json"), "-q", "--no-progress"])
    _one_line_exit_1(code, capsys, out / "b.json")
    assert files_under(out) == []
