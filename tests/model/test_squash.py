from __future__ import annotations

import pytest
import torch

from dse.model.squash import squash, squash_approx, squash_vjp


def _autograd_vjp(fn, s, grad):
    s = s.detach().requires_grad_(True)
    return torch.autograd.grad(fn(s), s, grad)[0]


@pytest.mark.parametrize("fn", [squash, squash_approx])
def test_the_written_out_backward_equals_autograd(fn):
    torch.manual_seed(0)
    # Norms from 0 to about 6: inside and outside the approximate squash's |s| <= 2, and s = 0.
    s = torch.randn(5, 10, 16, dtype=torch.double) * torch.linspace(0, 1.5, 16).view(1, 1, 16)
    s[0, 0] = 0.0
    grad = torch.randn_like(s)
    assert (s.norm(dim=-1) < 2).any() and (s.norm(dim=-1) > 2).any()
    got, want = squash_vjp(fn, s, grad), _autograd_vjp(fn, s, grad)
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
    assert torch.isfinite(got).all()


def test_another_squash_function_is_differentiated_by_autograd():
    def halve(s):
        return s * 0.5 * (s * s).sum(-1, keepdim=True)

    s, grad = torch.randn(3, 4, dtype=torch.double), torch.randn(3, 4, dtype=torch.double)
    assert torch.allclose(squash_vjp(halve, s, grad), _autograd_vjp(halve, s, grad))
