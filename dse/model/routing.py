"""Dynamic routing (Sabour et al. 2017) with a hand-written backward pass.

Forward, for r = 0 .. R-1, with b_0 = 0 (u_hat [B, J, N, D], coefficients over the J outputs):

    c_r = softmax_J(b_r);  s_r = sum_n c_r[n] u_hat[n] (+ bias);  v_r = squash(s_r)
    b_{r+1} = b_r + <u_hat[n], v_r>        (all but the last iteration)

Why not autograd: autograd writes one u_hat-sized gradient per use of u_hat (2R - 1 uses), as
outer products, then sums them (about 2R x 94 MB of traffic at batch 128 for the standard
model), and its gradient of <u_hat, v> runs a transposed matrix-vector product that MKL does
slowly. The gradient of u_hat is a sum of 2R - 1 outer products, so here it is one batched
matmul of rank 2R - 1, written once. Same numbers as autograd (checked in the tests).

Every product with u_hat is written as a row vector times u_hat or times its transposed view
([1, N] @ [N, D] and [1, D] @ [D, N]): MKL runs both fast on u_hat as stored, while the
matrix-vector form [N, D] @ [D, 1] runs about 3x slower, and a transposed copy of u_hat to avoid
it costs more than it saves (measured side by side, `python bench/step_throughput.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F

from dse.model.squash import squash_vjp


def route_autograd(
    u_hat: torch.Tensor, iterations: int, bias: torch.Tensor | None, squash_fn: Callable
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: routing written plainly, differentiated by autograd."""
    b, j, n, _ = u_hat.shape
    logits = u_hat.new_zeros(b, j, n)
    for it in range(iterations):
        c = F.softmax(logits, dim=1)  # over the OUTPUT capsules j, for each input i
        s = (c.unsqueeze(2) @ u_hat).squeeze(2)  # [B,J,1,N] @ [B,J,N,D] -> [B, J, D]
        if bias is not None:
            s = s + bias
        v = squash_fn(s)
        if it < iterations - 1:
            logits = logits + (v.unsqueeze(2) @ u_hat.transpose(-1, -2)).squeeze(2)  # <u_ij, v_j>
    return v, c


class _DynamicRouting(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u_hat, bias, iterations, squash_fn):
        b, j, n, _ = u_hat.shape
        u_hat_t = u_hat.transpose(-1, -2)  # [B, J, D, N], a view
        logits = u_hat.new_zeros(b, j, n)
        cs, ss, vs = [], [], []
        for it in range(iterations):
            c = F.softmax(logits, dim=1)  # [B, J, N]
            s = (c.unsqueeze(2).to(u_hat.dtype) @ u_hat).squeeze(2)  # [B, J, D]
            if bias is not None:
                s = s + bias
            v = squash_fn(s)
            cs.append(c)
            ss.append(s)
            vs.append(v)
            if it < iterations - 1:
                logits = logits + (v.unsqueeze(2).to(u_hat.dtype) @ u_hat_t).squeeze(2)
        ctx.squash_fn, ctx.iterations, ctx.has_bias = squash_fn, iterations, bias is not None
        ctx.bias_shape = None if bias is None else bias.shape  # [J, D], or per sample [B, J, D]
        ctx.save_for_backward(u_hat, *cs, *ss, *vs)
        ctx.mark_non_differentiable(cs[-1])
        return vs[-1], cs[-1]

    @staticmethod
    def backward(ctx, grad_v, _grad_c):
        r_total = ctx.iterations
        u_hat, *saved = ctx.saved_tensors
        u_hat_t = u_hat.transpose(-1, -2)
        cs, ss, vs = saved[:r_total], saved[r_total : 2 * r_total], saved[2 * r_total :]
        dtype = u_hat.dtype
        lefts, rights = [], []  # grad u_hat = sum of lefts[k] (x) rights[k]
        grad_bias = None
        grad_logits_next = None  # dL/db_{r+1}
        for it in reversed(range(r_total)):
            gv = grad_v if it == r_total - 1 else torch.zeros_like(vs[it])
            if it < r_total - 1:  # b_{r+1} = b_r + <u_hat, v_r>: the agreement's gradients
                ga = grad_logits_next  # [B, J, N]
                gv = gv + (ga.unsqueeze(2).to(dtype) @ u_hat).squeeze(2)
                lefts.append(ga)
                rights.append(vs[it])
            gs = squash_vjp(ctx.squash_fn, ss[it], gv)  # [B, J, D]
            if ctx.has_bias:
                gb = gs.sum_to_size(ctx.bias_shape)
                grad_bias = gb if grad_bias is None else grad_bias + gb
            lefts.append(cs[it])
            rights.append(gs)
            if it == 0:
                break  # b_0 = 0 is a constant: the coefficients' gradient goes nowhere
            gc = (gs.unsqueeze(2).to(dtype) @ u_hat_t).squeeze(2)  # [B, J, N]
            c = cs[it]
            grad_logits = c * (gc - (gc * c).sum(1, keepdim=True))  # softmax over J
            if grad_logits_next is not None:
                grad_logits = grad_logits + grad_logits_next
            grad_logits_next = grad_logits
        # Stacked as rows and read transposed: stacking them as columns interleaves K
        # arrays element by element (3.3 ms against 1.1, and the product 4.9 against 3.7
        # ms, standard model, batch 128).
        left = torch.stack(lefts, dim=-2).to(dtype)  # [B, J, K, N]
        right = torch.stack(rights, dim=-2).to(dtype)  # [B, J, K, D]
        grad_u_hat = left.transpose(-1, -2) @ right  # one rank-K product: written once
        return grad_u_hat, grad_bias, None, None


def route(
    u_hat: torch.Tensor, iterations: int, bias: torch.Tensor | None, squash_fn: Callable
) -> tuple[torch.Tensor, torch.Tensor]:
    """Routing output v [B, J, D] and the last coupling coefficients c [B, J, N]."""
    if not torch.is_grad_enabled():
        with torch.no_grad():
            return route_autograd(u_hat, iterations, bias, squash_fn)
    return _DynamicRouting.apply(u_hat, bias, iterations, squash_fn)


def fp32_routing(u: torch.Tensor) -> tuple[torch.Tensor, AbstractContextManager]:
    """The primary capsules u, and a context for forming u_hat and routing over it: under CPU
    autocast both run in fp32 (u converted, autocast off). oneDNN's bf16 batched products copy
    u_hat into each transposed layout they read (15 ms a copy at quick.yaml's width, batch 64),
    and routing does a few FLOPs per byte, so bf16 buys nothing there (side by side, CPU time of
    a training step at that width: 89 ms in fp32, 119 ms in bf16); forming u_hat in fp32 (a few
    MFLOPs) spares the bf16 u_hat's conversion, a copy of 94 MB for the standard model at batch
    128. Elsewhere u as it is, nothing changed.

    A pair, not a generator context manager: torch.compile traces autocast and nullcontext
    but breaks its graph at a generator's `with` (4 breaks in quick.yaml's model).
    """
    if u.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        return u.float(), torch.autocast("cpu", enabled=False)
    return u, nullcontext()
