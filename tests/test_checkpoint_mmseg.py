"""mmsegmentation BiSeNetV2 checkpoints, built from the key/shape table of its Cityscapes config.

`tests/data/mmseg_bisenetv2_cityscapes_state_dict.tsv` lists the 385 keys of a checkpoint's
"state_dict" (mmsegmentation 1.2.2, bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024). The fixtures fill
them with random tensors and save them as mmsegmentation does (`{"meta", "state_dict"}`). The
outputs are checked against `MmsegRef`, a functional forward written from mmsegmentation's
BiSeNetV2 + FCN head that reads mmsegmentation's own key names (no rename table, no shared
modules); `test_mmseg_reference.py` checks against mmsegmentation itself where it is installed.
"""

import functools
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bisenet_deploy.checkpoint import load_model, save_checkpoint
from bisenet_deploy.checkpoint.mmseg import MMSEG_ARCH, normalization_from_config, rename_key
from bisenet_deploy.datasets import IMAGENET_MEAN, IMAGENET_STD, get_dataset
from bisenet_deploy.errors import CheckpointError
from bisenet_deploy.model import build_model

TSV = Path(__file__).parent / "data" / "mmseg_bisenetv2_cityscapes_state_dict.tsv"
CITY_CONFIG_TEXT = ("data_preprocessor = dict(\n    type='SegDataPreProcessor',\n"
                    "    mean=[123.675, 116.28, 103.53],\n    std=[58.395, 57.12, 57.375],\n"
                    "    bgr_to_rgb=True, pad_val=0, seg_pad_val=255)\n")


def read_tsv():
    rows = []
    for line in TSV.read_text().splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("key\t"):
            continue
        key, shape = line.split("\t")
        rows.append((key, () if shape == "scalar" else tuple(int(v) for v in shape.split("x"))))
    return rows


def mmseg_state_dict(num_classes=19, seed=0, aux=True):
    """Random tensors of the table's shapes (class dims set to `num_classes`), BN stats sane."""
    return dict(_mmseg_state_dict(num_classes, seed, aux))


@functools.lru_cache(maxsize=None)
def _mmseg_state_dict(num_classes, seed, aux):
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in read_tsv():
        if not aux and key.startswith("auxiliary_head."):
            continue
        if key.endswith(("conv_seg.weight", "conv_seg.bias")):
            shape = (num_classes,) + shape[1:]
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(160000, dtype=torch.long)
        elif key.endswith("running_var") or (key.endswith(".weight") and len(shape) == 1):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith(("running_mean", ".bias")):
            state[key] = torch.randn(shape, generator=gen) * 0.2
        else:
            fan_in = int(np.prod(shape[1:]))
            state[key] = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5
    return state


def save_mmseg(path, state, meta=None):
    """A checkpoint as mmsegmentation writes it (the published mmcv-1.x form by default)."""
    if meta is None:
        meta = {"mmseg_version": "0.17.0+abcdef0", "config": CITY_CONFIG_TEXT,
                "CLASSES": ("road", "sidewalk", "building", "wall", "fence", "pole",
                            "traffic light", "traffic sign", "vegetation", "terrain", "sky",
                            "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                            "bicycle"),
                "PALETTE": [[128, 64, 128]] * 19, "epoch": 1, "iter": 160000,
                "hook_msgs": {"last_ckpt": "/work/iter_160000.pth"}}
    torch.save({"meta": meta, "state_dict": state}, path)
    return str(path)


class MmsegRef:
    """Eval forward of mmsegmentation's EncoderDecoder(BiSeNetV2, FCNHead) from its state dict."""

    def __init__(self, sd):
        self.sd = sd

    def conv(self, x, key, stride=1):
        w = self.sd[key + ".weight"]
        return F.conv2d(x, w, self.sd.get(key + ".bias"), stride=stride,
                        padding=w.shape[-1] // 2, groups=x.shape[1] // w.shape[1])

    def bn(self, x, key):
        s = self.sd
        return F.batch_norm(x, s[key + ".running_mean"], s[key + ".running_var"],
                            s[key + ".weight"], s[key + ".bias"], training=False, eps=1e-5)

    def cm(self, x, key, stride=1, relu=True):  # mmcv ConvModule: conv, bn[, relu]
        y = self.bn(self.conv(x, key + ".conv", stride), key + ".bn")
        return F.relu(y) if relu else y

    def ge(self, x, key, stride):
        y = self.cm(x, key + ".conv1")
        if stride == 2:
            y = self.cm(y, key + ".dwconv.0", 2, relu=False)
            y = self.cm(y, key + ".dwconv.1")
            short = self.cm(x, key + ".shortcut.0.depthwise_conv", 2, relu=False)
            short = self.cm(short, key + ".shortcut.0.pointwise_conv", relu=False)
        else:
            y = self.cm(y, key + ".dwconv.0")
            short = x
        return F.relu(self.cm(y, key + ".conv2.0", relu=False) + short)

    def forward(self, x):
        b = "backbone."
        d = x
        for i, n in enumerate((2, 3, 3)):
            for j in range(n):
                d = self.cm(d, f"{b}detail.detail_branch.{i}.{j}", 2 if j == 0 else 1)
        s = self.cm(x, b + "semantic.stage1.conv_first", 2)
        left = self.cm(self.cm(s, b + "semantic.stage1.convs.0"), b + "semantic.stage1.convs.1", 2)
        s = self.cm(torch.cat([left, F.max_pool2d(s, 3, 2, 1)], 1), b + "semantic.stage1.fuse_last")
        for stage, n in ((2, 2), (3, 2), (4, 4)):
            for j in range(n):
                s = self.ge(s, f"{b}semantic.stage{stage}.{j}", 2 if j == 0 else 1)
        ce = b + "semantic.stage4_CEBlock"
        gap = self.bn(F.adaptive_avg_pool2d(s, 1), ce + ".gap.1")
        s = self.cm(s + self.cm(gap, ce + ".conv_gap"), ce + ".conv_last")
        g = b + "bga."
        size = d.shape[2:]
        detail_dw = self.conv(self.cm(d, g + "detail_dwconv.0.depthwise_conv", relu=False),
                              g + "detail_dwconv.0.pointwise_conv.conv")
        detail_down = F.avg_pool2d(self.cm(d, g + "detail_down.0", 2, relu=False), 3, 2, 1)
        sem_conv = F.interpolate(self.cm(s, g + "semantic_conv.0", relu=False), size=size,
                                 mode="bilinear", align_corners=False)
        sem_dw = self.conv(self.cm(s, g + "semantic_dwconv.0.depthwise_conv", relu=False),
                           g + "semantic_dwconv.0.pointwise_conv.conv")
        fuse = detail_dw * torch.sigmoid(sem_conv) + F.interpolate(
            detail_down * torch.sigmoid(sem_dw), size=size, mode="bilinear", align_corners=False)
        feat = self.cm(fuse, g + "conv")
        logits = self.conv(self.cm(feat, "decode_head.convs.0"), "decode_head.conv_seg")
        return F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)


def outputs(model, x):
    with torch.no_grad():
        return model(x)


X = torch.randn(1, 3, 64, 128, generator=torch.Generator().manual_seed(3))


def test_reference_table_is_complete():
    rows = read_tsv()
    assert len(rows) == 385
    assert sum(1 for k, _ in rows if k.startswith("auxiliary_head.")) == 56
    assert sum(1 for k, _ in rows if k.startswith(("backbone.", "decode_head."))) == 329


def test_every_inference_key_renames_onto_the_mmseg_network():
    expected = {k: tuple(v.shape) for k, v in build_model(MMSEG_ARCH, 19, aux=False)
                .state_dict().items()}
    renamed = {rename_key(k): s for k, s in read_tsv() if not k.startswith("auxiliary_head.")}
    assert renamed == expected
    # the only tensors the CoinCheung layout lacks: the biases of the aggregation's 1x1 convs
    coincheung = set(build_model("bisenetv2-coincheung", 19, aux=False).state_dict())
    assert set(renamed) - coincheung == {"bga.left1.2.bias", "bga.right2.2.bias"}


def test_checkpoint_alone_loads_as_mmseg_does(tmp_path):
    state = mmseg_state_dict()
    model, meta = load_model(save_mmseg(tmp_path / "bisenetv2_city.pth", state))
    assert meta.arch == MMSEG_ARCH and meta.source == "mmsegmentation"
    assert meta.dataset == "cityscapes-mmseg" and meta.class_names[0] == "road"
    assert meta.mean == list(IMAGENET_MEAN) and meta.std == list(IMAGENET_STD)
    assert meta.channel_order == "rgb" and meta.train_size == [1024, 1024]
    assert not model.training and not model.has_aux
    loaded = model.state_dict()
    inference = {k: v for k, v in state.items() if not k.startswith("auxiliary_head.")}
    assert len(loaded) == len(inference) == 329
    for key, tensor in inference.items():  # every inference tensor consumed, unchanged
        assert torch.equal(loaded[rename_key(key)], tensor), key
    ref = MmsegRef(state).forward(X)
    got = outputs(model, X)
    assert got.shape == (1, 19, 64, 128)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5 * ref.abs().max().item())


def test_outputs_equal_the_reference_in_float64():
    # in float64 any structural difference (nearest vs bilinear, a missing bias) stands out
    state = {k: (v.double() if v.is_floating_point() else v)
             for k, v in mmseg_state_dict(num_classes=5, seed=4, aux=False).items()}
    model = build_model(MMSEG_ARCH, 5, aux=False).double().eval()
    model.load_state_dict({rename_key(k): v for k, v in state.items()})
    x = torch.randn(1, 3, 64, 96, dtype=torch.float64)
    ref = MmsegRef(state).forward(x)
    torch.testing.assert_close(outputs(model, x), ref, rtol=1e-10, atol=1e-10)
    coincheung_like = build_model("bisenetv2-coincheung", 5, aux=False).double().eval()
    coincheung_like.load_state_dict({k: v for k, v in model.state_dict().items()
                                     if k not in ("bga.left1.2.bias", "bga.right2.2.bias")})
    assert (outputs(coincheung_like, x) - ref).abs().max() > 1e-3  # the test can tell them apart


def test_wrapped_prefixed_and_meta_less_files_load(tmp_path):
    state = mmseg_state_dict(aux=False)
    path = tmp_path / "ddp.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, path)
    model, meta = load_model(str(path))
    assert (meta.arch, meta.dataset, meta.num_classes) == (MMSEG_ARCH, "cityscapes-mmseg", 19)
    torch.testing.assert_close(outputs(model, X), MmsegRef(state).forward(X))


def test_torch_compile_prefixed_files_load(tmp_path):
    """mmengine's `compile=True` trains a torch.compile'd model: its keys carry `_orig_mod.`."""
    state = mmseg_state_dict(aux=True)
    path = tmp_path / "compiled.pth"
    torch.save({"meta": {}, "state_dict": {"_orig_mod." + k: v for k, v in state.items()}}, path)
    model, meta = load_model(str(path))
    assert (meta.arch, meta.dataset, meta.num_classes) == (MMSEG_ARCH, "cityscapes-mmseg", 19)
    torch.testing.assert_close(outputs(model, X), MmsegRef(state).forward(X))


def test_meta_classes_palette_and_config_normalization_are_used(tmp_path):
    state = mmseg_state_dict(num_classes=2)
    meta = {"cfg": "img_norm_cfg = dict(\n    mean=[100.0, 110.0, 120.0],\n"
                   "    std=[50.0, 51.0, 52.0], to_rgb=False)\n",
            "dataset_meta": {"classes": ("background", "crack"),
                             "palette": [[0, 0, 0], [255, 0, 0]]}}
    _model, info = load_model(save_mmseg(tmp_path / "cracks.pth", state, meta))
    assert info.class_names == ["background", "crack"]
    assert info.palette == [[0, 0, 0], [255, 0, 0]]
    assert info.channel_order == "bgr"
    np.testing.assert_allclose(info.mean, [100 / 255, 110 / 255, 120 / 255])
    np.testing.assert_allclose(info.std, [50 / 255, 51 / 255, 52 / 255])
    # --dataset overrides what the file says
    _model, info = load_model(str(tmp_path / "cracks.pth"), dataset="custom")
    assert info.class_names == ["class_0", "class_1"]


def test_cityscapes_mmseg_preset():
    city, mmseg = get_dataset("cityscapes"), get_dataset("city-mmseg")
    assert mmseg.name == "cityscapes-mmseg"
    assert (mmseg.class_names, mmseg.palette) == (city.class_names, city.palette)
    assert (mmseg.mean, mmseg.std, mmseg.channel_order) == (list(IMAGENET_MEAN),
                                                           list(IMAGENET_STD), "rgb")
    # mmsegmentation's values on 0..255, as the exported graph applies them
    np.testing.assert_allclose(np.float32(mmseg.mean) * 255, [123.675, 116.28, 103.53], rtol=1e-6)
    np.testing.assert_allclose(np.float32(mmseg.std) * 255, [58.395, 57.12, 57.375], rtol=1e-6)


def test_config_normalization_parsing():
    mean, std, order = normalization_from_config(CITY_CONFIG_TEXT)
    np.testing.assert_allclose(mean, IMAGENET_MEAN)
    np.testing.assert_allclose(std, IMAGENET_STD)
    assert order == "rgb"
    assert normalization_from_config("model = dict(type='EncoderDecoder')") is None


def test_bisenet_deploy_roundtrip_keeps_the_family(tmp_path):
    state = mmseg_state_dict(aux=False)
    model, meta = load_model(save_mmseg(tmp_path / "mm.pth", state))
    out = save_checkpoint(tmp_path / "mm.safetensors", model, meta)
    again, meta2 = load_model(out)
    assert (meta2.arch, meta2.dataset, meta2.mean) == (MMSEG_ARCH, "cityscapes-mmseg", meta.mean)
    assert torch.equal(outputs(again, X), outputs(model, X))
    # a plain state dict of the network (our key names) is recognised by the two BGA biases
    torch.save(model.state_dict(), tmp_path / "plain.pth")
    assert load_model(str(tmp_path / "plain.pth")).metadata.arch == MMSEG_ARCH


def one_line(exc_info):
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_wrong_arch_names_the_family(tmp_path):
    path = save_mmseg(tmp_path / "mm.pth", mmseg_state_dict(aux=False))
    with pytest.raises(CheckpointError) as exc:
        load_model(path, arch="bisenetv2-coincheung")
    message = one_line(exc)
    assert "bga.left1.2.bias" in message
    assert "an mmsegmentation BiSeNetV2 checkpoint" in message
    assert "--arch bisenetv2-mmseg" in message


def test_other_mmseg_networks_and_heads_are_refused_in_one_line(tmp_path):
    pspnet = {"backbone.conv1.weight": torch.zeros(64, 3, 7, 7),
              "backbone.layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1),
              "decode_head.conv_seg.weight": torch.zeros(19, 512, 1, 1)}
    with pytest.raises(CheckpointError) as exc:
        load_model(save_mmseg(tmp_path / "psp.pth", pspnet, meta={}))
    assert "mmsegmentation checkpoint of another network" in one_line(exc)
    torchvision = {"backbone.conv1.weight": torch.zeros(64, 3, 7, 7),
                   "classifier.4.weight": torch.zeros(21, 256, 1, 1)}
    with pytest.raises(CheckpointError) as exc:  # a backbone but no decode head: not mmseg's
        load_model(save_mmseg(tmp_path / "deeplab.pth", torchvision, meta={}))
    assert "is not a BiSeNetV2 checkpoint this toolkit knows" in one_line(exc)
    two_convs = mmseg_state_dict(aux=False)
    two_convs["decode_head.convs.1.conv.weight"] = torch.zeros(1024, 1024, 3, 3)
    with pytest.raises(CheckpointError) as exc:
        load_model(save_mmseg(tmp_path / "fcn2.pth", two_convs, meta={}))
    assert "decode_head.convs.1.conv.weight" in one_line(exc)


def test_aux_heads_are_checked_not_loaded(tmp_path):
    state = mmseg_state_dict()
    state["auxiliary_head.2.conv_seg.weight"] = torch.zeros(7, 256, 1, 1)
    with pytest.raises(CheckpointError) as exc:
        load_model(save_mmseg(tmp_path / "bad_aux.pth", state))
    assert "auxiliary_head.2.conv_seg.weight predicts 7 classes" in one_line(exc)
    # the training-mode network has mmsegmentation's FCN booster heads (two convs each)
    model = build_model(MMSEG_ARCH, 19, aux=True)
    aux = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith("aux")}
    names = ("aux2", "aux3", "aux4", "aux5_4")
    table = {names[int(k.split(".")[1])] + k[len("auxiliary_head.0"):]: s
             for k, s in read_tsv() if k.startswith("auxiliary_head.")}
    assert aux == table
    model.train()
    outs = model(torch.randn(2, 3, 64, 64))
    assert len(outs) == 5 and all(o.shape == (2, 19, 64, 64) for o in outs)


@pytest.fixture
def fake_mmengine(monkeypatch):
    """A stand-in `mmengine.logging.history_buffer.HistoryBuffer`, so a file can be pickled the way
    an mmengine training run saves its message hub without mmengine installed."""
    module = types.ModuleType("mmengine.logging.history_buffer")

    class HistoryBuffer:
        def __init__(self):
            self._log_history = np.array([1.5, 1.25])
            self._count_history = np.array([1, 1])

    HistoryBuffer.__module__, HistoryBuffer.__qualname__ = module.__name__, "HistoryBuffer"
    module.HistoryBuffer = HistoryBuffer
    for name in ("mmengine", "mmengine.logging"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return HistoryBuffer


def test_mmengine_training_bookkeeping_is_read_inertly(tmp_path, fake_mmengine):
    state = mmseg_state_dict(aux=False)
    path = tmp_path / "iter_160000.pth"
    torch.save({"meta": {"cfg": CITY_CONFIG_TEXT, "seed": np.int64(7)}, "state_dict": state,
                "message_hub": {"log_scalars": {"train/loss": fake_mmengine()}}}, path)
    with pytest.raises(pickle.UnpicklingError):  # what plain weights_only makes of it
        torch.load(path, weights_only=True)
    model, meta = load_model(str(path))
    assert meta.arch == MMSEG_ARCH
    torch.testing.assert_close(outputs(model, X), MmsegRef(state).forward(X))


def test_other_pickled_objects_are_still_refused(tmp_path, monkeypatch):
    module = types.ModuleType("trainer_utils")

    class Callback:
        pass

    Callback.__module__, Callback.__qualname__ = module.__name__, "Callback"
    module.Callback = Callback
    monkeypatch.setitem(sys.modules, module.__name__, module)
    path = tmp_path / "with_object.pth"
    torch.save({"meta": {"hook": Callback()}, "state_dict": mmseg_state_dict(aux=False)}, path)
    with pytest.raises(CheckpointError) as exc:
        load_model(str(path))
    assert "pickled Python objects (trainer_utils.Callback)" in one_line(exc)


@pytest.mark.slow
def test_export_onnx_takes_the_mmseg_checkpoint_alone(tmp_path, monkeypatch, capsys):
    """`bisenet-export onnx --checkpoint <mmseg .pth>` with every default (2048x1024 -> 1024x512,
    parity against PyTorch), writing into the default export/ folder."""
    from bisenet_deploy.cli.export_main import main
    from bisenet_deploy.cli.export_onnx import default_target
    from bisenet_deploy.export.onnx_metadata import read_record

    path = save_mmseg(tmp_path / "bisenetv2_fcn_city.pth", mmseg_state_dict())
    monkeypatch.chdir(tmp_path)
    assert main(["onnx", "--checkpoint", path, "-q"]) == 0
    written = sorted((tmp_path / "export").glob("*.onnx"))
    # the default target is the installed TensorRT's (trt11 with TensorRT-RTX, trt10 without one)
    assert [p.name for p in written] == [
        f"bisenetv2-mmseg-cityscapes-mmseg-2048x1024-to-1024x512-labels-{default_target()}.onnx"]
    model = read_record(str(written[0]))["model"]
    assert (model["arch"], model["source"], model["mean"]) == (MMSEG_ARCH, "mmsegmentation",
                                                               list(IMAGENET_MEAN))
    assert "parity  labels identical" in capsys.readouterr().out
