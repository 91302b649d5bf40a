"""`bisenetv2` computes what docs/architecture.md says the paper draws: checked against a functional
forward written from that description (BN/ReLU placements, the expanding gather conv, bilinear
aggregation, head without dropout), reading the weights straight from the state dict."""

import pytest
import torch
import torch.nn.functional as F

from bisenet_deploy.model import build_model, paper
from test_model_coincheung import Ref, randomize


class PaperRef(Ref):
    """The paper network's forward; detail branch and stem as in the community reference."""

    def conv(self, x, key, stride=1, bias=None):
        w = self.sd[key + ".weight"]
        b = self.sd.get(key + ".bias")  # the paper's convs without BN carry a bias
        return F.conv2d(x, w, b, stride=stride, padding=w.shape[-1] // 2,
                        groups=x.shape[1] // w.shape[1])

    def ge(self, x, key, stride):
        feat = self.cbr(x, key + ".conv1")  # gather + expand: C -> 6C
        assert feat.shape[1] == 6 * x.shape[1]
        if stride == 1:
            feat = self.bn(self.conv(feat, key + ".dwconv.0"), key + ".dwconv.1")  # no ReLU
            return F.relu(self.bn(self.conv(feat, key + ".conv2.0"), key + ".conv2.1") + x)
        feat = self.bn(self.conv(feat, key + ".dwconv1.0", 2), key + ".dwconv1.1")
        feat = self.bn(self.conv(feat, key + ".dwconv2.0"), key + ".dwconv2.1")
        feat = self.bn(self.conv(feat, key + ".conv2.0"), key + ".conv2.1")
        short = self.bn(self.conv(x, key + ".shortcut.0", 2), key + ".shortcut.1")
        short = self.bn(self.conv(short, key + ".shortcut.2"), key + ".shortcut.3")
        return F.relu(feat + short)

    def forward(self, x, n_ge=(2, 2, 4)):
        d = self.detail(x)
        s = self.stem(x)
        for stage, n in zip(("S3", "S4", "S5_4"), n_ge):
            for i in range(n):
                s = self.ge(s, f"segment.{stage}.{i}", 2 if i == 0 else 1)
        g = self.cbr(self.bn(s.mean(dim=(2, 3), keepdim=True), "segment.S5_5.bn"),
                     "segment.S5_5.conv_gap")
        s = self.conv(s + g, "segment.S5_5.conv_last")  # plain conv, no BN/ReLU
        up = lambda t: F.interpolate(t, scale_factor=4.0, mode="bilinear", align_corners=False)  # noqa: E731
        left1 = self.conv(self.bn(self.conv(d, "bga.left1.0"), "bga.left1.1"), "bga.left1.2")
        left2 = F.avg_pool2d(self.bn(self.conv(d, "bga.left2.0", 2), "bga.left2.1"), 3, 2, 1)
        right1 = self.bn(self.conv(s, "bga.right1.0"), "bga.right1.1")
        right2 = self.conv(self.bn(self.conv(s, "bga.right2.0"), "bga.right2.1"), "bga.right2.2")
        fused = left1 * torch.sigmoid(up(right1)) + up(left2 * torch.sigmoid(right2))
        feat = self.bn(self.conv(fused, "bga.conv.0"), "bga.conv.1")  # no ReLU
        logits = self.conv(self.cbr(feat, "head.conv"), "head.conv_out.0")
        return F.interpolate(logits, scale_factor=8.0, mode="bilinear", align_corners=False)


@pytest.mark.parametrize("height,width", [(64, 64), (64, 128)])
def test_paper_network_equals_its_description(height, width):
    model = build_model("bisenetv2", 5, head_mid_channels=48).eval().double()
    randomize(model, seed=11)
    x = torch.randn(2, 3, height, width, dtype=torch.float64)
    with torch.no_grad():
        ours = model(x)
        ref = PaperRef(model.state_dict()).forward(x)
    assert ours.shape == (2, 5, height, width)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10 * ref.abs().max().item())


def test_deeper_network_equals_its_description():
    model = paper.build(3, aux=False, depth=2.0, head_mid_channels=32).eval().double()
    randomize(model, seed=5)
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        ours = model(x)
        ref = PaperRef(model.state_dict()).forward(x, n_ge=(4, 4, 8))
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10 * ref.abs().max().item())


def test_head_mid_channels_and_defaults():
    assert build_model("bisenetv2", 19).head.conv.conv.out_channels == 384
    assert build_model("bisenetv2", 19, head_mid_channels=1024).head.conv.conv.out_channels == 1024
    assert build_model("bisenetv2-coincheung", 19).head.conv.conv.out_channels == 1024
    model = build_model("bisenetv2", 19)
    assert [getattr(model, n).conv.conv.in_channels for n in ("aux2", "aux3", "aux4", "aux5_4")] \
        == [16, 32, 64, 128]


def test_paper_and_community_weights_are_not_interchangeable():
    paper_sd = build_model("bisenetv2", 19).state_dict()
    community = build_model("bisenetv2-coincheung", 19)
    with pytest.raises(RuntimeError):
        community.load_state_dict(paper_sd, strict=True)
