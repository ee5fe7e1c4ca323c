"""K CapsNets of one configuration trained as one model: a leading model dimension K.

Every parameter of the K models is stacked ([K, ...]); one forward runs all K on their own
batches (x [K, B, C, H, W], labels [K, B]): the convolutions as one grouped convolution (the K
models' channels side by side, groups=K), the prediction vectors as one bmm over the K*G weight
groups, routing (per sample) on the K*B samples, the decoder's layers as batched matmuls. The
K models never mix: model k's numbers are those of CapsNet k up to the summation order, so with
one optimizer over the stacked parameters (Adam is element-wise) and the loss summed over the
models, model k trains as CapsNet k would alone (dse.train.fused; the tests compare both).

Shapes: K models, B batch per model, the rest as in dse.model.capsnet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dse.model.capsnet import (
    CapsNet,
    CapsNetOutput,
    capsnet_loss,
    single_iteration,
)
from dse.model.conv import conv2d_cpu
from dse.model.routing import fp32_routing, route
from dse.model.squash import EPS, SQUASH


def grouped_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int
) -> torch.Tensor:
    """K convolutions as one: x [B, K*C, H, W], weight [K, O, C, kh, kw] -> [B, K*O, h, w]; the
    weight gradient's kernel chosen as for a CapsNet's own (dse.model.conv.conv2d_cpu)."""
    k = weight.shape[0]
    folded = weight.reshape(k * weight.shape[1], *weight.shape[2:])  # [K*O, C, kh, kw]
    flat_bias = None if bias is None else bias.reshape(-1)
    return conv2d_cpu(x, folded, flat_bias, stride, k)


def _key(name: str) -> str:
    """A CapsNet parameter's name as a stacked parameter's (nn.ParameterDict refuses dots)."""
    return name.replace(".", "__")


class StackedCapsNet(nn.Module):
    """K CapsNets of one config, their parameters stacked: parameter `name` of CapsNet k is
    `self.stacked[name][k]` (names as in CapsNet.named_parameters)."""

    def __init__(self, models: list[CapsNet]):
        super().__init__()
        first = models[0]
        if any(m.config != first.config or m.input_shape != first.input_shape for m in models):
            raise ValueError("StackedCapsNet stacks CapsNets of one configuration")
        self.config, self.input_shape = first.config, first.input_shape
        self.n_classes, self.k = first.n_classes, len(models)
        self.names = [name for name, _ in first.named_parameters()]
        self.params = nn.ParameterDict()
        for name in self.names:
            own = [dict(m.named_parameters())[name].detach() for m in models]
            self.params[_key(name)] = nn.Parameter(torch.stack(own))
        self.sharing, self.squash = first.class_caps.sharing, SQUASH[first.config.squash]
        self.primary_shape = (first.primary.types, first.primary.dim)
        decoder = first.decoder
        self.decoder_mode = decoder.mode if decoder is not None else None
        layers = decoder.layers if decoder is not None else []
        self.n_linear = sum(isinstance(m, nn.Linear) for m in layers)

    def stacked(self, name: str) -> torch.Tensor | None:
        """CapsNet parameter `name` of all K models ([K, ...]); None where it has none."""
        return self.params.get(_key(name))

    def state_of(self, k: int) -> dict[str, torch.Tensor]:
        """CapsNet k's state_dict (copies on the CPU): what CapsNet.load_state_dict reads."""
        return {
            name: self.params[_key(name)][k].detach().to("cpu", copy=True) for name in self.names
        }

    @torch.no_grad()
    def load_state_of(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Set CapsNet k's weights from its state_dict."""
        for name in self.names:
            self.params[_key(name)][k].copy_(state[name])

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, reconstruct: bool = True
    ) -> CapsNetOutput:
        """x [K, B, C, H, W]; labels [K, B]. Scores [K, B, J], reconstruction [K, B, C*H*W]."""
        k, b = x.shape[:2]
        h = x.transpose(0, 1).reshape(b, k * x.shape[2], *x.shape[3:])  # [B, K*C, H, W]
        h = F.relu(grouped_conv(h, self.stacked("conv1.weight"), self.stacked("conv1.bias"), 1))
        out = grouped_conv(
            h, self.stacked("primary.conv.weight"), self.stacked("primary.conv.bias"), 2
        )  # [B, K*T*d, h, w]
        types, dim = self.primary_shape
        u = out.view(b, k, types, dim, *out.shape[2:]).permute(1, 0, 2, 4, 5, 3)  # [K,B,T,h,w,d]
        u = self.squash(u.reshape(k, b, -1, dim))  # [K, B, N, d]
        one_pass = self.config.routing_iterations == 1
        if one_pass:
            v = self.single_pass(u)  # [K, B, J, D]
        else:
            u, precision = fp32_routing(u)
            with precision:
                v = self.routed(u)  # [K, B, J, D]
        lengths = (v * v).sum(-1).add(EPS).sqrt()  # [K, B, J]
        recon = None
        if self.decoder_mode is not None and reconstruct:
            selected = labels if labels is not None else lengths.argmax(-1)
            recon = self.decode(v, selected)
        return CapsNetOutput(scores=lengths, reconstruction=recon)

    def single_pass(self, u: torch.Tensor) -> torch.Tensor:
        """u [K, B, N, d] -> v [K, B, J, D]: ClassCaps.single_pass of each model."""
        weight = self.stacked("class_caps.weight")  # [K, G, d, J*D]
        s = single_iteration(u, weight, self.sharing, self.n_classes)  # [K, B, J, D]
        bias = self.stacked("class_caps.bias")  # [K, J, D]
        return self.squash(s if bias is None else s + bias.unsqueeze(1))

    def routed(self, u: torch.Tensor) -> torch.Tensor:
        """u [K, B, N, d] -> v [K, B, J, D]: u_hat, then routing on the K*B samples."""
        k, b = u.shape[:2]
        u_hat = self.predictions(u)  # [K*B, J, N, D]
        bias = self.stacked("class_caps.bias")  # [K, J, D]: per sample, as routing adds it
        if bias is not None:
            bias = bias.unsqueeze(1).expand(k, b, *bias.shape[1:]).reshape(k * b, *bias.shape[1:])
        v = route(u_hat, self.config.routing_iterations, bias, self.squash)[0]
        return v.view(k, b, *v.shape[1:])

    def predictions(self, u: torch.Tensor) -> torch.Tensor:
        """u [K, B, N, d] -> u_hat [K*B, J, N, D]: ClassCaps.predictions over K*G groups."""
        k, b, n, d = u.shape
        g, p, j = self.sharing.groups, self.sharing.per_group, self.n_classes
        weight = self.stacked("class_caps.weight")  # [K, G, d, J*D]
        dd = weight.shape[-1] // j
        if self.sharing.strided:  # capsule n = q*G + g
            grouped = u.view(k, b, p, g, d).permute(0, 3, 1, 2, 4)  # [K, G, B, P, d]
        else:  # capsule n = g*P + q
            grouped = u.view(k, b, g, p, d).permute(0, 2, 1, 3, 4)  # [K, G, B, P, d]
        grouped = grouped.reshape(k * g, b * p, d)
        u_hat = torch.bmm(grouped, weight.reshape(k * g, d, j * dd)).view(k, g, b, p, j, dd)
        if self.sharing.strided:
            u_hat = u_hat.permute(0, 2, 4, 3, 1, 5)  # [K, B, J, P, G, D]
        else:
            u_hat = u_hat.permute(0, 2, 4, 1, 3, 5)  # [K, B, J, G, P, D]
        return u_hat.reshape(k * b, j, n, dd).contiguous()  # as ClassCaps.predictions

    def decode(self, v: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        """Decoder: v [K, B, J, D], selected [K, B] -> [K, B, C*H*W], Linear layers as baddbmm."""
        k, b, j, dd = v.shape
        if self.decoder_mode == "full":
            mask = F.one_hot(selected, j).to(v.dtype)  # [K, B, J]
            h = (v * mask.unsqueeze(-1)).reshape(k, b, j * dd)
        else:
            index = selected.view(k, b, 1, 1).expand(k, b, 1, dd)
            h = v.gather(2, index).squeeze(2)  # [K, B, D]
        for i in range(self.n_linear):  # decoder.layers: Linear, ReLU, Linear, ReLU, Linear
            weight = self.stacked(f"decoder.layers.{2 * i}.weight")  # [K, out, in]
            bias = self.stacked(f"decoder.layers.{2 * i}.bias")  # [K, out]
            h = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
            h = torch.relu(h) if i < self.n_linear - 1 else torch.sigmoid(h)
        return h

    def loss(
        self, out: CapsNetOutput, x: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """CapsNet.loss of each model, as [K] tensors; train on parts['loss'].sum(): each
        model's gradient is then its own loss's gradient."""
        return capsnet_loss(out, x, labels, self.config.recon_weight)
