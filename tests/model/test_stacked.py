"""StackedCapsNet: K CapsNets in one model compute what each CapsNet computes alone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dse.config import CapsNetConfig
from dse.model.capsnet import CapsNet
from dse.model.conv import AS_FORWARD
from dse.model.kernel_choice import ENV
from dse.model.stacked import StackedCapsNet, grouped_conv

TINY = {"conv_channels": 8, "primary_types": 4, "primary_dim": 4, "class_dim": 8}
VARIANTS = [
    {},
    {"class_bias": True, "weight_sharing": "fastrcaps", "sharing_stride": 4, "decoder": "small"},
    {"weight_sharing": "per_type", "decoder": "none", "squash": "approx"},
    {
        "routing_iterations": 1,
        "class_bias": True,
        "weight_sharing": "fastrcaps",
        "sharing_stride": 4,
    },
    {"routing_iterations": 1, "weight_sharing": "per_type", "decoder": "small"},
]


def _models(options: dict, k: int = 3, device: str = "cpu") -> list[CapsNet]:
    config = CapsNetConfig(**TINY, **options)
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(CapsNet(config, (1, 28, 28), 10).to(device))
    return models


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def _compare(options: dict, device: str) -> None:
    """Scores, losses and every parameter's gradient of the stacked model against each
    CapsNet's own (model k on its own batch)."""
    models = _models(options, device=device)
    stacked = StackedCapsNet(models).to(device)
    x = torch.rand(3, 6, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (3, 6), device=device)
    out = stacked(x, y)
    parts = stacked.loss(out, x, y)
    parts["loss"].sum().backward()
    for k, model in enumerate(models):
        own = model(x[k], y[k])
        own_parts = model.loss(own, x[k], y[k])
        own_parts["loss"].backward()
        assert _relative(out.scores[k], own.scores) < 1e-5
        for name, value in own_parts.items():
            assert parts[name][k].item() == pytest.approx(value.item(), rel=1e-5)
        for name, param in model.named_parameters():
            rel = _relative(stacked.stacked(name).grad[k], param.grad)
            assert rel < 1e-4, f"model {k} {name}: gradient differs by {rel:.2e} (relative)"


@pytest.mark.parametrize("options", VARIANTS)
def test_stacked_forward_and_gradients_equal_each_capsnets(options):
    _compare(options, "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_stacked_forward_and_gradients_equal_each_capsnets_on_cuda():
    _compare(VARIANTS[1], "cuda")


def test_state_of_is_each_capsnets_state_and_loads_back():
    models = _models({"class_bias": True})
    stacked = StackedCapsNet(models)
    for k, model in enumerate(models):
        state = stacked.state_of(k)
        assert state.keys() == model.state_dict().keys()
        assert all(torch.equal(state[n], p) for n, p in model.state_dict().items())
    stacked.load_state_of(0, models[2].state_dict())
    assert torch.equal(stacked.stacked("conv1.weight")[0], models[2].conv1.weight)


def test_the_grouped_convolutions_weight_gradient_is_autograds(monkeypatch):
    """The CPU path's hand-written weight gradient (where it is the faster here) against
    autograd through F.conv2d."""
    monkeypatch.setenv(ENV, AS_FORWARD)
    o = 16
    x = torch.randn(5, 3 * 4, 13, 13, requires_grad=True)
    weight = torch.randn(3, o, 4, 5, 5, requires_grad=True)
    bias = torch.randn(3, o, requires_grad=True)
    grad = torch.randn(5, 3 * o, 5, 5)
    out = grouped_conv(x, weight, bias, 2)
    assert type(out.grad_fn).__name__ == "_Conv2dFunctionBackward"  # conv.py's, grouped
    out.backward(grad)
    mine = [t.grad.clone() for t in (x, weight, bias)]
    for t in (x, weight, bias):
        t.grad = None
    folded = weight.reshape(3 * o, 4, 5, 5)
    F.conv2d(x, folded, bias.reshape(3 * o), stride=2, groups=3).backward(grad)
    for got, want in zip(mine, (x.grad, weight.grad, bias.grad), strict=True):
        assert _relative(got, want) < 1e-5


def test_capsnets_of_different_configs_do_not_stack():
    with pytest.raises(ValueError, match="one configuration"):
        StackedCapsNet([*_models({}, k=1), *_models({"decoder": "small"}, k=1)])
