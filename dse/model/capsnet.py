"""CapsNet (Sabour, Frosst, Hinton 2017) with configurable widths and FasTrCaps' options.

Bottom-up: squash functions, PrimaryCaps, ClassCaps (prediction vectors + dynamic routing,
optionally with shared weights), the decoder, and the full model last.

Shapes: B batch, N input capsules (types x H x W), J classes, d primary dim, D class dim,
G weight groups (N without sharing), P capsules per group (N / G).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dse.config import CapsNetConfig
from dse.model.conv import Conv2d
from dse.model.costs import LayerCost, conv_flops, linear_flops
from dse.model.losses import margin_loss, reconstruction_loss
from dse.model.routing import fp32_routing, route
from dse.model.scopes import layer_scope
from dse.model.squash import EPS, SQUASH, squash


class PrimaryCaps(nn.Module):
    """Conv 9x9 stride 2 -> types x dim channels -> N = types*H*W capsules of `dim` components."""

    def __init__(self, in_channels: int, types: int, dim: int, squash_fn=squash):
        super().__init__()
        self.types, self.dim, self.squash = types, dim, squash_fn
        self.conv = Conv2d(in_channels, types * dim, kernel_size=9, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)  # [B, types*dim, H, W]
        b, _, h, w = out.shape
        # Capsule index = (type, h, w) with the components last. A reshape without this
        # permute mixes components of different positions into one capsule.
        u = out.view(b, self.types, self.dim, h, w).permute(0, 1, 3, 4, 2)  # [B, T, H, W, d]
        return self.squash(u.reshape(b, self.types * h * w, self.dim))  # [B, N, d]


@dataclass(frozen=True)
class Sharing:
    """How the N input capsules map to G weight matrices.

    contiguous: capsule n uses W[n // P] (none: P = 1; per_type: one W per primary type).
    strided: capsule n uses W[n % G] (the released FasTrCaps code, G = N / stride).
    """

    groups: int
    per_group: int
    strided: bool

    @classmethod
    def of(cls, mode: str, n_in: int, types: int, stride: int) -> Sharing:
        if mode == "none":
            return cls(groups=n_in, per_group=1, strided=False)
        if mode == "per_type":
            return cls(groups=types, per_group=n_in // types, strided=False)
        if n_in % stride:
            raise ValueError(
                f"model.sharing_stride: {stride} does not divide the {n_in} primary capsules"
            )
        return cls(groups=n_in // stride, per_group=stride, strided=True)


def single_iteration(
    u: torch.Tensor, weight: torch.Tensor, sharing: Sharing, n_out: int
) -> torch.Tensor:
    """s [..., B, J, D] of one routing iteration, without forming u_hat.

    With one iteration every coupling coefficient is 1/J, so s_j = (1/J) sum_n W_n u_n: the
    inputs summed within each weight group, then one matmul with the G weights laid end to end.
    The same numbers as routing over u_hat up to the summation order, in a few ops instead of
    u_hat's product, its layout copy and routing's own products (forward and backward).
    u [..., B, N, d], weight [..., G, d, J*D]: no leading dimension for a CapsNet, K for a
    StackedCapsNet.
    """
    *lead, _, d = u.shape
    g, p = sharing.groups, sharing.per_group
    # Capsule n is q*G + g when strided, else g*P + q: sum over q -> [..., B, G, d].
    groups_of = (p, g, d) if sharing.strided else (g, p, d)
    summed = u.view(*lead, *groups_of).sum(-3 if sharing.strided else -2)
    s = summed.flatten(-2) @ weight.flatten(-3, -2)  # [..., B, G*d] @ [..., G*d, J*D]
    return s.unflatten(-1, (n_out, -1)) / n_out


class ClassCaps(nn.Module):
    """Prediction vectors u_hat = W u (one batched matmul over weight groups) and routing."""

    def __init__(
        self,
        n_in: int,
        in_dim: int,
        n_out: int,
        out_dim: int,
        iterations: int,
        sharing: Sharing,
        bias: bool,
        squash_fn=squash,
    ):
        super().__init__()
        self.n_in, self.in_dim, self.n_out, self.out_dim = n_in, in_dim, n_out, out_dim
        self.iterations, self.sharing, self.squash = iterations, sharing, squash_fn
        # W[g] maps a d-vector to J*D predictions, stored [G, d, J*D] for bmm.
        self.weight = nn.Parameter(0.01 * torch.randn(sharing.groups, in_dim, n_out * out_dim))
        self.bias = nn.Parameter(torch.zeros(n_out, out_dim)) if bias else None

    def predictions(self, u: torch.Tensor) -> torch.Tensor:
        """u [B, N, d] -> u_hat [B, J, N, D], each W applied to its group in one bmm."""
        b = u.shape[0]
        g, p, j, dd = self.sharing.groups, self.sharing.per_group, self.n_out, self.out_dim
        if self.sharing.strided:  # capsule n = q*G + g
            grouped = u.view(b, p, g, self.in_dim).permute(2, 0, 1, 3)  # [G, B, P, d]
        else:  # capsule n = g*P + q
            grouped = u.view(b, g, p, self.in_dim).permute(1, 0, 2, 3)  # [G, B, P, d]
        grouped = grouped.reshape(g, b * p, self.in_dim)
        u_hat = torch.bmm(grouped, self.weight).view(g, b, p, j, dd)  # [G, B, P, J, D]
        # One copy into the routing layout; both routing products are then batched matmuls.
        if self.sharing.strided:
            u_hat = u_hat.permute(1, 3, 2, 0, 4)  # [B, J, P, G, D]
        else:
            u_hat = u_hat.permute(1, 3, 0, 2, 4)  # [B, J, G, P, D]
        # Contiguous: without sharing (P = 1) the reshape is a view with N strided by B*J*D,
        # and routing's batched products over it ran 1.4-2.8x slower than over the copy
        # (routing's forward and backward, standard model, batch 128: 123 ms as a view,
        # 96 ms with the copy, on a 2-core AMX Xeon).
        return u_hat.reshape(b, j, self.n_in, dd).contiguous()  # [B, J, N, D]

    def route(self, u_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dynamic routing. Returns v [B, J, D] and the last coupling coefficients c [B, J, N]."""
        return route(u_hat, self.iterations, self.bias, self.squash)

    def single_pass(self, u: torch.Tensor) -> torch.Tensor:
        """v [B, J, D] for one routing iteration (single_iteration: no u_hat)."""
        s = single_iteration(u, self.weight, self.sharing, self.n_out)
        return self.squash(s if self.bias is None else s + self.bias)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if self.iterations == 1:
            return self.single_pass(u)
        u, precision = fp32_routing(u)
        with precision:
            return self.route(self.predictions(u))[0]

    def flops(self) -> tuple[int, int]:
        """(u_hat, routing) forward FLOPs per sample, as routing over u_hat counts them (the
        model's FLOPs; with one iteration and shared weights, single_iteration does fewer)."""
        n, j, dd = self.n_in, self.n_out, self.out_dim
        u_hat = 2 * n * j * dd * self.in_dim
        routing = 2 * n * j * dd * (2 * self.iterations - 1)  # s every iteration, b all but last
        return u_hat, routing


class Decoder(nn.Module):
    """Masked capsules -> 512 -> 1024 -> image, sigmoid.

    full: all J capsules feed fc1, the unselected ones zeroed; small: only the selected one.
    """

    def __init__(self, mode: str, n_classes: int, caps_dim: int, image_numel: int):
        super().__init__()
        self.mode = mode
        in_features = caps_dim * (n_classes if mode == "full" else 1)
        self.layers = nn.Sequential(
            nn.Linear(in_features, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, 1024),
            nn.ReLU(inplace=True),
            nn.Linear(1024, image_numel),
            nn.Sigmoid(),
        )

    def forward(self, v: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        b = v.shape[0]
        if self.mode == "full":
            mask = F.one_hot(selected, v.shape[1]).to(v.dtype)  # [B, J]
            return self.layers((v * mask.unsqueeze(-1)).reshape(b, -1))
        return self.layers(v[torch.arange(b, device=v.device), selected])  # [B, D]

    def flops(self) -> int:
        return sum(linear_flops(m) for m in self.layers if isinstance(m, nn.Linear))


@dataclass
class CapsNetOutput:
    scores: torch.Tensor  # [B, J] capsule lengths |v_j|; the prediction is their argmax
    reconstruction: torch.Tensor | None  # [B, C*H*W]


def capsnet_loss(
    out: CapsNetOutput, x: torch.Tensor, labels: torch.Tensor, recon_weight: float
) -> dict[str, torch.Tensor]:
    """Margin loss plus recon_weight x reconstruction loss, and both parts: means over the
    batch (over the last batch dimension: one per model of a StackedCapsNet)."""
    margin = margin_loss(out.scores.float(), labels)
    parts = {"margin": margin}
    total = margin
    if out.reconstruction is not None:
        recon = reconstruction_loss(out.reconstruction.float(), x)
        parts["reconstruction"] = recon
        total = total + recon_weight * recon
    parts["loss"] = total
    return parts


class CapsNet(nn.Module):
    def __init__(self, config: CapsNetConfig, input_shape: tuple[int, int, int], n_classes: int):
        super().__init__()
        self.config, self.input_shape, self.n_classes = config, input_shape, n_classes
        c_in, h, w = input_shape
        squash_fn = SQUASH[config.squash]
        self.conv1 = Conv2d(c_in, config.conv_channels, kernel_size=9)
        self.primary = PrimaryCaps(
            config.conv_channels, config.primary_types, config.primary_dim, squash_fn
        )
        self.grid = ((h - 8) - 9) // 2 + 1, ((w - 8) - 9) // 2 + 1  # PrimaryCaps' H, W
        n_in = config.primary_types * self.grid[0] * self.grid[1]
        sharing = Sharing.of(
            config.weight_sharing, n_in, config.primary_types, config.sharing_stride
        )
        self.class_caps = ClassCaps(
            n_in,
            config.primary_dim,
            n_classes,
            config.class_dim,
            config.routing_iterations,
            sharing,
            config.class_bias,
            squash_fn,
        )
        self.decoder = (
            None
            if config.decoder == "none"
            else Decoder(config.decoder, n_classes, config.class_dim, math.prod(input_shape))
        )

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, reconstruct: bool = True
    ) -> CapsNetOutput:
        """x [B, C, H, W] in [0, 1]; labels select the decoded capsule in training.

        reconstruct=False skips the decoder (evaluation needs only the scores).
        """
        # Named scopes: `dse profile --by layer` attributes forward and backward time to them.
        with layer_scope("conv1"):
            h = F.relu(self.conv1(x), inplace=True)  # [B, 256, 20, 20]
        with layer_scope("primary_caps"):
            u = self.primary(h)  # [B, N, d]
        if self.class_caps.iterations == 1:
            with layer_scope("class_caps.routing"):  # no u_hat to form
                v = self.class_caps.single_pass(u)  # [B, J, D]
        else:
            u, precision = fp32_routing(u)
            with precision:
                with layer_scope("class_caps.u_hat"):
                    u_hat = self.class_caps.predictions(u)  # [B, J, N, D]
                with layer_scope("class_caps.routing"):
                    v = self.class_caps.route(u_hat)[0]  # [B, J, D]
        lengths = (v * v).sum(-1).add(EPS).sqrt()  # [B, J]
        recon = None
        if self.decoder is not None and reconstruct:
            with layer_scope("decoder"):
                selected = labels if labels is not None else lengths.argmax(1)
                recon = self.decoder(v, selected)
        return CapsNetOutput(scores=lengths, reconstruction=recon)

    def loss(
        self, out: CapsNetOutput, x: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """{'loss': total, 'margin': ..., 'reconstruction': ...}, all means over the batch."""
        return capsnet_loss(out, x, labels, self.config.recon_weight)

    def costs(self) -> list[LayerCost]:
        """Per-layer parameters and forward FLOPs per sample."""
        grid = self.grid[0] * self.grid[1]
        conv1_out = (self.input_shape[1] - 8) * (self.input_shape[2] - 8)
        u_hat, routing = self.class_caps.flops()
        caps_params = sum(p.numel() for p in self.class_caps.parameters())
        rows = [
            LayerCost("conv1", _params(self.conv1), conv_flops(self.conv1, conv1_out)),
            LayerCost("primary_caps", _params(self.primary), conv_flops(self.primary.conv, grid)),
            LayerCost("class_caps.u_hat", caps_params, u_hat),
            LayerCost("class_caps.routing", 0, routing),
        ]
        if self.decoder is not None:
            rows.append(LayerCost("decoder", _params(self.decoder), self.decoder.flops()))
        return rows


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
