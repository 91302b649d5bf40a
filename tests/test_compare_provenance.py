"""A comparison that cannot pass says why first: another architecture, class count or random
weights is refused before any inference; another checkpoint file is named as the likely reason."""

import pytest

from bisenet_deploy.evaluation.provenance import disagreements


def test_disagreements_from_metadata():
    ref = {"arch": "bisenetv2", "num_classes": 19, "weights": "checkpoint",
           "checkpoint_sha256": "a" * 64}
    fatal, doubtful = disagreements(ref, dict(ref), "onnx")
    assert fatal == [] and doubtful == []
    fatal, _ = disagreements(ref, dict(ref, arch="bisenetv2-coincheung"), "onnx")
    assert fatal == ["onnx is a bisenetv2-coincheung model but the reference is bisenetv2"]
    fatal, _ = disagreements(ref, dict(ref, num_classes=150), "onnx")
    assert fatal == ["onnx predicts 150 classes but the reference 19"]
    fatal, _ = disagreements(ref, dict(ref, weights="random-init", checkpoint_sha256=None), "onnx")
    assert fatal and "seeded random weights" in fatal[0]
    fatal, doubtful = disagreements(ref, dict(ref, checkpoint_sha256="b" * 64), "onnx")
    assert fatal == [] and "another checkpoint file" in doubtful[0] and "bbbbbbbbbbbb" in doubtful[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two 'trained' checkpoints of the same network (different weights), one of another
    architecture, and an ONNX exported from the first."""
    from bisenet_deploy.checkpoint import load_model, save_checkpoint
    from bisenet_deploy.export.pipeline import ExportOptions, export_onnx

    folder = tmp_path_factory.mktemp("trained")
    paths = {}
    for name, arch, seed in (("a", "bisenetv2", 0), ("b", "bisenetv2", 1),
                             ("c", "bisenetv2-coincheung", 0)):
        loaded = load_model(None, arch=arch, seed=seed)
        loaded.metadata.weights = "checkpoint"  # stands in for trained weights
        paths[name] = str(folder / f"{name}.safetensors")
        save_checkpoint(paths[name], loaded.model, loaded.metadata)
    paths["onnx"] = str(folder / "a.onnx")
    export_onnx(ExportOptions(checkpoint=paths["a"], output_path=paths["onnx"],
                              input_size=(128, 64), model_size=(64, 32), parity=False,
                              simplify=False))
    return paths


def test_another_architecture_is_refused_before_inference(trained, capsys, monkeypatch):
    from bisenet_deploy.cli.compare_main import main
    from bisenet_deploy.evaluation import compare as cmp

    def no_compare(*args, **kwargs):
        raise AssertionError("the comparison ran")

    monkeypatch.setattr(cmp, "compare", no_compare)
    code = main(["--checkpoint", trained["c"], "--against", f"onnxruntime:{trained['onnx']}",
                 "--synthetic", "1", "-q"])
    assert code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "is a bisenetv2 model but the reference" in line and "bisenetv2-coincheung" in line


def test_another_checkpoint_file_is_named_as_the_reason_of_a_failure(trained, capsys):
    from bisenet_deploy.cli.compare_main import main

    code = main(["--checkpoint", trained["b"], "--against", f"onnxruntime:{trained['onnx']}",
                 "--synthetic", "1", "-q"])
    assert code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert "another checkpoint file" in err[0]  # said first, before the report
    assert "likely why" in err[-1] and "another checkpoint file" in err[-1]
    # the checkpoint it was exported from passes
    assert main(["--checkpoint", trained["a"], "--against", f"onnxruntime:{trained['onnx']}",
                 "--synthetic", "1", "-q"]) == 0
