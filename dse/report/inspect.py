"""`dse inspect`: what a trained CapsNet's capsules hold, per capsule layer.

For N test images of each checkpoint's own dataset: the activations (capsule lengths) and the
pose components of the primary and the class capsules, as overlaid histograms in one HTML
page (several checkpoints, e.g. MNIST vs smallNORB, side by side), and a text summary:
sparsity (share of activations under 0.1) and pose spread (std, 1st and 99th percentiles).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from dse.data.batching import center_crops, to_float
from dse.data.datasets import load_dataset
from dse.errors import ConfigError
from dse.model.capsnet import CapsNet
from dse.report.pages import write_page
from dse.train.checkpoint import load_checkpoint

SPARSE_BELOW = 0.1
LAYERS = ("primary", "class")


@dataclass
class LayerStats:
    checkpoint: str
    dataset: str
    layer: str
    sparsity: float  # share of activations < SPARSE_BELOW
    pose_std: float
    pose_p1: float
    pose_p99: float


@dataclass
class Capsules:
    label: str
    dataset: str
    activations: dict[str, np.ndarray]  # layer -> capsule lengths
    poses: dict[str, np.ndarray]  # layer -> pose components


@torch.no_grad()
def capture(path: str, samples: int, data_dir: str | None = None) -> Capsules:
    checkpoint = load_checkpoint(path)
    model = checkpoint.model("cpu")
    if not isinstance(model, CapsNet):
        raise ConfigError(
            f"{path}: inspect needs a CapsNet checkpoint, not {checkpoint.config.model.name}"
        )
    data = load_dataset(checkpoint.config.dataset, "cpu", data_dir)
    x = to_float(center_crops(data.test.images[:samples], data.info.crop))
    h = F.relu(model.conv1(x))
    u = model.primary(h)  # [B, N, d]
    v = model.class_caps.route(model.class_caps.predictions(u))[0]  # [B, J, D]
    return Capsules(
        label=Path(path).name,
        dataset=checkpoint.config.dataset.name,
        activations={
            "primary": u.norm(dim=-1).flatten().numpy(),
            "class": v.norm(dim=-1).flatten().numpy(),
        },
        poses={"primary": u.flatten().numpy(), "class": v.flatten().numpy()},
    )


def summarize(capsules: Capsules) -> list[LayerStats]:
    rows = []
    for layer in LAYERS:
        poses = capsules.poses[layer]
        rows.append(
            LayerStats(
                checkpoint=capsules.label,
                dataset=capsules.dataset,
                layer=layer,
                sparsity=float((capsules.activations[layer] < SPARSE_BELOW).mean()),
                pose_std=float(poses.std()),
                pose_p1=float(np.percentile(poses, 1)),
                pose_p99=float(np.percentile(poses, 99)),
            )
        )
    return rows


def figure(all_capsules: list[Capsules]) -> go.Figure:
    titles = [f"{layer} capsule activations (lengths)" for layer in LAYERS]
    titles += [f"{layer} capsule pose components" for layer in LAYERS]
    fig = make_subplots(rows=2, cols=2, subplot_titles=titles)
    for capsules in all_capsules:
        name = f"{capsules.label} ({capsules.dataset})"
        for col, layer in enumerate(LAYERS, start=1):
            for row, values in ((1, capsules.activations[layer]), (2, capsules.poses[layer])):
                fig.add_trace(
                    go.Histogram(
                        x=values,
                        name=name,
                        legendgroup=name,
                        showlegend=(row, col) == (1, 1),
                        histnorm="probability",
                        opacity=0.6,
                        nbinsx=60,
                    ),
                    row=row,
                    col=col,
                )
    fig.update_layout(
        barmode="overlay",
        template="plotly_white",
        height=800,
        title="Capsule activations and poses per layer",
    )
    return fig


def write_inspect_report(all_capsules: list[Capsules], out_dir: Path) -> Path:
    return write_page(figure(all_capsules), out_dir / "inspect.html")
