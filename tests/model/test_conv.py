import pytest
import torch
from torch import nn

from dse.model.conv import AS_FORWARD, PHASES, Conv2d
from dse.model.kernel_choice import ENV


@pytest.mark.parametrize(
    ("c_in", "stride", "size"),
    [(1, 1, (20, 17)), (3, 2, (20, 20)), (2, 2, (19, 22)), (2, 3, (17, 20)), (2, 4, (13, 13))],
)
def test_conv_gradients_equal_torch(c_in, stride, size, monkeypatch):
    """The hand-written gradients (whatever is faster here), strides whose phases see
    different numbers of taps (5 over stride 3: 2, 2, 1) and rows no tap reads included."""
    monkeypatch.setenv(ENV, f"{AS_FORWARD},{PHASES}")
    torch.manual_seed(0)
    fast = Conv2d(c_in, 8, kernel_size=5, stride=stride).double()
    plain = nn.Conv2d(c_in, 8, kernel_size=5, stride=stride).double()
    plain.load_state_dict(fast.state_dict())
    x = torch.rand(4, c_in, *size, dtype=torch.double, requires_grad=True)
    x_plain = x.detach().clone().requires_grad_(True)
    out = fast(x)
    expected = plain(x_plain)
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad)
    torch.testing.assert_close(fast.bias.grad, plain.bias.grad)
    torch.testing.assert_close(x.grad, x_plain.grad)


def test_conv_without_input_grad_and_without_grad(monkeypatch):
    monkeypatch.setenv(ENV, AS_FORWARD)
    conv = Conv2d(1, 4, kernel_size=3)
    x = torch.rand(3, 1, 6, 6)
    out = conv(x)
    out.sum().backward()
    assert conv.weight.grad.shape == (4, 1, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), out.detach())


def _twin_strided_convs() -> tuple[Conv2d, nn.Conv2d, torch.Tensor, torch.Tensor]:
    """A Conv2d (3 -> 8, 5x5, stride 2) and an nn.Conv2d with its weights, and one input for
    each (equal values, separate gradients)."""
    torch.manual_seed(0)
    fast = Conv2d(3, 8, kernel_size=5, stride=2)
    plain = nn.Conv2d(3, 8, kernel_size=5, stride=2)
    plain.load_state_dict(fast.state_dict())
    x = torch.rand(4, 3, 20, 20, requires_grad=True)
    return fast, plain, x, x.detach().clone().requires_grad_(True)


@pytest.mark.parametrize("kernel", ["onednn", AS_FORWARD, f"{AS_FORWARD},{PHASES}"])
def test_conv_under_bf16_autocast_matches_autocast_conv(kernel, monkeypatch):
    """Under CPU autocast the layer runs in bf16 as nn.Conv2d would, with fp32 gradients for
    the fp32 parameters, by either weight-gradient kernel."""
    monkeypatch.setenv(ENV, kernel)
    fast, plain, x, x_plain = _twin_strided_convs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, expected = fast(x), plain(x_plain)
    assert out.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    assert fast.weight.grad.dtype == fast.bias.grad.dtype == x.grad.dtype == torch.float32
    # bf16 products (8 mantissa bits), summed in another order: within bf16's rounding
    for mine, theirs in [(fast.weight.grad, plain.weight.grad), (x.grad, x_plain.grad)]:
        torch.testing.assert_close(mine, theirs, rtol=2e-2, atol=2e-2 * theirs.abs().max().item())
    torch.testing.assert_close(fast.bias.grad, plain.bias.grad, rtol=1e-2, atol=1e-2)


def test_a_compiled_conv_runs_the_chosen_kernels(monkeypatch):
    """Under torch.compile the kernels are chosen while tracing (static shapes: constants of
    the graph) and the hand-written backward is traced into it, in one graph; the gradients
    are the plain convolution's."""
    from dse.model import conv

    monkeypatch.setenv(ENV, f"{AS_FORWARD},{PHASES}")
    chosen = []  # the choices made while tracing (real Python then, not traced)
    for name in ("input_grad_kernel", "weight_grad_kernel"):
        real = getattr(conv, name)
        spy = lambda *args, real=real: chosen.append(real(*args)) or chosen[-1]  # noqa: E731
        monkeypatch.setattr(conv, name, spy)
    torch.compiler.reset()
    fast, plain, x, x_plain = _twin_strided_convs()
    compiled = torch.compile(lambda x: (fast(x) ** 2).sum(), fullgraph=True)  # no eager part
    compiled(x).backward()
    (plain(x_plain) ** 2).sum().backward()
    assert chosen == [PHASES, AS_FORWARD]
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x.grad, x_plain.grad, rtol=1e-4, atol=1e-5)
