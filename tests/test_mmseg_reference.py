"""`bisenetv2-mmseg` against mmsegmentation itself: its EncoderDecoder built from its own
BiSeNetV2 Cityscapes config. Skipped, with the reason, where mmsegmentation is not installed:

    pip install mmsegmentation==1.2.2 mmengine "mmcv-lite<2.2" ftfy regex

mmcv-lite has no compiled `mmcv.ops`. mmsegmentation imports it when its package loads (for other
networks' heads and losses); BiSeNetV2 + FCNHead never call it. So where the compiled ops are
missing, a stand-in module whose every function raises takes its place: a call would fail here.
"""

import importlib.util
import os
import sys
import types

import numpy as np
import pytest
import torch

from bisenet_deploy.checkpoint import load_model
from bisenet_deploy.checkpoint.mmseg import MMSEG_ARCH
from test_checkpoint_mmseg import read_tsv
from test_model_coincheung import randomize

CONFIG = "bisenetv2/bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024.py"
CITY_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
                "bus", "train", "motorcycle", "bicycle")


def _stub_compiled_ops():
    if importlib.util.find_spec("mmcv._ext") is not None or "mmcv.ops" in sys.modules:
        return
    ops = types.ModuleType("mmcv.ops")

    def attribute(name):
        if name.startswith("__"):
            raise AttributeError(name)

        def called(*args, **kwargs):
            raise RuntimeError(f"mmcv.ops.{name} was called: not part of BiSeNetV2's path")
        return called

    ops.__getattr__ = attribute
    sys.modules["mmcv.ops"] = ops


@pytest.fixture(scope="module")
def mmseg():
    """(mmsegmentation's EncoderDecoder with random weights and BN statistics, its config)."""
    if importlib.util.find_spec("mmseg") is None or importlib.util.find_spec("mmengine") is None:
        pytest.skip("mmsegmentation is not installed (pip install mmsegmentation==1.2.2 mmengine "
                    "'mmcv-lite<2.2' ftfy regex)")
    _stub_compiled_ops()
    import mmseg as package
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    path = os.path.join(os.path.dirname(package.__file__), ".mim", "configs", CONFIG)
    if not os.path.isfile(path):
        pytest.skip(f"this mmsegmentation install ships no {CONFIG}")
    register_all_modules()
    config = Config.fromfile(path)
    settings = config.model.to_dict()

    def single_gpu_bn(node):  # SyncBN needs a process group; it saves and runs as BN
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "norm_cfg":
                    node[key] = dict(type="BN", requires_grad=True)
                else:
                    single_gpu_bn(value)
        elif isinstance(node, list):
            for value in node:
                single_gpu_bn(value)

    single_gpu_bn(settings)
    model = MODELS.build(settings)
    randomize(model, seed=12)  # weights and BN statistics
    return model.eval(), config


@pytest.fixture(scope="module")
def checkpoint(mmseg, tmp_path_factory):
    """The model saved as an mmengine training run saves it: meta with the config text and the
    dataset's classes, the message hub (HistoryBuffer, numpy values) beside the state dict."""
    from mmengine.logging import MessageHub

    model, config = mmseg
    hub = MessageHub.get_instance("bisenet-deploy-test")
    hub.update_scalar("train/loss", np.float32(0.75))
    hub.update_info("iter", 160000)
    path = tmp_path_factory.mktemp("mmseg") / "iter_160000.pth"
    torch.save({"meta": {"cfg": config.pretty_text, "seed": np.int64(0), "iter": 160000,
                         "dataset_meta": {"classes": CITY_CLASSES}},
                "state_dict": model.state_dict(), "message_hub": hub.state_dict()}, path)
    return str(path)


def encode_decode(model, x):
    height, width = x.shape[2:]
    metas = [dict(img_shape=(height, width), ori_shape=(height, width), pad_shape=(height, width))]
    with torch.no_grad():
        return model.encode_decode(x, metas)


def test_reference_table_is_mmsegmentations_state_dict(mmseg):
    model, _config = mmseg
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == dict(read_tsv())


@pytest.mark.parametrize("width,height",
                         [(512, 256), pytest.param(2048, 1024, marks=pytest.mark.slow)])
def test_logits_equal_encode_decode(mmseg, checkpoint, width, height):
    model, _config = mmseg
    ours, meta = load_model(checkpoint)
    assert (meta.arch, meta.dataset) == (MMSEG_ARCH, "cityscapes-mmseg")
    x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(width))
    ref = encode_decode(model, x)
    with torch.no_grad():
        got = ours(x)
    diff = (got - ref).abs().max().item()
    print(f"{width}x{height}: max |ours - mmseg encode_decode| = {diff:.3g} "
          f"(max |logit| {ref.abs().max().item():.3g})")
    assert diff <= 1e-5 * ref.abs().max().item()  # float32 rounding (measured: 0)


def test_image_to_logits_with_mmsegs_preprocessing(mmseg, checkpoint, tmp_path):
    """An image file through our torch runner (preset mean/std, in-graph normalization) against
    mmsegmentation reading it as BGR and its data preprocessor (bgr_to_rgb, mean/std on 0..255)."""
    import mmcv
    from PIL import Image

    from bisenet_deploy.metadata import build_record
    from bisenet_deploy.portable.running.preprocess import prepare_input
    from bisenet_deploy.runtime.factory import open_runner
    from bisenet_deploy.runtime.images import read_image
    from bisenet_deploy.runtime.torch_runner import default_export_info
    from bisenet_deploy.synthetic import synthetic_image

    model, _config = mmseg
    path = str(tmp_path / "street.png")
    Image.fromarray(synthetic_image(256, 128, seed=5)).save(path)
    bgr = mmcv.imread(path)  # what LoadImageFromFile does
    batch = model.data_preprocessor({"inputs": [torch.from_numpy(bgr).permute(2, 0, 1)]}, False)
    ref = encode_decode(model, batch["inputs"])

    ours, meta = load_model(checkpoint)
    record = build_record(meta)
    record["export"] = default_export_info(record["model"], input_size=[256, 128],
                                           model_size=[256, 128], output="logits")
    with open_runner("torch", record=record, model=ours) as runner:
        got = runner.infer(prepare_input(read_image(path), record))["logits"]
    ref = ref.numpy()
    scale = np.abs(ref).max()
    print(f"image 256x128: max |ours - mmseg| = {np.abs(got - ref).max():.3g} (max |logit| "
          f"{scale:.3g}), labels identical {(got.argmax(1) == ref.argmax(1)).mean():.6f}")
    assert np.abs(got - ref).max() <= 1e-4 * scale  # the normalization is folded into the convs
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.999
