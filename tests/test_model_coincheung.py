"""`bisenetv2-coincheung` equals the public CoinCheung/BiSeNet network: same state_dict layout as the
reference .tsv, and the same outputs as an independent functional re-implementation that reads the
weights straight from the state dict (written from docs/checkpoints.md, sharing no modules)."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bisenet_deploy.model import build_model

TSV = Path(__file__).parent / "data" / "coincheung_bisenetv2_state_dict.tsv"


def read_tsv():
    rows = []
    for line in TSV.read_text().splitlines():
        if not line.strip():
            continue
        key, shape = line.split("\t")
        rows.append((key, () if shape == "scalar" else tuple(int(v) for v in shape.split("x"))))
    return rows


def synthetic_state_dict(rows, seed=0):
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in rows:
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            sd[key] = torch.randn(shape, generator=gen) * 0.1
    return sd


def randomize(model, seed=0):
    """Random weights AND random BN statistics, so a wrong BN placement cannot hide."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var") or (name.endswith(".weight") and tensor.dim() == 1):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean") or name.endswith(".bias"):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.2)
            else:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * (2.0 / fan_in) ** 0.5)


# ---------------------------------------------------------------- independent functional reference

class Ref:
    """Eval-mode forward of the community network from a plain state dict."""

    def __init__(self, sd):
        self.sd = sd

    def conv(self, x, key, stride=1, bias=False):
        w = self.sd[key + ".weight"]
        groups = x.shape[1] // w.shape[1]
        b = self.sd[key + ".bias"] if bias else None
        return F.conv2d(x, w, b, stride=stride, padding=w.shape[-1] // 2, groups=groups)

    def bn(self, x, key):
        s = self.sd
        return F.batch_norm(x, s[key + ".running_mean"], s[key + ".running_var"], s[key + ".weight"],
                            s[key + ".bias"], training=False, momentum=0.0, eps=1e-5)

    def cbr(self, x, key, stride=1):
        return F.relu(self.bn(self.conv(x, key + ".conv", stride), key + ".bn"))

    def ge(self, x, key, stride):
        feat = self.cbr(x, key + ".conv1")
        if stride == 1:
            feat = F.relu(self.bn(self.conv(feat, key + ".dwconv.0"), key + ".dwconv.1"))
            feat = self.bn(self.conv(feat, key + ".conv2.0"), key + ".conv2.1")
            return F.relu(feat + x)
        feat = self.bn(self.conv(feat, key + ".dwconv1.0", 2), key + ".dwconv1.1")
        feat = F.relu(self.bn(self.conv(feat, key + ".dwconv2.0"), key + ".dwconv2.1"))
        feat = self.bn(self.conv(feat, key + ".conv2.0"), key + ".conv2.1")
        short = self.bn(self.conv(x, key + ".shortcut.0", 2), key + ".shortcut.1")
        short = self.bn(self.conv(short, key + ".shortcut.2"), key + ".shortcut.3")
        return F.relu(feat + short)

    def detail(self, x):
        for stage, n in (("S1", 2), ("S2", 3), ("S3", 3)):
            for i in range(n):
                x = self.cbr(x, f"detail.{stage}.{i}", 2 if i == 0 else 1)
        return x

    def stem(self, x):
        s = self.cbr(x, "segment.S1S2.conv", 2)
        left = self.cbr(self.cbr(s, "segment.S1S2.left.0"), "segment.S1S2.left.1", 2)
        right = F.max_pool2d(s, 3, 2, 1)
        return self.cbr(torch.cat([left, right], 1), "segment.S1S2.fuse")

    def forward(self, x):
        d = self.detail(x)
        s = self.stem(x)
        for stage, n in (("S3", 2), ("S4", 2), ("S5_4", 4)):
            for i in range(n):
                s = self.ge(s, f"segment.{stage}.{i}", 2 if i == 0 else 1)
        # context embedding
        g = self.bn(s.mean(dim=(2, 3), keepdim=True), "segment.S5_5.bn")
        g = self.cbr(g, "segment.S5_5.conv_gap")
        s = self.cbr(s + g, "segment.S5_5.conv_last")
        # aggregation
        left1 = self.conv(self.bn(self.conv(d, "bga.left1.0"), "bga.left1.1"), "bga.left1.2")
        left2 = F.avg_pool2d(self.bn(self.conv(d, "bga.left2.0", 2), "bga.left2.1"), 3, 2, 1)
        right1 = self.bn(self.conv(s, "bga.right1.0"), "bga.right1.1")
        right2 = self.conv(self.bn(self.conv(s, "bga.right2.0"), "bga.right2.1"), "bga.right2.2")
        right1 = F.interpolate(right1, scale_factor=4.0, mode="nearest")
        fused = left1 * torch.sigmoid(right1) + F.interpolate(
            left2 * torch.sigmoid(right2), scale_factor=4.0, mode="nearest")
        feat = F.relu(self.bn(self.conv(fused, "bga.conv.0"), "bga.conv.1"))
        # head
        feat = self.cbr(feat, "head.conv")
        logits = self.conv(feat, "head.conv_out.1", bias=True)
        return F.interpolate(logits, scale_factor=8.0, mode="bilinear", align_corners=False)

    def aux(self, feat, key, up):
        feat = self.cbr(feat, key + ".conv")
        feat = F.interpolate(feat, scale_factor=2.0, mode="nearest")
        feat = self.cbr(feat, key + ".conv_out.0.1")
        logits = self.conv(feat, key + ".conv_out.1", bias=True)
        return F.interpolate(logits, scale_factor=float(up // 2), mode="bilinear", align_corners=False)


# ---------------------------------------------------------------------------------------- tests

def test_state_dict_layout_equals_reference_tsv():
    rows = read_tsv()
    assert len(rows) == 383
    model = build_model("bisenetv2-coincheung", 19)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert list(ours) == [k for k, _ in rows]  # same keys, same order
    assert ours == dict(rows)


def test_state_dict_without_aux_is_reference_minus_aux_keys():
    rows = [(k, s) for k, s in read_tsv() if not k.startswith("aux")]
    assert len(rows) == 383 - 56
    model = build_model("bisenetv2-coincheung", 19, aux=False)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == dict(rows)
    assert sum(p.numel() for p in model.parameters()) == 3_358_627
    assert not any(name.startswith("aux") for name, _ in model.named_modules() if name)


def test_synthetic_tsv_state_dict_loads_strictly():
    sd = synthetic_state_dict(read_tsv())
    model = build_model("bisenetv2-coincheung", 19)
    result = model.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in model.state_dict().items():
        assert torch.equal(value, sd[key]), key


@pytest.mark.parametrize("num_classes", [19, 171, 150])
def test_head_classes_change_only_class_dims(num_classes):
    model = build_model("bisenetv2-coincheung", num_classes)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["head.conv_out.1.weight"] == (num_classes, 1024, 1, 1)
    assert shapes["aux5_4.conv_out.1.bias"] == (num_classes,)


@pytest.mark.parametrize("height,width", [(64, 64), (64, 128), (96, 64)])
def test_eval_outputs_equal_independent_reference(height, width):
    torch.manual_seed(0)
    model = build_model("bisenetv2-coincheung", 19).eval()
    randomize(model, seed=height + width)
    x = torch.randn(2, 3, height, width)
    with torch.no_grad():
        ours = model(x)
        ref = Ref(model.state_dict()).forward(x)
    assert ours.shape == (2, 19, height, width)
    scale = ref.abs().max().item()
    assert scale > 0
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5 * scale)


def test_float64_outputs_match_reference_exactly():
    # in float64 any structural difference shows up far above rounding
    model = build_model("bisenetv2-coincheung", 5).eval().double()
    randomize(model, seed=7)
    x = torch.randn(1, 3, 64, 96, dtype=torch.float64)
    with torch.no_grad():
        ours = model(x)
        ref = Ref(model.state_dict()).forward(x)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10 * ref.abs().max().item())


def test_train_mode_aux_heads_equal_reference():
    model = build_model("bisenetv2-coincheung", 3)
    randomize(model, seed=3)
    model.train()
    for m in model.modules():  # freeze BN stats / dropout so train-mode outputs are comparable
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout)):
            m.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outs = model(x)
        ref = Ref(model.state_dict())
        feats = model.segment(x)
    assert isinstance(outs, tuple) and len(outs) == 5
    for out, feat, key, up in zip(outs[1:], feats[:4], ("aux2", "aux3", "aux4", "aux5_4"),
                                  (4, 8, 16, 32)):
        expected = ref.aux(feat, key, up)
        assert out.shape == (1, 3, 64, 64)
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())
    torch.testing.assert_close(outs[0], ref.forward(x), rtol=1e-4,
                               atol=1e-5 * outs[0].abs().max().item())
