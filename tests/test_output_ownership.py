"""--force and re-runs replace only what bisenet-deploy wrote itself; anything else is refused in
one line (exit 2) and left exactly as it was."""

import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from bisenet_deploy.errors import InputError
from bisenet_deploy.portable.files import ownership
from bisenet_deploy.portable.files.ownership import check_replaceable, is_ours


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


def our_folder(root, fmt="bisenet-deploy-jetson-bundle"):
    """A folder as our writers leave it: files, then a manifest listing each with its sha256."""
    from bisenet_deploy.portable.files.bundle_manifest import hash_tree

    (root / "bisenet_trt").mkdir(parents=True)
    (root / "bisenet_trt" / "errors.py").write_text("x = 1\n")
    (root / "model").mkdir()
    (root / "model" / "m.onnx").write_bytes(b"onnx bytes")
    (root / "README.md").write_text("readme\n")
    manifest = {"format": fmt, "files": hash_tree(str(root))}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def snapshot(root):
    """Every entry under root with what it holds (links by target), to prove nothing moved."""
    out = {}
    for folder, dirs, names in os.walk(str(root)):
        for name in dirs + names:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, str(root))
            if os.path.islink(path):
                out[rel] = "-> " + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    out[rel] = f.read()
            else:
                out[rel] = "dir" if os.path.isdir(path) else "other"
    return out


def test_folder_kind_accepts_only_a_manifest_of_ours_listing_every_file(tmp_path):
    bundle = tmp_path / "b"
    bundle.mkdir()
    assert is_ours(bundle, "folder")  # empty: nothing to lose
    our_folder(bundle)
    assert is_ours(bundle, "folder")
    (bundle / "model" / "m.onnx").unlink()  # a file of ours gone: nothing of the user's there
    assert is_ours(bundle, "folder")
    (bundle / "notes.txt").write_text("added by the user")
    assert "notes.txt" in ownership.why_not_ours(str(bundle), "folder")
    (bundle / "notes.txt").unlink()
    data = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps(dict(data, format="someone-else")))
    assert not is_ours(bundle, "folder")
    with pytest.raises(InputError, match="already exists: pass --force"):
        check_replaceable(bundle, "folder", force=False)


@pytest.mark.parametrize("files", [None, [], {"README.md": {}}, "x",
                                   {"README.md": {"sha256": "0" * 64, "bytes": -1}},
                                   {"../README.md": {"sha256": "0" * 64, "bytes": 7}}],
                         ids=["no-list", "list", "no-hash", "string", "bad-size", "outside"])
def test_a_manifest_of_our_format_without_a_valid_file_list_proves_nothing(tmp_path, files):
    """The issue's data loss: `format` alone made a folder ours, and --force emptied it."""
    root = tmp_path / "b"
    root.mkdir()
    (root / "README.md").write_text("my notes\n")
    manifest = {"format": "bisenet-deploy-jetson-bundle"}
    if files is not None:
        manifest["files"] = files
    (root / "manifest.json").write_text(json.dumps(manifest))
    before = snapshot(root)
    with pytest.raises(InputError, match="does not list its files with their sha256"):
        check_replaceable(root, "folder", force=True)
    assert snapshot(root) == before


def _fifo(path):
    os.mkfifo(str(path))


@pytest.mark.parametrize("plant", [
    ("__pycache__/errors.cpython-36.pyc", "file"),
    ("bisenet_trt/__pycache__/notes.txt", "file"),
    (".env", "file"),
    ("model/.keep", "file"),
    ("engines/m-fp16.engine", "file"),
    ("mine", "folder"),
    ("link", "symlink"),
    ("README.md", "link-over-listed"),
    ("model/dangling", "dangling"),
    ("fifo", "fifo"),
    ("README.md", "changed"),
    ("model/m.onnx", "changed"),
], ids=lambda p: p[0] + ":" + p[1])
def test_force_replaces_a_folder_only_when_every_entry_is_listed_and_unchanged(tmp_path, plant):
    rel, kind = plant
    root = tmp_path / "b"
    our_folder(root)
    outside = tmp_path / "my_data.txt"
    outside.write_text("the user's data")
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "file":
        path.write_text("the user's file")
    elif kind == "folder":
        path.mkdir()
    elif kind == "symlink":
        os.symlink(str(outside), str(path))
    elif kind == "link-over-listed":  # a listed name, now the user's link to their own file
        path.unlink()
        os.symlink(str(outside), str(path))
    elif kind == "dangling":
        os.symlink(str(tmp_path / "nowhere"), str(path))
    elif kind == "fifo":
        _fifo(path)
    else:
        path.write_bytes(path.read_bytes() + b" edited by the user")
    before = snapshot(root)
    with pytest.raises(InputError, match="refusing to replace") as info:
        check_replaceable(root, "folder", force=True)
    assert rel.split("/")[-1] in str(info.value) or rel.split("/")[0] in str(info.value)
    assert snapshot(root) == before
    assert outside.read_text() == "the user's data"


def test_the_jetson_bundle_format_is_one_the_check_knows():
    from bisenet_deploy.jetson.bundle import BUNDLE_FORMAT

    assert BUNDLE_FORMAT in ownership.FOLDER_FORMATS


def _tar_of(folder, tar_path, extra=(), arcname="b"):
    """A .tar.gz of `folder` as our writer makes it, then `extra` (name, bytes or TarInfo) added."""
    import io

    with tarfile.open(str(tar_path), "w:gz") as tar:
        tar.add(str(folder), arcname=arcname)
        for name, data in extra:
            if isinstance(data, tarfile.TarInfo):
                tar.addfile(data)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_tarball_kind(tmp_path):
    folder = tmp_path / "b"
    our_folder(folder)
    ours = tmp_path / "b.tar.gz"
    _tar_of(folder, ours)
    assert is_ours(ours, "tarball")
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        tar.add(tmp_path / "b" / "manifest.json", arcname="x/readme.txt")
    assert not is_ours(other, "tarball")
    (tmp_path / "junk.tar.gz").write_bytes(b"not gzip")
    assert not is_ours(tmp_path / "junk.tar.gz", "tarball")
    # a valid gzip header, then garbage: unreadable, refused, never an internal error
    (tmp_path / "cut.tar.gz").write_bytes(ours.read_bytes()[:40] + b"\0" * 200)
    assert not is_ours(tmp_path / "cut.tar.gz", "tarball")


def _symlink_member(name):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return info


@pytest.mark.parametrize("extra, why", [
    ([("b/engines/m-fp16.engine", b"PLAN"), ("b/benchmarks/r.json", b"{}")], "does not list"),
    ([("b/README.md", b"another README")], "twice"),
    ([("b/link", None)], "not a regular file"),
    ([("c/other.txt", b"x")], "exactly one bundle folder"),
    ([("b/../../evil", b"x")], "exactly one bundle folder"),
], ids=["user-added-files", "duplicate", "symlink", "two-folders", "dot-dot"])
def test_a_tarball_is_ours_only_when_its_members_are_exactly_the_manifest_files(tmp_path, extra,
                                                                                why):
    folder = tmp_path / "b"
    our_folder(folder)
    extra = [(n, _symlink_member(n) if d is None else d) for n, d in extra]
    tar_path = tmp_path / "b.tar.gz"
    _tar_of(folder, tar_path, extra)
    before = tar_path.read_bytes()
    with pytest.raises(InputError, match="refusing to replace .*" + why):
        check_replaceable(tar_path, "tarball", force=True)
    assert tar_path.read_bytes() == before


def test_a_tarball_with_a_changed_missing_or_unlisted_file_is_not_ours(tmp_path):
    folder = tmp_path / "b"
    manifest = our_folder(folder)
    (folder / "README.md").write_text("edited\n")
    _tar_of(folder, tmp_path / "changed.tar.gz")
    assert "differ from its manifest (README.md)" in ownership.why_not_ours(
        str(tmp_path / "changed.tar.gz"), "tarball")
    (folder / "README.md").unlink()
    _tar_of(folder, tmp_path / "missing.tar.gz")
    assert "lacks files its manifest lists (README.md)" in ownership.why_not_ours(
        str(tmp_path / "missing.tar.gz"), "tarball")
    (folder / "README.md").write_text("readme\n")
    (folder / "mine").mkdir()
    _tar_of(folder, tmp_path / "folder.tar.gz")
    assert "mine/" in ownership.why_not_ours(str(tmp_path / "folder.tar.gz"), "tarball")
    (folder / "mine").rmdir()
    del manifest["files"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    _tar_of(folder, tmp_path / "nolist.tar.gz")
    assert "does not list its files" in ownership.why_not_ours(
        str(tmp_path / "nolist.tar.gz"), "tarball")


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
    # the Jetson bundle's pictures: OpenCV's PNG bytes marked after the fact, a PPM's comment
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(buffer, format="PNG")
    (tmp_path / "jetson.png").write_bytes(ownership.marked_png(buffer.getvalue()))
    assert is_ours(tmp_path / "jetson.png", "png")
    with Image.open(tmp_path / "jetson.png") as again:  # still a valid PNG (chunk CRC checked)
        again.load()
        assert again.text.get("Software") == "bisenet-deploy"
        assert np.array_equal(np.asarray(again), np.arange(48).reshape(4, 4, 3))
    (tmp_path / "ours.ppm").write_bytes(ownership.ppm_header(1, 1) + b"abc")
    (tmp_path / "theirs.ppm").write_bytes(b"P6\n1 1\n255\nabc")
    assert is_ours(tmp_path / "ours.ppm", "ppm") and not is_ours(tmp_path / "theirs.ppm", "ppm")
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
    assert main(["onnx", "-o", str(out), "--input-size", "128x64", "--network-size", "64x32",
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


def test_triton_force_refuses_our_format_without_a_file_list_and_replaces_its_own(tmp_path,
                                                                                   tiny_export,
                                                                                   capsys):
    """The issue's data loss, in `bisenet-export triton`: `format` alone made REPO ours."""
    from bisenet_deploy.cli.export_main import main

    _, _, onnx_path = tiny_export("labels")
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "mine.txt").write_text("mine")
    (repo / "manifest.json").write_text(json.dumps({"format": "bisenet-deploy-triton-repository"}))
    before = snapshot(repo)
    argv = ["triton", "--onnx", onnx_path, "-o", str(repo), "--force", "-q"]
    assert main(argv) == 2
    assert "does not list its files" in _one_error_line(capsys.readouterr().err)
    assert snapshot(repo) == before
    for path in (repo / "data" / "mine.txt", repo / "manifest.json", repo / "data"):
        path.unlink() if path.is_file() else path.rmdir()
    assert main(argv) == 0  # empty: written
    assert main(argv) == 0  # ours, as written: replaced
    capsys.readouterr()
    (repo / "bisenet" / ".notes").write_text("mine")  # a dotfile of the user's in a model folder
    assert main(argv) == 2
    assert "bisenet/.notes" in _one_error_line(capsys.readouterr().err)
    assert (repo / "bisenet" / ".notes").read_text() == "mine"
