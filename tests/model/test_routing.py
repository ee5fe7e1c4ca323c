from __future__ import annotations

import pytest
import torch

from dse.model.routing import route, route_autograd
from dse.model.squash import squash, squash_approx


@pytest.mark.parametrize("iterations", [1, 2, 3, 5])
@pytest.mark.parametrize("squash_fn", [squash, squash_approx])
@pytest.mark.parametrize("with_bias", [False, True])
def test_hand_written_backward_equals_autograd(iterations, squash_fn, with_bias):
    torch.manual_seed(iterations)
    u_hat = torch.randn(3, 10, 7, 4, dtype=torch.double, requires_grad=True)
    bias = torch.randn(10, 4, dtype=torch.double, requires_grad=True) if with_bias else None
    grad_out = torch.randn(3, 10, 4, dtype=torch.double)
    grads = []
    for fn in (route, route_autograd):
        v, c = fn(u_hat, iterations, bias, squash_fn)
        inputs = [u_hat] + ([bias] if with_bias else [])
        grads.append((v, c, torch.autograd.grad(v, inputs, grad_out)))
    (v1, c1, g1), (v2, c2, g2) = grads
    assert torch.equal(v1, v2) and torch.equal(c1, c2)
    for a, b in zip(g1, g2, strict=True):
        assert torch.allclose(a, b, atol=1e-12)


def test_gradcheck():
    u_hat = torch.randn(2, 3, 5, 4, dtype=torch.double, requires_grad=True)
    bias = torch.randn(3, 4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u, b: route(u, 3, b, squash)[0], (u_hat, bias))


def test_no_grad_path_and_float32():
    u_hat = torch.randn(4, 10, 72, 16)
    with torch.no_grad():
        v, c = route(u_hat, 3, None, squash)
    assert torch.allclose(v, route_autograd(u_hat, 3, None, squash)[0])
    assert torch.allclose(c.sum(1), torch.ones(4, 72), atol=1e-6)
