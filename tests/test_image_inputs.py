"""Images as users have them: 16-bit PNGs read as their 8-bit content (not saturated to white),
one unreadable file in a folder skipped and listed (exit 6), videos and --max-frames validated,
and no empty output folder after a failure."""

import os

import numpy as np
import pytest
from PIL import Image

from bisenet_deploy.errors import UnusableFileError
from bisenet_deploy.synthetic import synthetic_image

SKIPPED_INPUTS = 6


def _save_16bit(path, rgb8, grey=False):
    """A 16-bit PNG holding exactly the 8-bit picture `rgb8` (v16 = v8 * 257)."""
    if grey:
        Image.fromarray(rgb8[:, :, 0].astype(np.uint16) * 257).save(path)
        return
    import cv2  # Pillow cannot write 48-bit RGB; OpenCV (test extra) can

    cv2.imwrite(str(path), np.ascontiguousarray(rgb8[:, :, ::-1]).astype(np.uint16) * 257)


@pytest.mark.parametrize("grey", [True, False], ids=["grey16", "rgb48"])
def test_16bit_pngs_read_as_their_8bit_content(tmp_path, grey):
    from bisenet_deploy.portable.building import calibrator
    from bisenet_deploy.runtime.images import read_image

    rgb8 = synthetic_image(64, 32, seed=3)
    if grey:
        rgb8 = np.repeat(rgb8[:, :, :1], 3, axis=2)
    path = tmp_path / "deep.png"
    _save_16bit(path, rgb8, grey)
    assert np.array_equal(read_image(str(path)), rgb8)  # predict, bench, eval, compare
    assert np.array_equal(calibrator.load_image(str(path)), rgb8)  # INT8 calibration


def test_float_images_are_refused(tmp_path):
    from bisenet_deploy.runtime.images import read_image

    path = tmp_path / "float.tiff"
    Image.fromarray(np.ones((4, 4), np.float32)).save(path)
    with pytest.raises(UnusableFileError, match="floating-point"):
        read_image(str(path))


def test_predict_gives_a_16bit_png_the_labels_of_its_8bit_twin(tmp_path, tiny_export):
    from bisenet_deploy.cli.predict_main import main

    _, _, onnx_path = tiny_export("labels")
    rgb8 = synthetic_image(128, 64, seed=4)
    Image.fromarray(rgb8[:, :, 0]).save(tmp_path / "a8.png")
    _save_16bit(tmp_path / "a16.png", rgb8, grey=True)
    assert main(["--onnx", onnx_path, str(tmp_path / "a8.png"), str(tmp_path / "a16.png"),
                 "-o", str(tmp_path / "out"), "-q"]) == 0
    with Image.open(tmp_path / "out" / "a8_labels.png") as a, \
            Image.open(tmp_path / "out" / "a16_labels.png") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture()
def folder_with_a_broken_image(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i, name in enumerate(("a.png", "c.png")):
        Image.fromarray(synthetic_image(128, 64, seed=i)).save(images / name)
    (images / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated by a failed copy")
    return images


def test_predict_skips_an_unreadable_image_and_lists_it(folder_with_a_broken_image, tmp_path,
                                                        tiny_export, capsys):
    from bisenet_deploy.cli.predict_main import main

    _, _, onnx_path = tiny_export("labels")
    out = tmp_path / "out"
    code = main(["--onnx", onnx_path, str(folder_with_a_broken_image), "-o", str(out), "-q",
                 "--json", str(tmp_path / "p.json")])
    assert code == SKIPPED_INPUTS
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 3 input(s) could not be read") and "b.png" in last
    assert sorted(os.listdir(out)) == ["a_labels.png", "a_overlay.png", "c_labels.png",
                                       "c_overlay.png"]
    import json

    report = json.loads((tmp_path / "p.json").read_text())
    assert [s["input"].endswith("b.png") for s in report["skipped"]] == [True]


def test_compare_and_eval_skip_an_unreadable_image(folder_with_a_broken_image, tmp_path,
                                                   tiny_export, capsys):
    from bisenet_deploy.cli import compare_main, eval_main

    _, ckpt, onnx_path = tiny_export("labels")
    code = compare_main.main(["--checkpoint", ckpt, "--against", f"onnxruntime:{onnx_path}",
                              "--images", str(folder_with_a_broken_image), "-q"])
    assert code == SKIPPED_INPUTS
    assert "2 image(s)" in capsys.readouterr().out
    labels = tmp_path / "labels"
    labels.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(np.zeros((64, 128), np.uint8)).save(labels / name)
    code = eval_main.main(["--backend", f"onnxruntime:{onnx_path}", "--data", str(tmp_path),
                           "--layout", "folders", "--no-progress", "-q",
                           "--json", str(tmp_path / "e.json")])
    assert code == SKIPPED_INPUTS
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "1 of 3 sample(s)" in last and "b" in last
    import json

    assert json.loads((tmp_path / "e.json").read_text())["images"] == 2


@pytest.mark.parametrize("frames", ["0", "-1"])
def test_max_frames_must_be_positive(frames, tmp_path, tiny_export, capsys):
    from bisenet_deploy.cli.predict_main import main

    _, _, onnx_path = tiny_export("labels")
    with pytest.raises(SystemExit) as exc:
        main(["--onnx", onnx_path, str(tmp_path / "drive.mp4"), "-o", str(tmp_path / "out"),
              "--max-frames", frames])
    assert exc.value.code == 2
    assert "--max-frames: must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_video_without_frames_leaves_no_empty_folder(tmp_path, tiny_export, capsys):
    pytest.importorskip("cv2", reason="OpenCV not installed: video is optional")
    from bisenet_deploy.cli.predict_main import main

    _, _, onnx_path = tiny_export("labels")
    (tmp_path / "empty.mp4").write_bytes(b"")
    out = tmp_path / "deep" / "out"
    assert main(["--onnx", onnx_path, str(tmp_path / "empty.mp4"), "-o", str(out), "-q"]) == 5
    assert "empty.mp4" in capsys.readouterr().err
    assert not (tmp_path / "deep").exists()


def test_a_failed_atomic_write_removes_the_folders_it_created(tmp_path):
    from bisenet_deploy.portable.files.fileio import atomic_output

    target = tmp_path / "a" / "b" / "report.json"
    with pytest.raises(RuntimeError):
        with atomic_output(str(target)) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("failed halfway")
    assert os.listdir(tmp_path) == []


def _png_declaring(path, width, height):
    """A valid PNG header declaring `width` x `height` grey pixels, with a few bytes of data: a
    decompression bomb of a few hundred bytes."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))

    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height", [(100000, 100000), (10000, 9000)],
                         ids=["far-over", "just-over"])
def test_an_image_declaring_too_many_pixels_is_unreadable_before_decoding(tmp_path, width,
                                                                         height):
    """100000 x 100000 (Pillow's own DecompressionBombError) and just over the limit (Pillow
    would only warn, then decode 90 MP) are both one line, exit 5."""
    from bisenet_deploy.portable.files.image_io import MAX_PIXELS
    from bisenet_deploy.runtime.images import read_image

    assert width * height > MAX_PIXELS
    bomb = tmp_path / "bomb.png"
    _png_declaring(bomb, width, height)
    with pytest.raises(UnusableFileError, match="decompression bomb") as info:
        read_image(str(bomb))
    assert info.value.exit_code == 5 and "89478485 pixels" in str(info.value)


def test_predict_refuses_a_bomb_alone_and_skips_it_in_a_folder(tmp_path, tiny_export, capsys):
    from bisenet_deploy.cli.predict_main import main

    _, _, onnx_path = tiny_export("labels")
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(synthetic_image(128, 64, seed=1)).save(images / "a.png")
    _png_declaring(images / "bomb.png", 100000, 100000)
    capsys.readouterr()
    assert main(["--onnx", onnx_path, str(images / "bomb.png"), "-o", str(tmp_path / "o1"),
                 "-q"]) == 5
    assert "decompression bomb" in capsys.readouterr().err
    assert main(["--onnx", onnx_path, str(images), "-o", str(tmp_path / "o2"), "-q"]) \
        == SKIPPED_INPUTS
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "1 of 2 input(s)" in last and "bomb.png" in last
    assert sorted(os.listdir(tmp_path / "o2")) == ["a_labels.png", "a_overlay.png"]


def test_broken_links_in_an_input_folder_are_skipped_and_listed(tmp_path, tiny_export, capsys):
    from bisenet_deploy.cli.predict_main import main

    _, _, onnx_path = tiny_export("labels")
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(synthetic_image(128, 64, seed=1)).save(images / "a.png")
    os.symlink(str(tmp_path / "gone.png"), str(images / "dangling.png"))
    os.symlink(str(images / "loop.png"), str(images / "loop.png"))
    capsys.readouterr()
    assert main(["--onnx", onnx_path, str(images), "-o", str(tmp_path / "out"), "-q"]) \
        == SKIPPED_INPUTS
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "2 of 3 input(s)" in last and "dangling.png" in last and "loop.png" in last
    assert sorted(os.listdir(tmp_path / "out")) == ["a_labels.png", "a_overlay.png"]


def test_fifos_are_refused_unopened_and_skipped_in_a_folder(tmp_path, tiny_export, capsys):
    """A FIFO named like an image or a video is never opened (that would wait for a writer
    forever): alone it is exit 5 naming it, in a folder it is skipped and listed (exit 6)."""
    from bisenet_deploy.cli.predict_main import main

    _, _, onnx_path = tiny_export("labels")
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(synthetic_image(128, 64, seed=1)).save(images / "a.png")
    os.mkfifo(str(images / "pipe.png"))
    os.mkfifo(str(images / "clip.mp4"))
    capsys.readouterr()
    assert main(["--onnx", onnx_path, str(images / "pipe.png"), "-o", str(tmp_path / "one"),
                 "-q"]) == 5
    assert "not a regular file" in capsys.readouterr().err
    assert not (tmp_path / "one").exists()
    assert main(["--onnx", onnx_path, str(images), "-o", str(tmp_path / "out"), "-q"]) \
        == SKIPPED_INPUTS
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "2 of 3 input(s)" in last and "pipe.png" in last and "clip.mp4" in last
    assert sorted(os.listdir(tmp_path / "out")) == ["a_labels.png", "a_overlay.png"]


def test_predict_into_its_own_input_folder_twice_reads_the_same_inputs(tmp_path, tiny_export,
                                                                       capsys):
    """Outputs are never inputs: the second run does not segment the first run's pictures."""
    import json

    from bisenet_deploy.cli.predict_main import main

    _, _, onnx_path = tiny_export("labels")
    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.fromarray(synthetic_image(128, 64, seed=1)).save(folder / "a.png")
    Image.fromarray(synthetic_image(128, 64, seed=2)).save(folder / "mine_labels.png")  # a user's
    for run in ("1", "2"):
        assert main(["--onnx", onnx_path, str(folder), "-o", str(folder), "-q",
                     "--json", str(tmp_path / (run + ".json"))]) == 0, capsys.readouterr().err
        inputs = [r["input"] for r in json.loads((tmp_path / (run + ".json")).read_text())
                  ["results"]]
        assert sorted(os.path.basename(p) for p in inputs) == ["a.png", "mine_labels.png"]
    assert sorted(os.listdir(folder)) == ["a.png", "a_labels.png", "a_overlay.png",
                                          "mine_labels.png", "mine_labels_labels.png",
                                          "mine_labels_overlay.png"]
