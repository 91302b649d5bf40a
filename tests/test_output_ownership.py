"""--force and re-runs replace only what bisenet-deploy wrote itself; anything else is refused in
one line (exit 2) and left exactly as it was."""

import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from bisenet_deploy.errors import InputError
from bisenet_deploy.portable import ownership
from bisenet_deploy.portable.ownership import check_replaceable, is_ours


def _one_error_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_jetson_force_refuses_a_source_folder_and_touches_nothing(tmp_path, monkeypatch, capsys):
    # the reproduction: `cd p && bisenet-export jetson -o . --force` replaced p/src/main.py
    from bisenet_deploy.cli.export_main import main

    project = tmp_path / "p"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("print('mine')\n")
    monkeypatch.chdir(project)
    assert main(["jetson", "-o", ".", "--force", "-q"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "refusing to replace" in line and "manifest.json" in line
    assert sorted(os.listdir(project)) == ["src"]
    assert (project / "src" / "main.py").read_text() == "print('mine')\n"
    assert sorted(os.listdir(tmp_path)) == ["p"]  # no staging folder, no tarball


def test_folder_kind_accepts_only_a_manifest_of_ours_listing_every_file(tmp_path):
    bundle = tmp_path / "b"
    bundle.mkdir()
    assert is_ours(bundle, "folder")  # empty: nothing to lose
    (bundle / "model.onnx").write_bytes(b"x")
    assert not is_ours(bundle, "folder")
    manifest = {"format": "bisenet-deploy-jetson-bundle", "files": {"model.onnx": {}}}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert is_ours(bundle, "folder")
    (bundle / "notes.txt").write_text("added by the user")
    assert "notes.txt" in ownership.why_not_ours(str(bundle), "folder")
    (bundle / "notes.txt").unlink()
    (bundle / "manifest.json").write_text(json.dumps(dict(manifest, format="someone-else")))
    assert not is_ours(bundle, "folder")
    with pytest.raises(InputError, match="already exists: pass --force"):
        check_replaceable(bundle, "folder", force=False)


def test_the_jetson_bundle_format_is_one_the_check_knows():
    from bisenet_deploy.jetson.bundle import BUNDLE_FORMAT

    assert BUNDLE_FORMAT in ownership.FOLDER_FORMATS


def test_tarball_kind(tmp_path):
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"format": "bisenet-deploy-jetson-bundle"}))
    ours = tmp_path / "b.tar.gz"
    with tarfile.open(ours, "w:gz") as tar:
        tar.add(folder, arcname="b")
    assert is_ours(ours, "tarball")
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        tar.add(tmp_path / "b" / "manifest.json", arcname="x/readme.txt")
    assert not is_ours(other, "tarball")
    (tmp_path / "junk.tar.gz").write_bytes(b"not gzip")
    assert not is_ours(tmp_path / "junk.tar.gz", "tarball")


def test_file_kinds_recognise_our_marks_only(tmp_path, tiny_export):
    from bisenet_deploy.evaluation.colorize import write_png

    _, ckpt, onnx_path = tiny_export("labels")
    assert is_ours(onnx_path, "onnx") and is_ours(ckpt, "safetensors")
    assert not is_ours(ckpt, "onnx") and not is_ours(onnx_path, "safetensors")
    ours_png = tmp_path / "ours.png"
    write_png(str(ours_png), np.zeros((4, 4, 3), np.uint8))
    assert is_ours(ours_png, "png")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "theirs.png")
    assert not is_ours(tmp_path / "theirs.png", "png")
    (tmp_path / "r.json").write_text(json.dumps({"toolkit_version": "0.1", "results": []}))
    (tmp_path / "theirs.json").write_text(json.dumps({"results": []}))
    assert is_ours(tmp_path / "r.json", "json") and not is_ours(tmp_path / "theirs.json", "json")
    (tmp_path / "v.mp4").write_bytes(b"\0\0\0\x10ftypisom\0\0\0\0" + ownership.video_mark())
    (tmp_path / "theirs.mp4").write_bytes(b"\0\0\0\x10ftypisom\0\0\0\0")
    assert is_ours(tmp_path / "v.mp4", "video") and not is_ours(tmp_path / "theirs.mp4", "video")
    # an engine is ours with our sidecar beside it, which is replaced with it
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    assert not is_ours(engine, "engine")
    (tmp_path / "m.json").write_text(json.dumps({"kind": "bisenet_deploy.engine"}))
    assert is_ours(engine, "engine")
    engine.unlink()
    (tmp_path / "m.json").write_text("{}")  # a foreign m.json where the sidecar would go
    with pytest.raises(InputError, match="refusing to replace"):
        check_replaceable(engine, "engine")


def test_export_checkpoint_force_replaces_only_its_own_file(tmp_path, tiny_export, capsys):
    from bisenet_deploy.cli.export_main import main

    _, ckpt, _ = tiny_export("labels")
    out = tmp_path / "x.safetensors"
    out.write_bytes(b"my notes")
    assert main(["checkpoint", "--checkpoint", ckpt, "-o", str(out), "--force", "-q"]) == 2
    assert "refusing to replace" in _one_error_line(capsys.readouterr().err)
    assert out.read_bytes() == b"my notes"


def test_export_checkpoint_checks_the_output_before_reading_the_checkpoint(tmp_path, monkeypatch,
                                                                          capsys):
    import bisenet_deploy.checkpoint as checkpoint
    from bisenet_deploy.cli.export_main import main

    def no_load(*args, **kwargs):
        raise AssertionError("the checkpoint was read before the output was checked")

    monkeypatch.setattr(checkpoint, "load_model", no_load)
    ckpt = tmp_path / "big.pth"
    ckpt.write_bytes(b"\0" * 64)
    out = tmp_path / "x.safetensors"
    out.write_bytes(b"exists")
    assert main(["checkpoint", "--checkpoint", str(ckpt), "-o", str(out), "-q"]) == 2
    assert "--force" in capsys.readouterr().err
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["checkpoint", "--checkpoint", str(ckpt), "-o", str(blocker / "x.safetensors"),
                 "-q"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_export_onnx_refuses_to_overwrite_a_foreign_file(tmp_path, capsys):
    from bisenet_deploy.cli.export_main import main

    out = tmp_path / "model.onnx"
    out.write_text("a file of mine with the same name")
    assert main(["onnx", "-o", str(out), "--input-size", "128x64", "--model-size", "64x32",
                 "--skip-parity", "-q"]) == 2
    assert "refusing to replace" in _one_error_line(capsys.readouterr().err)
    assert out.read_text() == "a file of mine with the same name"


def test_predict_replaces_its_own_pictures_but_not_a_users(tmp_path, tiny_export, capsys):
    from bisenet_deploy.cli.predict_main import main
    from bisenet_deploy.synthetic import synthetic_image

    _, _, onnx_path = tiny_export("labels")
    image = tmp_path / "street.png"
    Image.fromarray(synthetic_image(128, 64, seed=0)).save(image)
    out = tmp_path / "out"
    report = tmp_path / "p.json"
    argv = ["--onnx", onnx_path, str(image), "-o", str(out), "--json", str(report), "-q"]
    assert main(argv) == 0
    assert main(argv) == 0  # a second run replaces the first run's pictures and report
    capsys.readouterr()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(out / "street_overlay.png")
    before = (out / "street_overlay.png").read_bytes()
    labels_before = (out / "street_labels.png").stat().st_mtime_ns
    assert main(argv) == 2
    assert "street_overlay.png" in _one_error_line(capsys.readouterr().err)
    assert (out / "street_overlay.png").read_bytes() == before
    assert (out / "street_labels.png").stat().st_mtime_ns == labels_before  # refused up front
    report.write_text("{}")
    os.remove(out / "street_overlay.png")
    assert main(argv) == 2 and "--json" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["bench", "compare", "eval"])
def test_reports_never_replace_a_users_file(command, tmp_path, tiny_export, capsys):
    from bisenet_deploy.cli import bench_main, compare_main, eval_main

    _, _, onnx_path = tiny_export("labels")
    mine = tmp_path / "results.json"
    mine.write_text('{"my": "data"}')
    argv = {
        "bench": (bench_main, ["--onnx", onnx_path, "--iters", "1", "--json", str(mine)]),
        "compare": (compare_main, ["--against", f"onnxruntime:{onnx_path}", "--synthetic", "1",
                                   "--json", str(mine)]),
        "eval": (eval_main, ["--backend", f"onnxruntime:{onnx_path}", "--data", str(tmp_path),
                             "--json", str(mine)]),
    }
    main, args = argv[command]
    assert main.main(args + ["-q"]) == 2
    assert "refusing to replace" in _one_error_line(capsys.readouterr().err)
    assert mine.read_text() == '{"my": "data"}'
