"""Squash functions, v = s k(|s|^2), and their backward passes written out.

Routing's hand-written backward (dse.model.routing) calls `squash_vjp`: a few elementwise ops
that torch.compile traces, where the autograd.grad it called before broke the compiled graph.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

EPS = 1e-8  # inside sqrt(|s|^2 + eps): a finite gradient where s = 0


def squash(s: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """v = s |s| / (1 + |s|^2)."""
    sq = (s * s).sum(dim, keepdim=True)
    return s * (sq.add(EPS).sqrt() / (1.0 + sq))


def squash_approx(s: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """FasTrCaps' cheap squash: s / 2 where |s| <= 2, else s / |s|."""
    norm = (s * s).sum(dim, keepdim=True).add(EPS).sqrt()
    return s * torch.where(norm <= 2.0, 0.5, 1.0 / norm)


SQUASH = {"exact": squash, "approx": squash_approx}


def _scaled_vjp(s: torch.Tensor, grad: torch.Tensor, k, dk) -> torch.Tensor:
    """The gradient of v = s k(q), q = |s|^2 (last dim): grad k + 2 s <grad, s> k'(q)."""
    return grad * k + 2.0 * s * (grad * s).sum(-1, keepdim=True) * dk


def _squash_exact_vjp(s: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    sq = (s * s).sum(-1, keepdim=True)
    root, one_plus = sq.add(EPS).sqrt(), 1.0 + sq
    k = root / one_plus
    dk = 0.5 / (root * one_plus) - k / one_plus  # d/dq sqrt(q + eps) / (1 + q)
    return _scaled_vjp(s, grad, k, dk)


def _squash_approx_vjp(s: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    norm = (s * s).sum(-1, keepdim=True).add(EPS).sqrt()
    inside = norm <= 2.0
    k = torch.where(inside, 0.5, 1.0 / norm)
    dk = torch.where(inside, 0.0, -0.5 / (norm * norm * norm))  # d/dq (q + eps)^-1/2
    return _scaled_vjp(s, grad, k, dk)


_VJPS: dict[Callable, Callable] = {squash: _squash_exact_vjp, squash_approx: _squash_approx_vjp}


def squash_vjp(squash_fn: Callable, s: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The gradient of squash_fn(s) (over the last dim) against s, given the output's `grad`;
    by autograd for a squash function other than the two above."""
    grad = grad.to(s.dtype)
    vjp = _VJPS.get(squash_fn)
    if vjp is not None:
        return vjp(s, grad)
    with torch.enable_grad():
        s = s.detach().requires_grad_(True)
        (grad_s,) = torch.autograd.grad(squash_fn(s), s, grad)
    return grad_s
