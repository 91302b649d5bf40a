"""Every architecture: output shapes, train vs eval outputs, gradients, and the input errors."""

import pytest
import torch

from bisenet_deploy.errors import InputError
from bisenet_deploy.model import ARCHITECTURES, build_model

ARCHS = sorted(ARCHITECTURES)


@pytest.fixture(scope="module")
def small_models():
    torch.manual_seed(0)
    return {arch: build_model(arch, 7) for arch in ARCHS}


def test_architectures_table():
    assert set(ARCHS) == {"bisenetv2", "bisenetv2-large", "bisenetv2-coincheung", "bisenetv2-mmseg"}
    assert all(isinstance(v, str) and v for v in ARCHITECTURES.values())


def test_unknown_arch_lists_names():
    with pytest.raises(InputError) as err:
        build_model("bisenetv3")
    for name in ARCHS:
        assert name in str(err.value)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "19"])
def test_bad_num_classes(bad):
    with pytest.raises(InputError):
        build_model("bisenetv2-coincheung", bad)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("height,width", [(64, 64), (64, 128), (96, 32)])
def test_eval_shapes(small_models, arch, height, width):
    model = small_models[arch].eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (2, 7, height, width)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_train_mode_returns_main_and_four_aux(small_models, arch):
    model = small_models[arch].train()
    x = torch.randn(2, 3, 64, 96)
    outs = model(x)
    assert isinstance(outs, tuple) and len(outs) == 5
    for out in outs:
        assert out.shape == (2, 7, 64, 96)
    model.eval()


@pytest.mark.parametrize("arch", ARCHS)
def test_eval_output_equals_train_main_output_without_stochastic_layers(arch):
    torch.manual_seed(1)
    model = build_model(arch, 4)
    x = torch.randn(1, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        eval_out = model(x)
        # train mode, but BN/dropout in inference behaviour: the main logits must be the same
        model.train()
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout)):
                m.eval()
        train_out = model(x)[0]
    torch.testing.assert_close(train_out, eval_out)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_parameter_gets_a_gradient_in_training(arch):
    torch.manual_seed(2)
    model = build_model(arch, 3).train()
    outs = model(torch.randn(2, 3, 64, 64))
    loss = sum(o.square().mean() for o in outs)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, no_grad
    # The context block's first BN feeds a bias-free 1x1 conv and a BN that, in training mode,
    # subtracts the batch mean: a constant shift (that BN's beta) cancels exactly, so its gradient
    # is zero up to rounding. Every other parameter must receive a non-zero gradient.
    exempt = {"segment.S5_5.bn.bias"}
    zero = [n for n, p in model.named_parameters() if n not in exempt and not p.grad.abs().sum() > 0]
    assert not zero, zero
    assert any(n.startswith("aux5_4.") for n, _ in model.named_parameters())


@pytest.mark.parametrize("arch", ARCHS)
def test_aux_false_has_no_aux_modules(arch):
    model = build_model(arch, 3, aux=False)
    assert not any(k.startswith("aux") for k in model.state_dict())
    model.train()
    out = model(torch.randn(2, 3, 64, 64))  # batch 2: training BN needs more than one value
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 64, 64)


def test_eval_does_not_run_aux_heads():
    model = build_model("bisenetv2-coincheung", 3).eval()
    calls = []
    for name in ("aux2", "aux3", "aux4", "aux5_4"):
        getattr(model, name).register_forward_hook(lambda *a, n=name: calls.append(n))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert calls == []
    # the exported inference graph of the model with aux heads computes what the graph of the
    # model without computes: the same ops (the aux weights are carried along, never used)
    x = torch.randn(1, 3, 64, 64)
    lean = build_model("bisenetv2-coincheung", 3, aux=False).eval()

    def ops(net):
        graph = torch.export.export(net, (x,)).graph
        return sorted(str(n.target) for n in graph.nodes if n.op == "call_function")
    assert ops(model) == ops(lean)
    assert calls == []


@pytest.mark.parametrize("shape,match", [
    ((3, 64, 64), "4-D"),
    ((1, 1, 64, 64), "3 colour channels"),
    ((1, 4, 64, 64), "3 colour channels"),
    ((1, 3, 64, 100), "multiples of 32"),
    ((1, 3, 500, 64), "multiples of 32"),
])
def test_input_shape_errors(shape, match):
    model = build_model("bisenetv2-coincheung", 3, aux=False).eval()
    with pytest.raises(InputError, match=match):
        model(torch.randn(*shape))


def test_size_error_names_nearest_sizes():
    model = build_model("bisenetv2", 3, aux=False).eval()
    with pytest.raises(ValueError) as err:  # InputError is a ValueError
        model(torch.randn(1, 3, 300, 500))
    msg = str(err.value)
    assert "500x300" in msg and "480x288" in msg and "512x320" in msg


def test_integer_input_rejected():
    model = build_model("bisenetv2-coincheung", 3, aux=False).eval()
    with pytest.raises(InputError, match="floating-point"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


def test_training_with_one_image_is_a_clear_error():
    model = build_model("bisenetv2-coincheung", 3).train()
    with pytest.raises(InputError, match="batch of at least 2"):
        model(torch.randn(1, 3, 64, 64))
    for m in model.modules():  # with frozen BatchNorm statistics one image is fine
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    assert len(model(torch.randn(1, 3, 64, 64))) == 5


def test_size_error_keeps_a_side_that_is_already_valid():
    model = build_model("bisenetv2-coincheung", 3, aux=False).eval()
    with pytest.raises(InputError) as err:
        model(torch.randn(1, 3, 100, 64))
    assert str(err.value).endswith("nearest accepted sizes: 64x96, 64x128 (resize or pad the image)")
