from __future__ import annotations

import pytest
import torch

from dse.config import CnnConfig
from dse.model import MODELS, build_model, summarize


def test_cnn_baseline_layers_and_parameters():
    model = build_model(CnnConfig(), (1, 28, 28), 10)
    # conv 5x5x1x32, conv 5x5x32x64, FC 7*7*64 -> 1024, FC 1024 -> 10 (with biases)
    assert summarize(model).params == 832 + 51_264 + 3_212_288 + 10_250
    out = model(torch.rand(4, 1, 28, 28))
    assert out.scores.shape == (4, 10) and out.reconstruction is None


def test_cnn_on_smallnorb_shapes():
    model = build_model(CnnConfig(), (2, 32, 32), 5)
    assert model(torch.rand(2, 2, 32, 32)).scores.shape == (2, 5)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_registered_model_trains_a_step(name):
    from dse.config import CapsNetConfig

    config = CapsNetConfig(conv_channels=8, primary_types=2) if name == "capsnet" else CnnConfig()
    model = build_model(config, (1, 28, 28), 10)
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    loss = model.loss(model(x, y), x, y)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
    assert summarize(model).params == sum(r.params for r in model.costs())
