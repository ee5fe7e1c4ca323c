from __future__ import annotations

import math

import pytest
import torch

from dse.config import WarmRestartsLR
from dse.presets import preset
from dse.train.schedules import batch_size_at, make_plan, warm_restarts_lr


def _plan(name: str, *sets: str, n_train: int = 1000):
    return make_plan(preset(name).with_overrides(list(sets)), n_train)


def _lrs(plan) -> list[float]:
    out, step = [], 0
    for epoch, n in enumerate(plan.steps):
        for i in range(n):
            out.append(plan.lr(step, epoch, i))
            step += 1
    return out


def test_constant():
    assert set(_lrs(_plan("baseline", "epochs=2"))) == {1e-3}


@pytest.mark.parametrize("staircase", [False, True])
def test_exp_decay_formula(staircase):
    plan = _plan(
        "exp_decay",
        "epochs=3",
        "lr_policy.decay_steps=7",
        f"lr_policy.staircase={str(staircase).lower()}",
        "batch_schedule.batch_size=50",
    )
    lrs = _lrs(plan)
    for step in (0, 1, 6, 7, 13, 59):
        exponent = math.floor(step / 7) if staircase else step / 7
        assert lrs[step] == pytest.approx(1e-3 * 0.96**exponent, rel=1e-12)


def test_one_cycle_shape_and_torch_equivalence():
    plan = _plan("one_cycle", "epochs=4", "batch_schedule.batch_size=40")  # 25 steps x 4
    lrs = _lrs(plan)
    total = plan.total_steps
    assert total == 100
    assert lrs[0] == pytest.approx(1e-4)
    assert max(lrs) == pytest.approx(1e-3) and lrs.index(max(lrs)) == 44  # 45% of the steps
    assert lrs[88] == pytest.approx(1e-4)  # back to lr_min by 90%
    assert lrs[-1] == pytest.approx(1e-5)  # then to lr_min / 10
    # same as torch's three-phase linear OneCycleLR, with Adam's betas left alone
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=1e-3,
        total_steps=total,
        pct_start=0.45,
        anneal_strategy="linear",
        div_factor=10.0,
        final_div_factor=10.0,
        three_phase=True,
        cycle_momentum=False,
    )
    for step in range(total):
        assert lrs[step] == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
        opt.step()
        sched.step()


@pytest.mark.parametrize(("t0", "mult"), [(1, 1), (1, 2), (2, 1)])
def test_warm_restarts_matches_sgdr(t0, mult):
    plan = _plan(
        "warm_restarts",
        "epochs=7",
        f"lr_policy.T_0={t0}",
        f"lr_policy.T_mult={mult}",
        "batch_schedule.batch_size=100",
    )
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=t0, T_mult=mult, eta_min=1e-4
    )
    step = 0
    for epoch, n in enumerate(plan.steps):
        for i in range(n):
            sched.step(epoch + i / n)  # fractional epochs, as SGDR's paper steps it
            assert plan.lr(step, epoch, i) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
            step += 1


def test_warm_restarts_formula_at_sampled_points():
    plan = _plan("warm_restarts", "epochs=3", "batch_schedule.batch_size=100")  # 10 steps/epoch
    assert plan.lr(0, 0, 0) == pytest.approx(1e-3)
    assert plan.lr(5, 0, 5) == pytest.approx(1e-4 + 0.9e-3 * (1 + math.cos(math.pi * 0.5)) / 2)
    assert plan.lr(10, 1, 0) == pytest.approx(1e-3)  # restart at each epoch (T_0 = 1)


def test_adabatch_switches_at_the_milestones():
    config = preset("adabatch").with_overrides(
        [
            "epochs=6",
            "batch_schedule.batch_size=16",
            "batch_schedule.milestones=[[3, 64], [5, 128]]",
        ]
    )
    sizes = [batch_size_at(config.batch_schedule, e) for e in range(6)]
    assert sizes == [16, 16, 16, 64, 64, 128]
    plan = make_plan(config, 1000)
    assert plan.steps == (63, 63, 63, 16, 16, 8)  # the last batch of an epoch may be smaller


def test_warm_adabatch_restarts_exactly_where_the_batch_size_changes():
    config = preset("warm_adabatch").with_overrides(
        [
            "epochs=6",
            "batch_schedule.batch_size=16",
            "batch_schedule.milestones=[[2, 64], [4, 128]]",
        ]
    )
    plan = make_plan(config, 512)
    step, restarts, last = 0, [], None
    for epoch, n in enumerate(plan.steps):
        for i in range(n):
            lr = plan.lr(step, epoch, i)
            if last is not None and lr > last:
                restarts.append((epoch, i, plan.batch_sizes[epoch], plan.batch_sizes[epoch - 1]))
            last = lr
            step += 1
    assert restarts == [(2, 0, 64, 16), (4, 0, 128, 64)]  # both at the first step of a new size
    assert plan.lr(0, 0, 0) == pytest.approx(1e-2)  # 10 x lr0
    assert plan.lr(63, 1, 31) == pytest.approx(1e-3, rel=0.01)  # close to lr0 before the switch
    assert plan.lr(64, 2, 0) == pytest.approx(1e-2)
    assert plan.lr(64 + 8, 3, 0) == pytest.approx(1e-3 + 9e-3 * (1 + math.cos(math.pi / 2)) / 2)


@pytest.mark.parametrize(
    ("t0", "mult", "restarts"),
    [(0.1, 1, [0.3, 0.5, 0.6, 0.7, 0.9]), (1, 3, [121.0]), (1, 1.5, [13.1875, 32.171875])],
)
def test_warm_restarts_restart_at_float_rounded_period_starts(t0, mult, restarts):
    # 0.9 % 0.1 and log3(243) round below the restart: its step must still get lr_max
    policy = WarmRestartsLR(T_0=t0, T_mult=mult)
    for pos in restarts:
        assert warm_restarts_lr(policy, pos) == pytest.approx(1e-3, rel=1e-9)
        assert warm_restarts_lr(policy, pos - 1e-6) == pytest.approx(1e-4, rel=1e-3)
