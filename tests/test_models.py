"""Architectures, the registry, and the real pretrained standard ResNet-18 (real CIFAR-10 test images)."""
import pytest
import torch

from energy_lib import data, models
from energy_lib.attacks import predict_logits
from energy_lib.config import ConfigError


@pytest.mark.parametrize("name, classes, params_range", [
    ("resnet18", 10, (11.1e6, 11.2e6)),        # the paper's CIFAR ResNet-18: 11.17M parameters
    ("preact_resnet18", 10, (11.1e6, 11.2e6)),
    ("small_cnn", 10, (0.4e6, 0.8e6)),
    ("small_cnn_w64", 10, (1.5e6, 1.7e6)),
    ("single_layer_cnn", 10, (164_298, 164_298)),    # 16·27 + 16 + 16·1024·10 + 10
    ("resnet18", 100, (11.2e6, 11.3e6)),
])
def test_models_build_with_expected_size_and_shape(name, classes, params_range):
    model = models.build_model(name, num_classes=classes).eval()
    assert params_range[0] <= models.count_parameters(model) <= params_range[1]
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, classes)


def test_wrn34_10_size():
    assert 46.1e6 <= models.count_parameters(models.build_model("wrn34_10")) <= 46.2e6  # 46.16M


def test_resnet18_handles_tiny_imagenet_resolution():
    assert models.build_model("resnet18", 200).eval()(torch.rand(1, 3, 64, 64)).shape == (1, 200)


def test_unknown_model_name():
    with pytest.raises(ConfigError, match="unknown model 'resnet19'.*resnet18"):
        models.build_model("resnet19")


def test_pretrained_standard_resnet18_is_accurate_on_real_test_images():
    model = models.pretrained_standard_resnet18()
    assert isinstance(model, models.ResNet18) and not model.training
    x, y = data.load_dataset("cifar10", "test", n=500).tensors()
    accuracy = (predict_logits(model, x).argmax(1) == y).float().mean().item()
    assert accuracy >= 0.90, accuracy


def test_frozen_for_attacks_gives_the_same_logits_and_restores_the_model():
    """The lens attacks in this mode (no parameter gradients, channels_last on a CPU): the logits and
    the input gradient are those of the plain model, no parameter gradient is accumulated, and the
    caller's model comes back with its own requires_grad flags and memory layout."""
    torch.manual_seed(0)
    model = models.build_model("small_cnn").eval()
    last = model.head[-1].weight
    last.requires_grad_(False)                        # a caller's own choice, kept after the block
    x = torch.rand(8, 3, 32, 32, requires_grad=True)
    plain = model(x)
    (plain_grad,) = torch.autograd.grad(plain.logsumexp(1).sum(), x)
    with models.frozen_for_attacks(model) as m:
        assert not any(p.requires_grad for p in m.parameters())
        conv = next(p for p in m.parameters() if p.dim() == 4)
        assert conv.is_contiguous(memory_format=torch.channels_last)
        out = m(x)
        out.logsumexp(1).sum().backward()             # as pyautoattack's FAB does: .backward()
    torch.testing.assert_close(out, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, plain_grad, rtol=1e-4, atol=1e-6)
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == [p is not last for p in model.parameters()]
    assert all(p.is_contiguous() for p in model.parameters())


def test_frozen_for_attacks_leaves_a_channels_last_model_channels_last():
    model = models.build_model("small_cnn").eval().to(memory_format=torch.channels_last)
    with models.frozen_for_attacks(model):
        pass
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)


def test_single_layer_cnn_is_one_conv_relu_and_a_linear_layer():
    """The CO literature's smallest network (Andriushchenko & Flammarion 2020), checked against its
    forward written out by hand."""
    torch.manual_seed(0)
    model = models.build_model("single_layer_cnn_f4").eval()
    x = torch.rand(3, 3, 32, 32)
    conv, linear = model.conv, model.linear
    assert conv.weight.shape == (4, 3, 3, 3) and linear.weight.shape == (10, 4 * 32 * 32)
    by_hand = torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=1).clamp(min=0).flatten(1) @ linear.weight.T
    assert torch.allclose(model(x), by_hand + linear.bias, atol=1e-5)
    assert models.count_parameters(model) == 4 * 27 + 4 + 4 * 1024 * 10 + 10
