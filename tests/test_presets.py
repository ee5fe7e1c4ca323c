from __future__ import annotations

import pytest

from dse.errors import ConfigError
from dse.presets import preset, preset_names


def test_the_papers_eight_points():
    assert preset_names() == [
        "baseline",
        "exp_decay",
        "one_cycle",
        "warm_restarts",
        "adabatch",
        "warm_adabatch",
        "weight_sharing",
        "wab_ws",
    ]


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ConfigError, match="unknown preset 'fast'; choose from baseline, exp_decay"):
        preset("fast")


def test_preset_values_follow_the_spec():
    assert preset("exp_decay").lr_policy.model_dump() == {
        "name": "exp_decay",
        "rate": 0.96,
        "decay_steps": 2000,
        "staircase": False,
    }
    wr = preset("warm_restarts").lr_policy
    assert (wr.lr_max, wr.lr_min, wr.T_0, wr.T_mult) == (1e-3, 1e-4, 1, 1)
    ada = preset("adabatch").batch_schedule
    assert (ada.batch_size, ada.milestones) == (1, ((3, 16),))
    wab = preset("warm_adabatch")
    assert (wab.lr_policy.lr_max, wab.lr_policy.lr_min) == (1e-2, 1e-3)  # 10 x lr0 down to lr0
    ws = preset("weight_sharing").model
    assert (ws.weight_sharing, ws.sharing_stride, ws.decoder) == ("fastrcaps", 36, "small")
    both = preset("wab_ws")
    assert both.lr_policy == wab.lr_policy and both.model == ws and both.batch_schedule == ada
    assert all(preset(n).name == n for n in preset_names())
