"""Our safetensors checkpoint format, random initialisation, and refusal of bad files.

Uses the small CoinCheung-variant network (3.4M parameters) and 64x64 inputs to stay fast.
"""

import json
import logging
import os
import struct

import pytest
import torch

from bisenet_deploy.checkpoint import (
    COINCHEUNG_ARCH,
    RANDOM_WEIGHTS_WARNING,
    load_model,
    read_checkpoint_metadata,
    save_checkpoint,
)
from bisenet_deploy.datasets import get_dataset
from bisenet_deploy.errors import CheckpointError, InputError, UserError
from bisenet_deploy.metadata import METADATA_KEY
from bisenet_deploy.model import build_model

X = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def logits(model, x=X):
    with torch.no_grad():
        return model(x)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 'trained' CoinCheung-variant model (random weights, non-trivial BN stats) saved by us."""
    torch.manual_seed(123)
    model = build_model(COINCHEUNG_ARCH, 19, aux=False)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                buf.normal_(0, 0.1)
    model.eval()
    meta = get_dataset("cityscapes").to_model_metadata(COINCHEUNG_ARCH, source="coincheung")
    path = tmp_path_factory.mktemp("ckpt") / "city.safetensors"
    save_checkpoint(path, model, meta)
    return model, meta, path


def test_round_trip_gives_same_outputs_and_metadata(trained):
    model, meta, path = trained
    loaded, loaded_meta = load_model(str(path))
    assert not loaded.training
    assert torch.equal(logits(loaded), logits(model))
    expected = meta.to_dict()
    got = loaded_meta.to_dict()
    assert got.pop("checkpoint_sha256") == _sha256(path)
    expected.pop("checkpoint_sha256")
    assert got == expected


def test_file_is_standard_safetensors_with_the_record(trained):
    from safetensors import safe_open

    _, meta, path = trained
    with safe_open(str(path), framework="pt") as handle:
        record = json.loads(handle.metadata()[METADATA_KEY])
        assert "head.conv_out.1.weight" in set(handle.keys())
    assert record["schema"] == 1
    assert record["model"]["arch"] == COINCHEUNG_ARCH
    assert record["model"]["class_names"] == meta.class_names
    assert read_checkpoint_metadata(path).mean == meta.mean


def test_our_file_refuses_contradicting_options(trained):
    _, _, path = trained
    with pytest.raises(CheckpointError, match="--arch bisenetv2 was given"):
        load_model(str(path), arch="bisenetv2")
    with pytest.raises(CheckpointError, match="--num-classes 150"):
        load_model(str(path), num_classes=150)
    _, meta = load_model(str(path), arch=COINCHEUNG_ARCH, num_classes=19, dataset="custom")
    assert meta.dataset == "custom" and meta.class_names[0] == "class_0"


def test_our_format_with_wrong_shapes_lists_them(tmp_path, trained):
    # the record says 19 classes but the tensors are a 150-class head
    model = build_model(COINCHEUNG_ARCH, 150, aux=False)
    from safetensors.torch import save_file

    from bisenet_deploy.metadata import build_record, dumps_record

    _, meta, _ = trained
    path = tmp_path / "lying.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={METADATA_KEY: dumps_record(build_record(meta))})
    with pytest.raises(CheckpointError) as info:
        load_model(str(path))
    assert "head.conv_out.1.weight: file 150x1024x1x1, model 19x1024x1x1" in str(info.value)


def test_save_refuses_weights_that_do_not_fit_the_metadata(tmp_path):
    model = build_model(COINCHEUNG_ARCH, 150, aux=False)
    meta = get_dataset("cityscapes").to_model_metadata(COINCHEUNG_ARCH)
    target = tmp_path / "out.safetensors"
    target.write_bytes(b"previous content")
    with pytest.raises(CheckpointError, match="head.conv_out.1.weight"):
        save_checkpoint(target, model, meta)
    assert target.read_bytes() == b"previous content"  # untouched
    assert os.listdir(tmp_path) == ["out.safetensors"]  # no temp file left


def test_aux_heads_survive_a_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model(COINCHEUNG_ARCH, 19, aux=True)
    meta = get_dataset("city").to_model_metadata(COINCHEUNG_ARCH)
    save_checkpoint(tmp_path / "aux.safetensors", model, meta)
    loaded, _ = load_model(str(tmp_path / "aux.safetensors"))
    assert set(loaded.state_dict()) == set(model.state_dict())


# --- random initialisation ---------------------------------------------------------------------

def test_random_init_warns_loudly_and_is_seeded(caplog):
    with caplog.at_level(logging.WARNING, logger="bisenet_deploy"):
        model, meta = load_model(None, arch=COINCHEUNG_ARCH, seed=3)
    assert RANDOM_WEIGHTS_WARNING in caplog.text
    assert "RANDOM WEIGHTS" in caplog.text
    assert meta.weights == "random-init" and meta.source == "random-init"
    assert meta.dataset == "cityscapes" and meta.num_classes == 19
    assert not model.training
    again, _ = load_model(None, arch=COINCHEUNG_ARCH, seed=3)
    other, _ = load_model(None, arch=COINCHEUNG_ARCH, seed=4)
    assert torch.equal(logits(model), logits(again))
    assert not torch.equal(logits(model), logits(other))


def test_random_init_leaves_the_global_rng_alone():
    torch.manual_seed(42)
    expected = torch.rand(3)
    torch.manual_seed(42)
    load_model(None, arch=COINCHEUNG_ARCH, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_random_init_defaults_to_the_paper_network():
    model, meta = load_model(None)
    assert meta.arch == "bisenetv2" and meta.num_classes == 19
    assert not any(k.startswith("aux") for k in model.state_dict())


def test_random_init_classes_from_dataset_or_option():
    _, meta = load_model(None, arch=COINCHEUNG_ARCH, dataset="ade")
    assert meta.num_classes == 150 and meta.dataset == "ade20k"
    _, meta = load_model(None, arch=COINCHEUNG_ARCH, num_classes=4)
    assert meta.dataset == "custom" and len(meta.class_names) == 4
    with pytest.raises(InputError, match="needs the number of classes"):
        load_model(None, arch=COINCHEUNG_ARCH, dataset="custom")
    with pytest.raises(InputError, match="unknown architecture"):
        load_model(None, arch="resnet50")


def test_random_init_saved_and_reloaded_still_warns(tmp_path, caplog):
    model, meta = load_model(None, arch=COINCHEUNG_ARCH)
    save_checkpoint(tmp_path / "rand.safetensors", model, meta)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bisenet_deploy"):
        _, loaded = load_model(str(tmp_path / "rand.safetensors"))
    assert loaded.weights == "random-init"
    assert "RANDOM WEIGHTS" in caplog.text


# --- files that are not (good) checkpoints -----------------------------------------------------

def _sha256(path):
    import hashlib

    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _expect(path, pattern, **kwargs):
    with pytest.raises(CheckpointError, match=pattern) as info:
        load_model(str(path), **kwargs)
    assert isinstance(info.value, UserError)
    assert "Traceback" not in str(info.value)
    return str(info.value)


def test_missing_file_and_directory(tmp_path):
    # a wrong path is a usage error (exit 2) in every command, not an unusable file
    for path, words in ((tmp_path / "nope.pth", "checkpoint not found"), (tmp_path, "not a file")):
        with pytest.raises(InputError, match=words):
            load_model(str(path))


def test_empty_file(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    _expect(tmp_path / "empty.pth", "empty file")


def test_random_bytes(tmp_path):
    (tmp_path / "noise.pth").write_bytes(bytes(range(7, 256)) * 10)
    _expect(tmp_path / "noise.pth", "not a checkpoint: it starts with the bytes 07 08 09")


def test_html_page_from_a_failed_download(tmp_path):
    (tmp_path / "model_final_v2_city.pth").write_text("<!DOCTYPE html><html><body>Sign in")
    _expect(tmp_path / "model_final_v2_city.pth", "HTML.*failed download")


def test_truncated_pth(tmp_path, trained):
    model, _, _ = trained
    full = tmp_path / "full.pth"
    torch.save(model.state_dict(), full)
    data = full.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    _expect(tmp_path / "cut.pth", "truncated or corrupt")


def test_truncated_legacy_pth(tmp_path, trained):
    model, _, _ = trained
    full = tmp_path / "legacy.pth"
    torch.save(model.state_dict(), full, _use_new_zipfile_serialization=False)
    data = full.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[:300])
    _expect(tmp_path / "cut.pth", "corrupt")


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_safetensors(tmp_path, trained, keep):
    _, _, path = trained
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: int(len(data) * keep)])
    _expect(cut, "truncated")


def test_safetensors_with_damaged_header(tmp_path):
    header = b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]'  # no closing brace
    (tmp_path / "bad.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    _expect(tmp_path / "bad.safetensors", "corrupt or truncated safetensors")


class NotATensor:
    """Stands for any class a malicious or careless pickle may carry."""

    def __init__(self):
        self.payload = "would run code on unpickling"


def test_pickled_objects_are_never_unpickled(tmp_path, trained):
    model, _, _ = trained
    torch.save({"state_dict": model.state_dict(), "extra": NotATensor()}, tmp_path / "obj.pth")
    message = _expect(tmp_path / "obj.pth", "pickled Python objects")
    assert "NotATensor" in message and "never unpickles" in message


def test_whole_pickled_module_is_refused(tmp_path, trained):
    model, _, _ = trained
    torch.save(model, tmp_path / "whole_model.pth")
    _expect(tmp_path / "whole_model.pth", "pickled Python objects")


def test_foreign_network_is_refused(tmp_path):
    resnet_like = {
        "conv1.weight": torch.zeros(64, 3, 7, 7), "bn1.weight": torch.ones(64),
        "bn1.bias": torch.zeros(64), "bn1.running_mean": torch.zeros(64),
        "bn1.running_var": torch.ones(64), "layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3),
        "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000),
    }
    torch.save(resnet_like, tmp_path / "resnet.pth")
    message = _expect(tmp_path / "resnet.pth", "not a BiSeNetV2 checkpoint")
    assert "conv1.weight" in message  # says what the file looked like
    assert "head.conv_out.1.weight" in message  # and what was expected
    _expect(tmp_path / "resnet.pth", "cannot find the classifier", arch=COINCHEUNG_ARCH)
    message = _expect(tmp_path / "resnet.pth", "another network", arch=COINCHEUNG_ARCH,
                      num_classes=19)
    assert "8 unexpected" in message


def test_dict_without_weights_is_refused(tmp_path):
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "opt.pth")
    _expect(tmp_path / "opt.pth", r"holds a dict with keys \[epoch, optimizer\]")
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    _expect(tmp_path / "tensor.pth", "holds a Tensor")


def test_plain_state_dict_of_the_paper_network_with_arch(tmp_path):
    torch.manual_seed(0)
    model = build_model("bisenetv2", 5, aux=False).eval()
    torch.save(model.state_dict(), tmp_path / "paper.pth")
    loaded, meta = load_model(str(tmp_path / "paper.pth"), arch="bisenetv2")
    assert meta.arch == "bisenetv2" and meta.num_classes == 5
    assert torch.equal(logits(loaded), logits(model))
    # the layout names the architecture: no --arch needed, and a wrong one gets a hint
    loaded, meta = load_model(str(tmp_path / "paper.pth"))
    assert meta.arch == "bisenetv2" and meta.source == "bisenet-deploy"
    assert torch.equal(logits(loaded), logits(model))
    message = _expect(tmp_path / "paper.pth", "looks like a 'bisenetv2' checkpoint",
                      arch=COINCHEUNG_ARCH)
    assert "--arch bisenetv2." in message


def test_record_naming_an_unknown_architecture(tmp_path, trained):
    from safetensors.torch import save_file

    from bisenet_deploy.metadata import build_record, dumps_record

    model, meta, _ = trained
    record = build_record(meta)
    record["model"]["arch"] = "bisenetv3-future"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(tmp_path / "future.safetensors"), metadata={METADATA_KEY: dumps_record(record)})
    _expect(tmp_path / "future.safetensors", "'bisenetv3-future'.*does not know")
    record["model"] = {"arch": COINCHEUNG_ARCH}  # damaged: fields missing
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(tmp_path / "damaged.safetensors"), metadata={METADATA_KEY: dumps_record(record)})
    _expect(tmp_path / "damaged.safetensors", "metadata in the file is damaged")


def test_safetensors_without_our_record_is_read_as_a_state_dict(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = build_model(COINCHEUNG_ARCH, 150, aux=False).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(tmp_path / "converted.safetensors"))
    loaded, meta = load_model(str(tmp_path / "converted.safetensors"))
    assert meta.arch == COINCHEUNG_ARCH and meta.dataset == "ade20k"
    assert torch.equal(logits(loaded), logits(model))
    assert read_checkpoint_metadata(tmp_path / "converted.safetensors") is None


def test_random_init_from_a_record_with_a_custom_dataset_name():
    # e.g. a runner rebuilding "random weights shaped like the record's model"
    info = __import__("bisenet_deploy.datasets", fromlist=["custom_dataset"]).custom_dataset(
        3, ["bg", "crack", "spall"], name="bridge-defects")
    record_model = info.to_model_metadata(COINCHEUNG_ARCH).to_dict()
    _, meta = load_model(None, arch=COINCHEUNG_ARCH, dataset=record_model)
    assert meta.dataset == "bridge-defects" and meta.class_names == ["bg", "crack", "spall"]
    assert meta.num_classes == 3


def test_naming_the_files_own_dataset_keeps_its_class_names(tmp_path):
    from bisenet_deploy.datasets import custom_dataset

    model, _ = load_model(None, arch=COINCHEUNG_ARCH, num_classes=2)
    meta = custom_dataset(2, ["bg", "crack"]).to_model_metadata(COINCHEUNG_ARCH)
    save_checkpoint(tmp_path / "cracks.safetensors", model, meta)
    _, loaded = load_model(str(tmp_path / "cracks.safetensors"), dataset="custom")
    assert loaded.class_names == ["bg", "crack"]


def test_non_default_head_width_saves_and_loads(tmp_path):
    # build_model(head_mid_channels=...) is the configurable C_t: such a model must
    # round-trip through our format and a plain state dict like the default one
    torch.manual_seed(4)
    model = build_model("bisenetv2", 3, aux=False, head_mid_channels=32).eval()
    meta = get_dataset("custom", num_classes=3).to_model_metadata("bisenetv2")
    save_checkpoint(tmp_path / "ct32.safetensors", model, meta)
    torch.save(model.state_dict(), tmp_path / "ct32.pth")
    for name in ("ct32.safetensors", "ct32.pth"):
        loaded, _ = load_model(str(tmp_path / name))
        assert loaded.head.conv.conv.out_channels == 32
        assert torch.equal(logits(loaded), logits(model))


def test_torchscript_archive_is_named_as_such(tmp_path, recwarn):
    torch.jit.save(torch.jit.script(torch.nn.Conv2d(3, 3, 1)), tmp_path / "scripted.pt")
    recwarn.clear()
    message = _expect(tmp_path / "scripted.pt", "TorchScript archive")
    assert "state_dict" in message and "download it again" not in message
    assert not [w for w in recwarn if "TorchScript" in str(w.message)]  # one message, no warning


def test_an_onnx_file_as_checkpoint_gets_a_hint(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07\x12\x07pytorch" + bytes(50))
    _expect(tmp_path / "model.onnx", "looks like an ONNX graph")
