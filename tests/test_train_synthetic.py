"""scripts/train_synthetic.py at a tiny size: it trains (the weights move away from the random
init), writes a checkpoint `bisenet-export onnx --checkpoint` loads, and scores it."""

import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script():
    path = os.path.join(ROOT, "scripts", "train_synthetic.py")
    spec = importlib.util.spec_from_file_location("train_synthetic", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_iterations_write_a_loadable_trained_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    from bisenet_deploy.checkpoint import load_model

    out = tmp_path / "trained.safetensors"
    scores = tmp_path / "scores.json"
    rc = _script().main(["-o", str(out), "--iters", "2", "--batch", "2", "--scenes", "2",
                         "--scene-size", "128x64", "--network-size", "128x64", "--crop", "64x64",
                         "--eval-scenes", "1", "--threads", "1", "--json", str(scores)])
    assert rc == 0
    trained = load_model(str(out))
    assert trained.metadata.weights == "checkpoint"
    assert trained.metadata.arch == "bisenetv2" and trained.metadata.num_classes == 19
    assert trained.metadata.dataset == "cityscapes"
    random_init = load_model(None).model.state_dict()
    moved = [k for k, v in trained.model.state_dict().items() if k in random_init
             and v.is_floating_point() and not torch.equal(v, random_init[k])]
    assert moved  # the main network was trained, not only the aux heads
    result = json.loads(scores.read_text())
    assert result["iters"] == 2 and 0.0 <= result["eval"]["miou"] <= 1.0
    assert set(result["eval"]["per_class_iou"]) <= {
        "road", "sidewalk", "building", "pole", "vegetation", "sky", "car", "terrain",
        "fence", "wall", "traffic light", "traffic sign", "person", "rider", "truck", "bus",
        "train", "motorcycle", "bicycle"}


def test_refuses_to_replace_a_file_it_did_not_write_before_training(tmp_path, capsys):
    out = tmp_path / "notes.safetensors"
    out.write_text("my notes")
    assert _script().main(["-o", str(out), "--iters", "1"]) == 2
    assert out.read_text() == "my notes"
    assert "refusing to replace" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--batch", "1"], ["--crop", "100x64"], ["--crop", "2048x64"],
                                 ["--iters", "0"], ["--network-size", "big"]])
def test_bad_options_are_one_usage_line(tmp_path, bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _script().main(["-o", str(tmp_path / "x.safetensors")] + bad)
    assert exit_info.value.code == 2
    assert "error: " in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "x.safetensors").exists()


def test_written_cityscapes_folder_reads_back_as_the_scenes_and_their_labels(tmp_path):
    """What `--eval-data` reads from scripts/write_synthetic_data.py is the scene and its train
    ids (label ids on disk, mapped back by the evaluation's own reader)."""
    import numpy as np

    from bisenet_deploy.evaluation.datasets_io import find_samples, read_label
    from bisenet_deploy.portable.building.calibrator import load_image
    from bisenet_deploy.synthetic import synthetic_scene

    spec = importlib.util.spec_from_file_location(
        "write_synthetic_data", os.path.join(ROOT, "scripts", "write_synthetic_data.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["cityscapes", str(tmp_path), "--first-seed", "910000", "--count", "2",
            "--size", "96x48"]
    assert module.main(argv) == 0
    assert module.main(argv) == 0  # a rerun replaces its own files
    samples = find_samples(str(tmp_path), layout="cityscapes")
    assert len(samples) == 2
    for sample, seed in zip(samples, (910000, 910001)):
        image, labels = synthetic_scene(96, 48, seed=seed)
        assert np.array_equal(load_image(sample.image_path), image)
        assert np.array_equal(read_label(sample, "cityscapes"), labels)
