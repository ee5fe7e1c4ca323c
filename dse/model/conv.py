"""A convolution whose weight gradient is computed as a forward convolution (on CPUs).

oneDNN's forward convolution runs near the matmul ceiling here, but its backward-weights
kernels do not: for CapsNet's PrimaryCaps (256 -> 256 channels, 9x9, stride 2, 20x20 -> 6x6)
it takes 1.8x the forward's time for the same FLOPs, and for conv1 (one input channel) about
15x. The weight gradient is itself a convolution with the batch and channel roles swapped:

    grad_w[o, c, ki, kj] = sum_{b,i,j} grad_out[b, o, i, j] * x[b, c, s*i + ki, s*j + kj]
                         = conv2d(x^T [C, B, H', W'], grad_out^T [O, B, h, w], dilation=s)

(x^T: x with its first two dimensions swapped, cropped to the rows and columns the
gradient reads), which oneDNN runs at its forward speed. Side by side on that machine (2 threads,
batch 128): PrimaryCaps' weight gradient 326 ms this way against 606 ms (forward: 333 ms);
conv1's 26 ms against 429 ms. The input gradient is oneDNN's own (torch.nn.grad.conv2d_input):
a GEMM plus an 81-tap scatter-add, written here before, was 0.75-0.85x its time there but
1.6-2.5x on an AVX-512 Xeon (PrimaryCaps' whole backward at batch 128, CPU seconds: 1.54 with
oneDNN's input gradient, 2.54 with the scatter-add). CUDA tensors (cuDNN has no such gap)
and no-grad calls take the plain path; under CPU autocast the same choice is made in bf16.

Which weight gradient is faster depends on the CPU and the layer, so it is timed, not assumed
(`weight_grad_kernel`: once per machine and shape, recorded; dse.model.kernel_choice). On a
2-core AVX-512 Xeon oneDNN's backward was as fast or faster for narrow layers (one layer's
convolution and backward, oneDNN's time over the hand-written path's: 1 -> 16 channels
0.57-0.60, 16 -> 16 stride 2 0.41-0.94, 32 -> 64 0.72-0.86) and slower for wide ones; on a
2-core AVX2 EPYC its weight gradient was slower for every layer (alone, oneDNN's time over the
forward convolution's, 2 threads: 1 -> 32 channels at batch 64 6.5x, 32 -> 64 stride 2 1.3x,
16 -> 16 stride 2 at batch 32 1.1x, PrimaryCaps at batch 128 2.3x).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dse.model.kernel_choice import choose


class _Conv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, groups):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.groups, ctx.has_bias = stride, groups, bias is not None
        return F.conv2d(x, weight, bias, stride=stride, groups=groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        s, k = ctx.stride, ctx.groups
        grad_out = grad_out.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.nn.grad.conv2d_input(x.shape, weight, grad_out, stride=s, groups=k)
        if ctx.needs_input_grad[1]:
            grad_w = _weight_grad(x, grad_out, weight.shape, s, k)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None


def _weight_grad(
    x: torch.Tensor, grad_out: torch.Tensor, shape: torch.Size, s: int, k: int
) -> torch.Tensor:
    """The weight gradient as a forward convolution (the module doc). With k groups (the K
    models of dse.model.stacked side by side): x as [C, K*B, H', W'] and grad_out as
    [K*O, B, h, w], convolved with groups=k."""
    ko, c, kh, kw = shape
    h, w = grad_out.shape[2:]
    used = x[:, :, : kh + s * (h - 1), : kw + s * (w - 1)]  # what the kernel reads
    if k == 1:
        return F.conv2d(used.transpose(0, 1), grad_out.transpose(0, 1), dilation=s).transpose(0, 1)
    b = x.shape[0]
    used = used.reshape(b, k, c, *used.shape[2:]).permute(2, 1, 0, 3, 4)
    used = used.reshape(c, k * b, *used.shape[3:])  # [C, K*B, H', W']
    grads = grad_out.view(b, k, ko // k, h, w).permute(1, 2, 0, 3, 4).reshape(ko, b, h, w)
    return F.conv2d(used, grads, dilation=s, groups=k).transpose(0, 1)  # [C, K*O] -> [K*O, C]


def conv2d_weight_grad_as_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, groups: int
) -> torch.Tensor:
    """F.conv2d (no padding) whose weight gradient runs as a forward convolution (CPU)."""
    return _Conv2dFunction.apply(x, weight, bias, stride, groups)


ONEDNN, AS_FORWARD = "onednn", "as_forward"  # the weight gradient's kernels


def weight_grad_kernel(x: torch.Tensor, weight: torch.Tensor, stride: int, groups: int) -> str:
    """Which kernel computes this convolution's weight gradient fastest on this machine:
    oneDNN's or the forward convolution (timed once per machine and shape, dse.model.kernel_choice).
    """
    key = (
        f"conv2d weight grad: x {list(x.shape)} w {list(weight.shape)} stride {stride} "
        f"groups {groups} {x.dtype} threads {torch.get_num_threads()}"
    )

    def candidates() -> dict[str, Callable[[], object]]:
        inputs, size = x.detach(), weight.shape
        h, w = ((n - k) // stride + 1 for n, k in zip(x.shape[2:], size[2:], strict=True))
        grad_out = torch.randn(x.shape[0], size[0], h, w, dtype=x.dtype, device=x.device)
        return {
            ONEDNN: lambda: torch.nn.grad.conv2d_weight(
                inputs, size, grad_out, stride=stride, groups=groups
            ),
            AS_FORWARD: lambda: _weight_grad(inputs, grad_out, size, stride, groups),
        }

    with torch.no_grad():
        return choose(key, (ONEDNN, AS_FORWARD), candidates)


def conv2d_cpu(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, groups: int = 1
) -> torch.Tensor:
    """F.conv2d (no padding); on a CPU, training eagerly, its weight gradient by the kernel
    chosen for this machine (weight_grad_kernel). Under CPU autocast it runs in the autocast
    dtype as F.conv2d would, the same choice made for that dtype (on an AMX Xeon oneDNN's bf16
    weight gradient takes 1.9x the time of the bf16 forward convolution; computed as a forward
    convolution, 1.0-1.3x). Other calls take F.conv2d as it is."""
    plain = x.device.type != "cpu" or not torch.is_grad_enabled() or torch.compiler.is_compiling()
    if plain:
        return F.conv2d(x, weight, bias, stride=stride, groups=groups)
    if torch.is_autocast_enabled("cpu"):  # the casts autocast would make, differentiable
        dtype = torch.get_autocast_dtype("cpu")
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
        with torch.autocast("cpu", enabled=False):
            return conv2d_cpu(x, weight, bias, stride, groups)
    if weight_grad_kernel(x, weight, stride, groups) == ONEDNN:
        return F.conv2d(x, weight, bias, stride=stride, groups=groups)
    return conv2d_weight_grad_as_forward(x, weight, bias, stride, groups)


class Conv2d(nn.Conv2d):
    """nn.Conv2d (square stride, no padding) whose CPU training step takes conv2d_cpu."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d_cpu(x, self.weight, self.bias, self.stride[0])
