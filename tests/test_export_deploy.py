"""DeployModule: the in-graph preprocessing is exactly the plain PyTorch preprocessing."""

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bisenet_deploy.errors import InputError
from bisenet_deploy.export.deploy_module import (
    DeployModule,
    find_input_convs,
    resize_scale,
)
from bisenet_deploy.export.pipeline import ExportOptions, export_onnx
from bisenet_deploy.metadata import ExportInfo, ModelMetadata, build_record
from bisenet_deploy.model import build_model

MEAN = [0.3257, 0.3690, 0.3223]
STD = [0.2112, 0.2148, 0.2115]


class TinySegNet(nn.Module):
    """Two convolutions read the image (like BiSeNet V2's detail S1 and stem), zero padding."""

    def __init__(self, num_classes=4):
        super().__init__()
        self.detail = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8),
                                    nn.ReLU())
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU(), nn.AvgPool2d(2))
        self.head = nn.Conv2d(8, num_classes, 1)

    def forward(self, x):
        d = self.detail(x)
        s = F.interpolate(self.stem(x), size=d.shape[2:], mode="bilinear", align_corners=False)
        s = s + s.mean(dim=(2, 3), keepdim=True)
        return F.interpolate(self.head(d * torch.sigmoid(s)), scale_factor=2.0, mode="bilinear",
                             align_corners=False)


def _meta(num_classes=4, order="rgb"):
    return ModelMetadata(arch="tiny", num_classes=num_classes, dataset="custom",
                         class_names=[f"c{i}" for i in range(num_classes)],
                         palette=[[i, i, i] for i in range(num_classes)], mean=MEAN, std=STD,
                         channel_order=order, weights="random-init", source="random-init")


def _record(meta, **kw):
    info = dict(input_name="image", input_size=[96, 64], model_size=[64, 32], input_dtype="float32",
                channel_order="rgb", normalize="in-graph", output="both",
                output_names=["labels", "logits"], target="trt10", precision="fp32", opset=17,
                batch={"dynamic": False, "size": 1})
    info.update(kw)
    return build_record(meta, ExportInfo(**info))


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    model = TinySegNet().eval()
    with torch.no_grad():  # non-trivial BN statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


def _pixels(n=1, w=96, h=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), generator=g).to(torch.float32)


def _plain(model, pixels_rgb, size_hw, out_hw):
    """The textbook pipeline: resize, (x/255 - mean)/std, model, resize logits, argmax."""
    x = F.interpolate(pixels_rgb, size=size_hw, mode="bilinear", align_corners=False)
    x = (x / 255.0 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    logits = F.interpolate(model(x), size=out_hw, mode="bilinear", align_corners=False)
    return logits.argmax(1).to(torch.int32), logits


@pytest.mark.parametrize("order, dtype", [("rgb", "float32"), ("bgr", "float32"), ("rgb", "uint8")])
def test_folded_normalization_equals_the_textbook_pipeline(tiny, order, dtype):
    record = _record(_meta(), channel_order=order, input_dtype=dtype)
    folded = DeployModule(tiny, record)
    assert folded.folded
    pixels = _pixels()
    graph_input = pixels[:, [2, 1, 0]] if order == "bgr" else pixels
    if dtype == "uint8":
        graph_input = graph_input.to(torch.uint8)
    with torch.no_grad():
        labels, logits = folded(graph_input)
        ref_labels, ref_logits = _plain(tiny, pixels, (32, 64), (64, 96))
    assert labels.dtype == torch.int32 and labels.shape == (1, 64, 96)
    assert logits.shape == (1, 4, 64, 96)
    rel = (logits - ref_logits).abs().max() / ref_logits.abs().max()
    assert rel < 1e-5
    assert (labels == ref_labels).float().mean() >= 0.9999


def test_folding_does_not_modify_the_callers_model(tiny):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    DeployModule(tiny, _record(_meta(), channel_order="bgr"))
    assert all(torch.equal(before[k], v) for k, v in tiny.state_dict().items())


def test_normalize_none_at_equal_sizes_is_the_model_itself(tiny):
    record = _record(_meta(), normalize="none", input_size=[64, 32], model_size=[64, 32])
    module = DeployModule(tiny, record)
    x = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        labels, logits = module(x)
        expected = tiny(x)
    assert torch.equal(logits, expected)
    assert torch.equal(labels, expected.argmax(1).to(torch.int32))


def test_equal_sizes_export_has_no_resize_on_the_input(tiny, tmp_path):
    path = tmp_path / "eq.onnx"
    export_onnx(ExportOptions(output_path=str(path), input_size=(64, 32), model_size=(64, 32),
                              normalize="none", target="trt8.2"), loaded=(tiny, _meta()))
    model = onnx.load(str(path))
    consumers = [n.op_type for n in model.graph.node if "image" in n.input]
    assert consumers and set(consumers) == {"Conv"}
    # with a resize the image goes through exactly one Resize first
    path2 = tmp_path / "rs.onnx"
    result = export_onnx(ExportOptions(output_path=str(path2), input_size=(96, 64),
                                       model_size=(64, 32), target="trt8.2"), loaded=(tiny, _meta()))
    model2 = onnx.load(str(path2))
    assert [n.op_type for n in model2.graph.node if "image" in n.input] == ["Resize"]
    assert result.parity.passed


def test_labels_are_argmax_of_logits_resized_to_the_input_size(tiny):
    module = DeployModule(tiny, _record(_meta()))
    with torch.no_grad():
        labels, logits = module(_pixels(2))
    assert torch.equal(labels, logits.argmax(1).to(torch.int32))
    assert labels.shape == (2, 64, 96)


def test_output_order_follows_the_record(tiny):
    module = DeployModule(tiny, _record(_meta(), output="logits", output_names=["logits"]))
    out = module(_pixels())
    assert len(out) == 1 and out[0].dtype == torch.float32
    with pytest.raises(InputError):
        DeployModule(tiny, _record(_meta()), output_names=("labels", "probabilities"))


@pytest.mark.parametrize("n_in, n_out", [(2048, 1024), (1024, 512), (1080, 512), (1920, 1024),
                                         (720, 352), (77, 64), (1000, 992), (33, 2048)])
def test_resize_scale_gives_the_exact_output_size(n_in, n_out):
    s = resize_scale(n_in, n_out)
    assert int(np.floor(n_in * s)) == n_out
    assert int(np.floor(np.float32(n_in) * np.float32(s))) == n_out
    assert abs(s - n_out / n_in) < 1e-6 * (n_out / n_in)


def test_dynamic_batch_resize_by_scale_matches_resize_by_size(tiny):
    static = DeployModule(tiny, _record(_meta(), input_size=[100, 60], model_size=[64, 32]))
    dynamic = DeployModule(tiny, _record(_meta(), input_size=[100, 60], model_size=[64, 32],
                                         batch={"dynamic": True, "min": 1, "opt": 2, "max": 4}))
    x = _pixels(2, w=100, h=60)
    with torch.no_grad():
        a, b = static(x)[1], dynamic(x)[1]
    assert a.shape == b.shape == (2, 4, 60, 100)
    # the float32 scale moves sampling positions by < 1e-5 pixel: far inside the FP32 tolerance
    assert (a - b).abs().max() <= 1e-4 * a.abs().max()
    assert torch.equal(static(x)[0], dynamic(x)[0]) or \
        (static(x)[0] == dynamic(x)[0]).float().mean() >= 0.9999


@pytest.mark.parametrize("arch", ["bisenetv2-coincheung", "bisenetv2"])
def test_the_real_networks_have_exactly_two_image_convolutions(arch):
    names = [n for n, _ in find_input_convs(build_model(arch, 19, aux=False))]
    assert len(names) == 2, names
    assert any(n.startswith("detail") for n in names)


class ThreeChannelFeatureNet(TinySegNet):
    """A second 3-input-channel convolution that reads a feature map, not the image."""

    def __init__(self):
        super().__init__()
        self.detail = nn.Sequential(nn.Conv2d(3, 3, 3, 2, 1, bias=False), nn.BatchNorm2d(3),
                                    nn.ReLU(), nn.Conv2d(3, 8, 3, 1, 1, bias=False))


class RawImageReuseNet(TinySegNet):
    """Uses the raw image outside the image convolutions: folding would change the output."""

    def forward(self, x):
        return super().forward(x) + 0.1 * x.mean(dim=1, keepdim=True)[:, :, ::2, ::2].mean()


def _folded_vs_plain(net):
    record = _record(_meta())
    folded, plain = DeployModule(net, record), DeployModule(net, record, fold_normalization=False)
    with torch.no_grad():
        a, b = folded(_pixels())[1], plain(_pixels())[1]
    return folded, float((a - b).abs().max() / b.abs().max())


def test_only_convolutions_reading_the_image_itself_get_the_folding():
    torch.manual_seed(0)
    net = ThreeChannelFeatureNet().eval()
    assert [n for n, _ in find_input_convs(net)] == ["detail.0", "stem.0"]
    folded, error = _folded_vs_plain(net)
    assert folded.folded and error <= 1e-5


def test_folding_is_refused_when_the_network_reuses_the_raw_image(caplog):
    torch.manual_seed(0)
    with caplog.at_level("WARNING"):
        folded, error = _folded_vs_plain(RawImageReuseNet().eval())
    assert not folded.folded and error <= 1e-6
    assert "normalization stays explicit" in caplog.text


def test_half_on_the_module_computes_in_fp16_and_returns_fp32_logits(tiny):
    """The torch runner may call `.half()` on the module: the input follows the network's dtype."""
    module = DeployModule(tiny, _record(_meta())).half()
    labels, logits = module(_pixels())
    assert logits.dtype == torch.float32 and labels.dtype == torch.int32
    ref = DeployModule(tiny, _record(_meta()))(_pixels())[1]
    assert (logits - ref).abs().max() <= 2e-2 * ref.abs().max()
