"""Import of CoinCheung/BiSeNet BiSeNetV2 state dicts, built from the reference key/shape table.

`tests/data/coincheung_bisenetv2_state_dict.tsv` is the key/shape listing of the public
`model_final_v2_city.pth` (train mode, aux heads included, 19 classes: 383 tensors). The fixtures
fill those shapes with random tensors, save them the way users' files come (plain,
`module.`-prefixed, wrapped, without aux heads, with other class counts) and check that every key
is consumed and the outputs are those of the weights in the file.
"""

import functools

import pytest
import torch

from bisenet_deploy.checkpoint import COINCHEUNG_ARCH, load_model, save_checkpoint
from bisenet_deploy.errors import CheckpointError, InputError
from bisenet_deploy.model import build_model
from test_model_coincheung import read_tsv


def reference_shapes(num_classes=19, aux=True):
    """{key: shape} of a CoinCheung BiSeNetV2 state dict (shape () for num_batches_tracked)."""
    shapes = {}
    for key, shape in read_tsv():
        if not aux and key.startswith("aux"):
            continue
        if key.endswith(("conv_out.1.weight", "conv_out.1.bias")):
            shape = (num_classes,) + shape[1:]
        shapes[key] = shape
    return shapes


def synthetic_state_dict(num_classes=19, aux=True, seed=0):
    """Random tensors of CoinCheung's shapes; BN variances positive so outputs are finite."""
    return dict(_synthetic_state_dict(num_classes, aux, seed))  # a fresh dict, shared tensors


@functools.lru_cache(maxsize=None)
def _synthetic_state_dict(num_classes, aux, seed):
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in reference_shapes(num_classes, aux).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith(("running_mean", "bias")):
            state[key] = torch.randn(shape, generator=gen) * 0.1
        elif len(shape) == 1:  # BN weight
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod()))
            state[key] = torch.randn(shape, generator=gen) / fan_in ** 0.5
    return state


def reference_output(state, num_classes, x):
    """Logits of the CoinCheung-variant network carrying exactly `state` (loaded by torch)."""
    model = build_model(COINCHEUNG_ARCH, num_classes, aux=any(k.startswith("aux") for k in state))
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():
        return model(x)


def logits(model, x):
    with torch.no_grad():
        return model(x)


X = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_reference_table_is_complete():
    shapes = reference_shapes()
    assert len(shapes) == 383
    assert sum(1 for k in shapes if k.startswith("aux")) == 56
    params = sum(int(torch.tensor(s).prod()) for k, s in shapes.items()
                 if not k.startswith("aux") and not k.endswith(("running_mean", "running_var",
                                                                "num_batches_tracked")))
    assert params == 3358627


def test_model_keys_equal_the_public_checkpoint():
    model = build_model(COINCHEUNG_ARCH, 19, aux=True)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == reference_shapes()


def test_train_mode_pth_loads_alone_with_every_key_consumed(tmp_path):
    state = synthetic_state_dict()
    path = tmp_path / "model_final_v2_city.pth"
    torch.save(state, path)
    model, meta = load_model(str(path))
    assert meta.arch == COINCHEUNG_ARCH and meta.num_classes == 19
    assert meta.dataset == "cityscapes" and meta.class_names[0] == "road"
    assert meta.source == "coincheung" and meta.weights == "checkpoint"
    assert not model.training
    # every tensor of the file went into the model, unchanged
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for key, tensor in state.items():
        assert torch.equal(loaded[key], tensor), key
    out = logits(model, X)
    assert out.shape == (1, 19, 64, 64)
    assert torch.equal(out, reference_output(state, 19, X))


def test_eval_mode_dict_without_aux_builds_no_aux_heads(tmp_path):
    state = synthetic_state_dict(aux=False)
    path = tmp_path / "eval.pth"
    torch.save(state, path)
    model, _meta = load_model(str(path))
    keys = set(model.state_dict())
    assert keys == set(state)
    assert not any(k.startswith("aux") for k in keys)
    assert torch.equal(logits(model, X), reference_output(state, 19, X))


def test_missing_num_batches_tracked_is_fine(tmp_path):
    state = {k: v for k, v in synthetic_state_dict(aux=False).items()
             if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "nbt.pth")
    model, _ = load_model(str(tmp_path / "nbt.pth"))
    assert torch.equal(logits(model, X), reference_output(
        {**build_model(COINCHEUNG_ARCH, 19, aux=False).state_dict(), **state}, 19, X))


@pytest.mark.parametrize("wrap", ["module", "state_dict", "model", "net", "module+state_dict",
                                  "state_dict+extras", "legacy"])
def test_prefixed_and_wrapped_files(tmp_path, wrap):
    state = synthetic_state_dict(aux=False, seed=3)
    obj = state
    if "module" in wrap:
        obj = {"module." + k: v for k, v in obj.items()}
    if "state_dict" in wrap:
        obj = {"state_dict": obj}
    if wrap in ("model", "net"):
        obj = {wrap: obj}
    if wrap == "state_dict+extras":
        obj = {"epoch": 7, "best_miou": 0.75, "state_dict": state}
    path = tmp_path / "wrapped.pth"
    torch.save(obj, path, _use_new_zipfile_serialization=(wrap != "legacy"))
    model, meta = load_model(str(path))
    assert meta.arch == COINCHEUNG_ARCH
    assert torch.equal(logits(model, X), reference_output(state, 19, X))


@pytest.mark.parametrize("wrap", ["whole", "compiled_inside_dataparallel",
                                  "dataparallel_inside_compiled", "one_submodule"])
@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_state_dicts_of_torch_compiled_models_load(tmp_path, wrap, fmt):
    """torch.compile keeps the model under `_orig_mod`, so the state dict of a compiled model (or
    of a model with a compiled submodule) carries that component in every key it wraps."""
    from safetensors.torch import save_file

    state = synthetic_state_dict(aux=False, seed=4)
    net = build_model(COINCHEUNG_ARCH, 19, aux=False)
    net.load_state_dict(state)
    if wrap == "whole":
        net = torch.compile(net)
    elif wrap == "compiled_inside_dataparallel":
        net = torch.nn.DataParallel(torch.compile(net))
    elif wrap == "dataparallel_inside_compiled":
        net = torch.compile(torch.nn.DataParallel(net))
    else:
        net.segment = torch.compile(net.segment)
    saved = net.state_dict()
    assert all("_orig_mod." in k for k in saved if wrap != "one_submodule" or "segment" in k)
    path = tmp_path / f"compiled.{fmt}"
    if fmt == "pth":
        torch.save(saved, path)
    else:
        save_file({k: v.contiguous() for k, v in saved.items()}, str(path))
    model, meta = load_model(str(path))
    assert meta.arch == COINCHEUNG_ARCH and set(model.state_dict()) == set(state)
    assert torch.equal(logits(model, X), reference_output(state, 19, X))


@pytest.mark.parametrize("classes,dataset,first", [(150, "ade20k", "wall"),
                                                   (171, "coco-stuff", "person"),
                                                   (7, "custom", "class_0")])
def test_class_count_read_from_head_selects_dataset(tmp_path, classes, dataset, first):
    path = tmp_path / f"model_{classes}.pth"
    torch.save(synthetic_state_dict(classes, aux=True), path)
    model, meta = load_model(str(path))
    assert meta.num_classes == classes and meta.dataset == dataset
    assert meta.class_names[0] == first and len(meta.palette) == classes
    assert logits(model, X).shape == (1, classes, 64, 64)


def test_dataset_override(tmp_path):
    path = tmp_path / "city.pth"
    torch.save(synthetic_state_dict(19, aux=False), path)
    _, meta = load_model(str(path), dataset="custom")
    assert meta.dataset == "custom" and meta.class_names[0] == "class_0"
    with pytest.raises(InputError, match="150 classes"):
        load_model(str(path), dataset="ade20k")


def test_contradicting_options_are_refused(tmp_path):
    path = tmp_path / "ade.pth"
    torch.save(synthetic_state_dict(150, aux=False), path)
    with pytest.raises(CheckpointError, match="150-class head.*--num-classes 19"):
        load_model(str(path), num_classes=19)
    _, meta = load_model(str(path), num_classes=150, arch=COINCHEUNG_ARCH)
    assert meta.num_classes == 150


def test_converted_to_our_format_gives_same_outputs(tmp_path):
    state = synthetic_state_dict(aux=True, seed=5)
    torch.save(state, tmp_path / "model_final_v2_city.pth")
    model, meta = load_model(str(tmp_path / "model_final_v2_city.pth"))
    save_checkpoint(tmp_path / "city.safetensors", model, meta)
    model2, meta2 = load_model(str(tmp_path / "city.safetensors"))
    assert meta2.source == "coincheung" and meta2.dataset == "cityscapes"
    assert set(model2.state_dict()) == set(state)  # aux heads kept for fine-tuning
    assert torch.equal(logits(model2, X), logits(model, X))


def test_missing_unexpected_and_mismatched_keys_are_listed(tmp_path):
    state = synthetic_state_dict(aux=False)
    del state["bga.conv.0.weight"]
    state["extra.layer.weight"] = torch.zeros(3)
    state["detail.S1.0.conv.weight"] = torch.zeros(32, 3, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as info:
        load_model(str(tmp_path / "bad.pth"))
    message = str(info.value)
    assert "1 missing: bga.conv.0.weight" in message
    assert "1 unexpected: extra.layer.weight" in message
    assert "detail.S1.0.conv.weight: file 32x3x3x3, model 64x3x3x3" in message


def test_long_key_lists_are_truncated(tmp_path):
    state = synthetic_state_dict(aux=False)
    removed = [k for k in state if k.startswith("segment.S4")]
    for key in removed:
        del state[key]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError) as info:
        load_model(str(tmp_path / "partial.pth"))
    message = str(info.value)
    missing = [k for k in removed if not k.endswith("num_batches_tracked")]
    assert f"{len(missing)} missing" in message
    assert f"and {len(missing) - 8} more" in message
    assert len(message) < 2000


def test_coincheung_file_with_wrong_arch_gets_a_hint(tmp_path):
    torch.save(synthetic_state_dict(aux=False), tmp_path / "city.pth")
    with pytest.raises(CheckpointError, match="looks like a CoinCheung BiSeNetV2 checkpoint"):
        load_model(str(tmp_path / "city.pth"), arch="bisenetv2")
