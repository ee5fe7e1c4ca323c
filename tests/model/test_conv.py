import pytest
import torch
from torch import nn

from dse.model.conv import CUSTOM_BACKWARD_MIN_CHANNELS, Conv2d


@pytest.mark.parametrize(
    ("c_in", "stride", "size"), [(1, 1, (20, 17)), (3, 2, (20, 20)), (2, 2, (19, 22))]
)
def test_conv_gradients_equal_torch(c_in, stride, size):
    torch.manual_seed(0)
    fast = Conv2d(c_in, 8, kernel_size=5, stride=stride).double()
    fast.custom_backward = True  # the hand-written backward, which 8 channels would not take
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


def test_conv_without_input_grad_and_without_grad():
    conv = Conv2d(1, 4, kernel_size=3)
    conv.custom_backward = True
    x = torch.rand(3, 1, 6, 6)
    out = conv(x)
    out.sum().backward()
    assert conv.weight.grad.shape == (4, 1, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), out.detach())


def test_only_wide_convolutions_take_the_hand_written_backward():
    x = torch.rand(2, 1, 12, 12)
    narrow, wide = Conv2d(1, CUSTOM_BACKWARD_MIN_CHANNELS // 2, 3), Conv2d(1, 256, 3)
    assert type(narrow(x).grad_fn).__name__ == "ConvolutionBackward0"
    assert type(wide(x).grad_fn).__name__ == "_Conv2dFunctionBackward"
