from __future__ import annotations

import pytest
import torch

from dse.config import CapsNetConfig
from dse.errors import ConfigError
from dse.model import build_model, summarize
from dse.model.capsnet import ClassCaps, PrimaryCaps, Sharing
from dse.model.squash import squash, squash_approx

STANDARD = 8_215_568


def _params(**kw) -> int:
    return summarize(build_model(CapsNetConfig(**kw), (1, 28, 28), 10)).params


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, STANDARD),
        ({"class_bias": True}, STANDARD + 160),
        ({"weight_sharing": "per_type"}, STANDARD - 1_433_600),  # 32x10 W instead of 1152x10
        ({"weight_sharing": "fastrcaps", "sharing_stride": 36}, STANDARD - 1_433_600),
        ({"weight_sharing": "fastrcaps", "sharing_stride": 4}, STANDARD - 1_474_560 + 288 * 1280),
        ({"decoder": "small"}, STANDARD - 144 * 512),  # fc1 takes 16 inputs instead of 160
        ({"decoder": "none"}, STANDARD - 1_411_344),
        ({"weight_sharing": "fastrcaps", "decoder": "small"}, 6_708_240),  # paper: 6,719,920*
    ],
)
def test_parameter_counts(options, expected):
    # * the paper's count adds the 1152x10 routing logits and a 160 bias: 11,680 more.
    assert _params(**options) == expected


def test_layer_parameters_of_the_standard_model():
    layers = {r.name: r for r in summarize(build_model(CapsNetConfig(), (1, 28, 28), 10)).layers}
    assert layers["conv1"].params == 20_992 and layers["primary_caps"].params == 5_308_672
    assert layers["class_caps.u_hat"].params == 1_474_560 and layers["decoder"].params == 1_411_344
    total = sum(r.flops for r in layers.values())
    assert 400e6 < total < 410e6  # SPEC: about 406 MFLOP forward per sample
    assert layers["primary_caps"].flops / total > 0.93


def test_squash_values_and_finite_gradient_at_zero():
    s = torch.tensor([[3.0, 4.0]])  # |s| = 5 -> |v| = 25/26
    assert torch.allclose(squash(s).norm(dim=-1), torch.tensor([25 / 26]), atol=1e-6)
    for fn in (squash, squash_approx):
        zero = torch.zeros(4, 8, requires_grad=True)
        fn(zero).sum().backward()
        assert torch.isfinite(zero.grad).all()


def test_squash_approx_is_half_inside_and_unit_outside():
    small, large = torch.tensor([[0.6, 0.8]]), torch.tensor([[3.0, 4.0]])
    assert torch.allclose(squash_approx(small), small / 2)
    assert torch.allclose(squash_approx(large), large / 5)


def test_primary_capsule_layout_permutes_before_reshape():
    """Capsule (type t, h, w) holds channels t*dim .. t*dim+dim-1 at position (h, w)."""
    types, dim = 2, 3
    caps = PrimaryCaps(in_channels=1, types=types, dim=dim, squash_fn=lambda u: u)
    out = torch.zeros(1, types * dim, 2, 2)
    for t in range(types):
        for k in range(dim):
            for h in range(2):
                for w in range(2):
                    out[0, t * dim + k, h, w] = 1000 * t + 100 * k + 10 * h + w
    caps.conv.forward = lambda x: out  # type: ignore[method-assign]
    u = caps(torch.zeros(1, 1, 9, 9))
    assert u.shape == (1, types * 2 * 2, dim)
    # capsule index = t*4 + h*2 + w; its components are k = 0..dim-1
    assert u[0, 1 * 4 + 1 * 2 + 0].tolist() == [1010.0, 1110.0, 1210.0]
    assert u[0, 0 * 4 + 0 * 2 + 1].tolist() == [1.0, 101.0, 201.0]


def _expanded_weight(caps: ClassCaps) -> torch.Tensor:
    """The [N, d, J*D] weight each input capsule really uses (the slow, explicit form)."""
    share = caps.sharing
    index = [n % share.groups if share.strided else n // share.per_group for n in range(caps.n_in)]
    return caps.weight[index]


@pytest.mark.parametrize(
    ("mode", "stride"), [("none", 36), ("per_type", 36), ("fastrcaps", 36), ("fastrcaps", 9)]
)
def test_predictions_match_the_explicit_product(mode, stride):
    torch.manual_seed(0)
    n_in, types = 72, 2  # 2 types x 6 x 6
    caps = ClassCaps(n_in, 8, 10, 16, 3, Sharing.of(mode, n_in, types, stride), bias=False)
    u = torch.randn(5, n_in, 8)
    expected = torch.einsum("bnd,ndk->bnk", u, _expanded_weight(caps)).view(5, n_in, 10, 16)
    u_hat = caps.predictions(u)
    assert torch.allclose(u_hat, expected.permute(0, 2, 1, 3), atol=1e-5)
    assert u_hat.is_contiguous()  # routing's batched products read it row by row


def test_routing_runs_in_fp32_under_cpu_bf16_autocast():
    """u_hat and routing in fp32 (fp32_routing), the rest of the model in bf16: the class
    capsules equal the fp32 model's on the same primary capsules."""
    torch.manual_seed(0)
    model = build_model(CapsNetConfig(conv_channels=16, primary_types=4), (1, 28, 28), 10)
    u = torch.randn(3, model.class_caps.n_in, 8).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v = model.class_caps(u)
    assert v.dtype == torch.float32
    torch.testing.assert_close(v, model.class_caps(u.float()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = model(torch.rand(3, 1, 28, 28), torch.tensor([0, 1, 2])).scores
    assert scores.dtype == torch.float32


def test_fastrcaps_uses_w_of_i_mod_groups():
    share = Sharing.of("fastrcaps", 1152, 32, 36)
    assert (share.groups, share.per_group, share.strided) == (32, 36, True)
    assert Sharing.of("per_type", 1152, 32, 36) == Sharing(groups=32, per_group=36, strided=False)


def test_sharing_keeps_only_the_shared_weights_and_gradients():
    model = build_model(CapsNetConfig(weight_sharing="per_type"), (1, 28, 28), 10)
    assert model.class_caps.weight.shape == (32, 8, 160)
    x = torch.rand(2, 1, 28, 28)
    out = model(x, torch.tensor([1, 2]))
    model.loss(out, x, torch.tensor([1, 2]))["loss"].backward()
    assert model.class_caps.weight.grad.shape == (32, 8, 160)


def test_routing_coefficients_sum_to_one_over_output_capsules():
    torch.manual_seed(1)
    caps = ClassCaps(72, 8, 10, 16, 3, Sharing.of("none", 72, 2, 36), bias=False)
    v, c = caps.route(caps.predictions(torch.randn(4, 72, 8)))
    assert c.shape == (4, 10, 72)
    assert torch.allclose(c.sum(dim=1), torch.ones(4, 72), atol=1e-6)
    assert not torch.allclose(c, torch.full_like(c, 0.1))  # routing moved away from uniform
    assert v.shape == (4, 10, 16) and (v.norm(dim=-1) < 1).all()


def test_one_routing_iteration_uses_uniform_coefficients():
    caps = ClassCaps(72, 8, 10, 16, 1, Sharing.of("none", 72, 2, 36), bias=False)
    u_hat = caps.predictions(torch.randn(3, 72, 8))
    v, c = caps.route(u_hat)
    assert torch.allclose(c, torch.full_like(c, 0.1))
    assert torch.allclose(v, squash(u_hat.sum(2) / 10), atol=1e-6)


@pytest.mark.parametrize(
    ("mode", "stride", "bias"),
    [("none", 36, False), ("per_type", 36, True), ("fastrcaps", 36, True), ("fastrcaps", 9, False)],
)
def test_one_iteration_without_u_hat_equals_routing_over_u_hat(mode, stride, bias):
    torch.manual_seed(0)
    n_in, types = 72, 2
    caps = ClassCaps(n_in, 8, 10, 16, 1, Sharing.of(mode, n_in, types, stride), bias=bias)
    if bias:
        torch.nn.init.normal_(caps.bias)
    u = torch.randn(5, n_in, 8, requires_grad=True)
    grad = torch.randn(5, 10, 16)
    routed = caps.route(caps.predictions(u))[0]
    expected = torch.autograd.grad(routed, [u, *caps.parameters()], grad)
    one_pass = caps(u)  # forward takes the single pass for one iteration
    got = torch.autograd.grad(one_pass, [u, *caps.parameters()], grad)
    assert torch.allclose(one_pass, routed, rtol=1e-5, atol=1e-6)
    for a, b in zip(got, expected, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_routing_follows_sabour_for_two_iterations():
    torch.manual_seed(2)
    caps = ClassCaps(72, 8, 10, 16, 2, Sharing.of("none", 72, 2, 36), bias=False)
    u_hat = caps.predictions(torch.randn(3, 72, 8))  # [B, J, N, D]
    v1 = squash((0.1 * u_hat).sum(2))
    b = torch.einsum("bjnd,bjd->bjn", u_hat, v1)
    c = torch.softmax(b, dim=1)
    v2 = squash(torch.einsum("bjn,bjnd->bjd", c, u_hat))
    assert torch.allclose(caps.route(u_hat)[0], v2, atol=1e-5)


@pytest.mark.parametrize("decoder", ["full", "small", "none"])
def test_forward_shapes_and_masking(decoder):
    model = build_model(
        CapsNetConfig(conv_channels=16, primary_types=4, decoder=decoder), (1, 28, 28), 10
    )
    x = torch.rand(3, 1, 28, 28)
    out = model(x, torch.tensor([0, 1, 2]))
    assert out.scores.shape == (3, 10)
    if decoder == "none":
        assert out.reconstruction is None and set(model.loss(out, x, torch.tensor([0, 1, 2]))) == {
            "loss",
            "margin",
        }
    else:
        assert out.reconstruction.shape == (3, 784)
        assert ((out.reconstruction >= 0) & (out.reconstruction <= 1)).all()


def test_full_decoder_sees_only_the_selected_capsule():
    model = build_model(CapsNetConfig(conv_channels=8, primary_types=2), (1, 28, 28), 10)
    v = torch.randn(1, 10, 16)
    changed = v.clone()
    changed[0, 5] += 10  # an unselected capsule
    assert torch.equal(
        model.decoder(v, torch.tensor([3])), model.decoder(changed, torch.tensor([3]))
    )


def test_smallnorb_geometry_and_a_stride_that_does_not_divide():
    model = build_model(CapsNetConfig(conv_channels=8, primary_types=4), (2, 32, 32), 5)
    assert model.class_caps.n_in == 4 * 8 * 8  # 32 -> 24 -> 8x8 primary grid
    assert model(torch.rand(2, 2, 32, 32)).scores.shape == (2, 5)
    with pytest.raises(ConfigError, match="model.sharing_stride: 36 does not divide the 256"):
        build_model(
            CapsNetConfig(conv_channels=8, primary_types=4, weight_sharing="fastrcaps"),
            (2, 32, 32),
            5,
        )
