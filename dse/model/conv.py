"""A convolution whose weight gradient is computed as a forward convolution (on CPUs).

oneDNN's forward convolution runs near the matmul ceiling here, but its backward-weights
kernels do not: for CapsNet's PrimaryCaps (256 -> 256 channels, 9x9, stride 2, 20x20 -> 6x6)
it takes 1.8x the forward's time for the same FLOPs, and for conv1 (one input channel) about
15x. The weight gradient is itself a convolution with the batch and channel roles swapped:

    grad_w[o, c, ki, kj] = sum_{b,i,j} grad_out[b, o, i, j] * x[b, c, s*i + ki, s*j + kj]
                         = conv2d(x^T [C, B, H', W'], grad_out^T [O, B, h, w], dilation=s)

(x^T: x with its first two dimensions swapped, cropped to the rows and columns the
gradient reads), which oneDNN runs at its forward speed. Side by side here (2 threads, batch
128): PrimaryCaps' weight gradient 326 ms this way against 606 ms (forward: 333 ms); conv1's
26 ms against 429 ms. The input gradient (see _input_grad) is a GEMM too. CUDA tensors (cuDNN
has no such gap), autocast and no-grad calls take the plain path.

The hand-written backward pays only for wide convolutions. For the narrow ones of CPU-sized
studies (quick.yaml, efficiency.yaml: 16-64 channels) its 81-tap scatter-add and the transposed
copies are per-op overhead, and oneDNN's own backward is faster: conv and backward of one layer
alone, side by side on an AVX-512 (bf16) Xeon, 2 threads, native over hand-written time: 1 -> 16
channels 0.57, 16 -> 16 (stride 2) 0.41, 32 -> 64 0.72, 64 -> 64 0.56, 128 -> 128 0.76; 256 ->
256 0.94-1.08, where the measurements above favour the hand-written path. So it is used from
CUSTOM_BACKWARD_MIN_CHANNELS output channels (the standard model's two convolutions) and the
plain path below (`python bench/step_throughput.py` rows "quick.yaml's width", "efficiency's
smallest").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Conv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.has_bias = stride, bias is not None
        return F.conv2d(x, weight, bias, stride=stride)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        s = ctx.stride
        grad_out = grad_out.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _input_grad(grad_out, weight, x.shape, s)
        if ctx.needs_input_grad[1]:
            kh, kw = weight.shape[2:]
            h, w = grad_out.shape[2:]
            used = x[:, :, : kh + s * (h - 1), : kw + s * (w - 1)]  # what the kernel reads
            grad_w = F.conv2d(used.transpose(0, 1), grad_out.transpose(0, 1), dilation=s)
            grad_w = grad_w.transpose(0, 1)  # [C, O, kh, kw] -> [O, C, kh, kw]
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None


CUSTOM_BACKWARD_MIN_CHANNELS = 128  # narrower convolutions take oneDNN's backward (see above)
CHUNK_BYTES = 128 * 2**20  # the GEMM's output per batch chunk in _input_grad


def _input_grad(
    grad_out: torch.Tensor, weight: torch.Tensor, x_shape: torch.Size, s: int
) -> torch.Tensor:
    """grad_x as one GEMM per batch chunk and a scatter-add of its kh x kw taps.

    R[b, i, j, ki, kj, c] = sum_o grad_out[b, o, i, j] weight[o, c, ki, kj], then
    grad_x[b, c, s*i + ki, s*j + kj] += R[b, i, j, ki, kj, c]. Faster here than oneDNN's
    backward-data kernel for a strided convolution (0.75-0.85x its time, side by side).
    """
    b, c_in, height, width = x_shape
    c_out, _, kh, kw = weight.shape
    h, w = grad_out.shape[2:]
    taps = weight.permute(0, 2, 3, 1).reshape(c_out, kh * kw * c_in)  # [O, (ki, kj, c)]
    rows = grad_out.permute(0, 2, 3, 1).reshape(b * h * w, c_out)  # [(b, i, j), O]
    grad_x = grad_out.new_zeros(b, height, width, c_in)  # channels last, while adding
    chunk = max(1, CHUNK_BYTES // (h * w * taps.shape[1] * taps.element_size()))
    for start in range(0, b, chunk):
        n = min(chunk, b - start)
        product = rows[start * h * w : (start + n) * h * w] @ taps
        product = product.view(n, h, w, kh, kw, c_in)
        dst = grad_x[start : start + n]
        for ki in range(kh):
            for kj in range(kw):
                dst[:, ki : ki + s * (h - 1) + 1 : s, kj : kj + s * (w - 1) + 1 : s] += product[
                    :, :, :, ki, kj
                ]
    return grad_x.permute(0, 3, 1, 2)  # NCHW shape, channels-last strides


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
        return _Conv2dFunction.apply(x, self.weight, self.bias, self.stride[0])
