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
oneDNN's input gradient, 2.54 with the scatter-add). CUDA tensors (cuDNN has no such gap),
autocast and no-grad calls take the plain path.

The hand-written backward pays only for wide convolutions. For the narrow ones of CPU-sized
studies (quick.yaml, efficiency.yaml: 16-64 channels) oneDNN's own backward is as fast or
faster: one layer's conv and backward alone, side by side on the AVX-512 Xeon, 2 threads,
native over hand-written time: 1 -> 16 channels 0.57-0.60, 16 -> 16 (stride 2) 0.41-0.94,
32 -> 64 0.72-0.86, 64 -> 64 0.56-0.86, 128 -> 128 0.76-0.92; 256 -> 256 0.94-1.08, where the
other machine's numbers above favour the hand-written path. So it is used from
CUSTOM_BACKWARD_MIN_CHANNELS output channels (the standard model's two convolutions) and the
plain path below (`python bench/step_throughput.py --sizes`: "quick.yaml's width", "efficiency's
smallest").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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


CUSTOM_BACKWARD_MIN_CHANNELS = 128  # narrower convolutions take oneDNN's backward (see above)


class Conv2d(nn.Conv2d):
    """nn.Conv2d (square stride, no padding); on CPU, from CUSTOM_BACKWARD_MIN_CHANNELS output
    channels, the weight gradient as a forward conv and the input gradient as one GEMM."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)
        self.custom_backward = out_channels >= CUSTOM_BACKWARD_MIN_CHANNELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plain = not torch.is_grad_enabled() or torch.is_autocast_enabled(x.device.type)
        if x.device.type != "cpu" or plain or not self.custom_backward:
            return super().forward(x)
        return conv2d_weight_grad_as_forward(x, self.weight, self.bias, self.stride[0], 1)
