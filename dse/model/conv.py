"""A convolution whose gradients are computed by the kernels fastest on this CPU.

oneDNN's forward convolution runs near the matmul ceiling, but its backward kernels often do
not. Two rewrites into faster convolutions, each timed against oneDNN's own once per machine
and shape (dse.model.kernel_choice) and taken where it wins:

Weight gradient as a forward convolution (`as_forward`). For CapsNet's PrimaryCaps (256 -> 256
channels, 9x9, stride 2, 20x20 -> 6x6) oneDNN's backward-weights takes 1.8x the forward's time
for the same FLOPs, and for conv1 (one input channel) about 15x. The weight gradient is itself
a convolution with the batch and channel roles swapped:

    grad_w[o, c, ki, kj] = sum_{b,i,j} grad_out[b, o, i, j] * x[b, c, s*i + ki, s*j + kj]
                         = conv2d(x^T [C, B, H', W'], grad_out^T [O, B, h, w], dilation=s)

(x^T: x with its first two dimensions swapped, cropped to the rows and columns the gradient
reads), which oneDNN runs at its forward speed. Side by side (2 threads, batch 128):
PrimaryCaps' weight gradient 326 ms this way against 606 ms on an AVX2 EPYC; in bf16 on an AMX
Xeon 40-79 ms against 150.

Input gradient by phases (`phases`, strided convolutions). Input row s*m + p (phase p) meets
only kernel rows p, p+s, ..., so the phase's gradient is the stride-1 input gradient of
grad_out through the sub-kernel weight[:, :, p::s, q::s]: s*s stride-1 problems, which oneDNN
runs faster than its strided one. PrimaryCaps at batch 128 on an AMX Xeon: bf16 85 ms against
143, fp32 208 against 246. (A GEMM plus an 81-tap scatter-add, written here before, was
1.6-2.5x slower than oneDNN on an AVX-512 Xeon.)

On a 2-core AVX-512 Xeon oneDNN's weight gradient was as fast or faster for narrow layers (one
layer's convolution and backward, oneDNN's time over the hand-written path's: 1 -> 16 channels
0.57-0.60, 16 -> 16 stride 2 0.41-0.94, 32 -> 64 0.72-0.86) and slower for wide ones; on a
2-core AVX2 EPYC it was slower for every layer (alone, oneDNN's time over the forward
convolution's, 2 threads: 1 -> 32 channels at batch 64 6.5x, 32 -> 64 stride 2 1.3x, 16 -> 16
stride 2 at batch 32 1.1x, PrimaryCaps at batch 128 2.3x). CUDA tensors (cuDNN has no such
gap) and no-grad calls take the plain path; under CPU autocast the choice is made for bf16.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dse.model.kernel_choice import choose


class _Conv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, groups, input_kernel, weight_kernel):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.groups, ctx.has_bias = stride, groups, bias is not None
        ctx.input_kernel, ctx.weight_kernel = input_kernel, weight_kernel
        return F.conv2d(x, weight, bias, stride=stride, groups=groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        s, k = ctx.stride, ctx.groups
        grad_out = grad_out.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = input_grad(ctx.input_kernel, x, weight, grad_out, s, k)
        if ctx.needs_input_grad[1]:
            grad_w = weight_grad(ctx.weight_kernel, x, weight, grad_out, s, k)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None, None


def _input_grad_by_phases(
    shape: torch.Size, weight: torch.Tensor, grad_out: torch.Tensor, s: int, k: int
) -> torch.Tensor:
    """The input gradient of a stride-s convolution as s*s stride-1 ones (the module doc):
    input rows p, p+s, ... (phase p) meet only the kernel rows p, p+s, ..., so their gradient
    is the stride-1 input gradient of grad_out through that sub-kernel."""
    h, w = grad_out.shape[2:]

    def reach(out_size: int, kernel_size: int, phase: int) -> int:
        """How many of the phase's rows (columns) some kernel tap reads."""
        taps = max(0, -(-(kernel_size - phase) // s))
        return out_size + taps - 1 if taps else 0

    rows = [reach(h, weight.shape[2], p) for p in range(s)]
    cols = [reach(w, weight.shape[3], q) for q in range(s)]
    grad_x = grad_out.new_empty(shape)
    for p in range(s):  # rows and columns past the kernel's reach: no gradient
        grad_x[:, :, p + s * rows[p] :: s, :] = 0
        grad_x[:, :, :, p + s * cols[p] :: s] = 0
    for p in range(s):
        for q in range(s):
            if rows[p] and cols[q]:
                part = torch.nn.grad.conv2d_input(
                    (shape[0], shape[1], rows[p], cols[q]),
                    weight[:, :, p::s, q::s].contiguous(),
                    grad_out,
                    stride=1,
                    groups=k,
                )
                grad_x[:, :, p : p + s * rows[p] : s, q : q + s * cols[q] : s] = part
    return grad_x


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


ONEDNN, AS_FORWARD, PHASES = "onednn", "as_forward", "phases"  # the backward's kernels
KERNELS = (ONEDNN, AS_FORWARD, PHASES)


def input_grad(
    kernel: str, x: torch.Tensor, weight: torch.Tensor, grad_out: torch.Tensor, s: int, k: int
) -> torch.Tensor:
    """The convolution's input gradient by `kernel` (ONEDNN or PHASES)."""
    if kernel == PHASES:
        return _input_grad_by_phases(x.shape, weight, grad_out, s, k)
    return torch.nn.grad.conv2d_input(x.shape, weight, grad_out, stride=s, groups=k)


def weight_grad(
    kernel: str, x: torch.Tensor, weight: torch.Tensor, grad_out: torch.Tensor, s: int, k: int
) -> torch.Tensor:
    """The convolution's weight gradient by `kernel` (ONEDNN or AS_FORWARD)."""
    if kernel == AS_FORWARD:
        return _weight_grad(x, grad_out, weight.shape, s, k)
    return torch.nn.grad.conv2d_weight(x, weight.shape, grad_out, stride=s, groups=k)


def weight_grad_kernel(x: torch.Tensor, weight: torch.Tensor, stride: int, groups: int) -> str:
    """Which kernel computes this convolution's weight gradient fastest on this machine:
    oneDNN's or the forward convolution (timed once per machine and shape, dse.model.kernel_choice).
    """
    return _timed_choice("weight", (ONEDNN, AS_FORWARD), weight_grad, x, weight, stride, groups)


def input_grad_kernel(x: torch.Tensor, weight: torch.Tensor, stride: int, groups: int) -> str:
    """Which kernel computes this convolution's input gradient fastest on this machine:
    oneDNN's, or stride*stride stride-1 ones (strided convolutions only; timed once per
    machine and shape)."""
    if stride == 1 or not x.requires_grad:
        return ONEDNN
    return _timed_choice("input", (ONEDNN, PHASES), input_grad, x, weight, stride, groups)


def _timed_choice(
    gradient: str,
    names: tuple[str, ...],
    compute: Callable[..., torch.Tensor],
    x: torch.Tensor,
    weight: torch.Tensor,
    stride: int,
    groups: int,
) -> str:
    """choose() among `names`, each run as compute(name, x, weight, grad_out, stride, groups)
    on a random grad_out of the convolution's output shape."""

    def candidates() -> dict[str, Callable[[], object]]:
        inputs, kernel = x.detach(), weight.detach()
        h, w = ((n - k) // stride + 1 for n, k in zip(x.shape[2:], weight.shape[2:], strict=True))
        grad_out = torch.randn(x.shape[0], weight.shape[0], h, w, dtype=x.dtype, device=x.device)
        return {
            name: functools.partial(compute, name, inputs, kernel, grad_out, stride, groups)
            for name in names
        }

    with torch.no_grad():
        key = f"conv2d {gradient} grad: {_shape_key(x, weight, stride, groups)}"
        return choose(key, names, candidates, KERNELS)


def _shape_key(x: torch.Tensor, weight: torch.Tensor, stride: int, groups: int) -> str:
    return (
        f"x {list(x.shape)} w {list(weight.shape)} stride {stride} groups {groups} {x.dtype} "
        f"threads {torch.get_num_threads()}"
    )


def conv2d_cpu(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, groups: int = 1
) -> torch.Tensor:
    """F.conv2d (no padding); on a CPU, training eagerly, its input and weight gradients by
    the kernels chosen for this machine (input_grad_kernel, weight_grad_kernel). Under CPU
    autocast it runs in the autocast dtype as F.conv2d would, the choices made for that dtype.
    Other calls take F.conv2d as it is."""
    if x.device.type != "cpu" or not torch.is_grad_enabled():
        return F.conv2d(x, weight, bias, stride=stride, groups=groups)
    if torch.is_autocast_enabled("cpu"):  # the casts autocast would make, differentiable
        dtype = torch.get_autocast_dtype("cpu")
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
        with torch.autocast("cpu", enabled=False):
            return conv2d_cpu(x, weight, bias, stride, groups)
    if torch.compiler.is_compiling():  # chosen while tracing: constants of the graph
        input_kernel, weight_kernel = _kernels_for_shapes(
            tuple(x.shape), tuple(weight.shape), stride, groups, str(x.dtype), x.requires_grad
        )
    else:
        input_kernel = input_grad_kernel(x, weight, stride, groups)
        weight_kernel = weight_grad_kernel(x, weight, stride, groups)
    if input_kernel == weight_kernel == ONEDNN:
        return F.conv2d(x, weight, bias, stride=stride, groups=groups)
    return _Conv2dFunction.apply(x, weight, bias, stride, groups, input_kernel, weight_kernel)


@torch.compiler.assume_constant_result
def _kernels_for_shapes(
    x_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    stride: int,
    groups: int,
    dtype: str,
    input_needs_grad: bool,
) -> tuple[str, str]:
    """(input gradient kernel, weight gradient kernel) of a convolution of these shapes, as
    conv2d_cpu chooses them, for torch.compile to take as constants when it traces (static
    shapes: one graph per batch size, dse.train.compiled). Timing, where nothing is recorded
    yet, runs on random tensors of the shapes."""
    real_dtype = getattr(torch, dtype.removeprefix("torch."))
    x = torch.randn(x_shape, dtype=real_dtype).requires_grad_(input_needs_grad)
    weight = torch.randn(weight_shape, dtype=real_dtype)
    return (
        input_grad_kernel(x, weight, stride, groups),
        weight_grad_kernel(x, weight, stride, groups),
    )


class Conv2d(nn.Conv2d):
    """nn.Conv2d (square stride, no padding) whose CPU training step takes conv2d_cpu."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d_cpu(x, self.weight, self.bias, self.stride[0])
