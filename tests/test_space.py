from __future__ import annotations

import math

import optuna
import pytest

from dse.errors import ConfigError
from dse.space import Choice, Range, load_space, parse_space, shipped_spaces
from dse.space.axes import iter_grid


def _space(**fields):
    data = {"name": "t", "base": {"epochs": 2}, **fields}
    return parse_space(data, "t.yaml")


def test_shipped_spaces_load():
    assert set(shipped_spaces()) >= {"full.yaml", "paper.yaml", "quick.yaml", "smoke.yaml"}
    efficiency = load_space("efficiency.yaml")
    assert efficiency.grid_size() >= 24 and efficiency.config_for({}).epochs == 16
    assert efficiency.config_for({}).dataset.name == "mnist"
    smoke = load_space("smoke.yaml")
    assert smoke.finite and smoke.grid_size() >= 4
    assert load_space("paper.yaml").grid_size() == 8
    full = load_space("full.yaml")
    assert full.n_trials == 100 and len(full.points) == 8


def test_paper_space_is_the_eight_presets():
    space = load_space("paper.yaml")
    configs = [space.config_for(values) for values in space.grid()]
    assert [c.lr_policy.name for c in configs] == [
        "constant",
        "exp_decay",
        "one_cycle",
        "warm_restarts",
        "constant",
        "warm_adabatch",
        "constant",
        "warm_adabatch",
    ]
    assert all(c.epochs == 30 for c in configs)
    assert (
        configs[7].model.weight_sharing == "fastrcaps"
        and configs[7].batch_schedule.name == "adabatch"
    )


def test_full_space_points_reproduce_the_presets():
    from dse.presets import preset, preset_names

    space = load_space("full.yaml")
    for point, name in zip(
        space.points,
        preset_names(),
        strict=True,
    ):
        config = space.config_for(point).model_dump(exclude={"name"})
        assert config == preset(name).model_dump(exclude={"name"}), name


def test_axes_kinds_and_base():
    space = _space(
        base={"preset": "exp_decay", "epochs": 2, "model": {"conv_channels": 32}},
        axes={
            "model.routing_iterations": [1, 3],
            "optimizer.lr": {"low": 1e-4, "high": 1e-2, "log": True},
            "model.primary_types": {"low": 8, "high": 32, "step": 8},
            "precision": "fp32",
        },
    )
    kinds = {a.key: type(a).__name__ for a in space.axes}
    assert kinds == {
        "model.routing_iterations": "Choice",
        "optimizer.lr": "Range",
        "model.primary_types": "Range",
        "precision": "Fixed",
    }
    assert not space.finite
    config = space.config_for(
        {"model.routing_iterations": 1, "optimizer.lr": 0.003, "model.primary_types": 16}
    )
    assert (
        config.lr_policy.name == "exp_decay"
        and config.epochs == 2
        and config.model.conv_channels == 32
    )
    assert (config.model.routing_iterations, config.optimizer.lr, config.model.primary_types) == (
        1,
        0.003,
        16,
    )
    rng = next(a for a in space.axes if isinstance(a, Range) and a.integer)
    assert rng.points() == [8, 16, 24, 32]


def test_conditional_axes_expand_only_under_their_choice():
    space = _space(
        axes={
            "lr_policy.name": {
                "constant": {},
                "warm_restarts": {"lr_policy.T_0": [1, 2], "lr_policy.T_mult": 2},
            },
            "model.routing_iterations": [1, 3],
        }
    )
    grid = space.grid()
    assert len(grid) == (1 + 2) * 2
    assert {"lr_policy.name": "constant", "model.routing_iterations": 1} in grid
    assert {
        "lr_policy.name": "warm_restarts",
        "lr_policy.T_0": 2,
        "model.routing_iterations": 3,
    } in grid
    config = space.config_for(
        {"lr_policy.name": "warm_restarts", "lr_policy.T_0": 2, "model.routing_iterations": 3}
    )
    assert (config.lr_policy.T_0, config.lr_policy.T_mult) == (2, 2)  # the fixed sub-axis applies


def test_same_key_under_two_choices_gets_two_parameter_names():
    space = load_space("full.yaml")
    batch = next(a for a in space.axes if a.key == "batch_schedule.name")
    assert isinstance(batch, Choice)
    names = {sub.name for subs in batch.given.values() for sub in subs}
    assert (
        "batch_schedule.batch_size@fixed" in names and "batch_schedule.batch_size@adabatch" in names
    )
    params = space.encoded(space.points[4])  # adabatch
    assert params["batch_schedule.batch_size@adabatch"] == 1
    assert params["batch_schedule.milestones"] == "[[3, 16]]"  # lists travel as JSON text


def test_suggest_draws_only_active_parameters():
    space = load_space("full.yaml")
    study = optuna.create_study(
        directions=["minimize", "maximize"], sampler=optuna.samplers.RandomSampler(0)
    )
    invalid = 0
    for _ in range(40):
        trial = study.ask()
        values = space.suggest(trial)
        assert ("lr_policy.rate" in values) == (values["lr_policy.name"] == "exp_decay")
        assert set(trial.params) == set(space.encoded(values))
        try:
            config = space.config_for(values)
        except ConfigError:  # warm_adabatch drawn with a fixed batch
            invalid += 1
            assert values["lr_policy.name"] == "warm_adabatch"
            continue
        if config.model.weight_sharing == "fastrcaps":
            assert config.model.sharing_stride == 36  # a fixed value under its choice
        study.tell(trial, [1.0, 0.5])


def test_fixed_lists_use_value():
    space = load_space("quick.yaml")
    config = space.config_for(
        {
            "lr_policy.name": "constant",
            "model.routing_iterations": 1,
            "batch_schedule.name": "adabatch",
            "batch_schedule.batch_size": 16,
        }
    )
    assert config.batch_schedule.milestones == ((1, 64),) and config.batch_schedule.batch_size == 16


def test_constraints_and_objectives():
    space = _space(
        axes={"model.routing_iterations": [1, 3]},
        objectives={"train_time_s": "minimize", "val_accuracy": "maximize", "n_params": "minimize"},
        constraints=["val_accuracy >= 0.98", "n_params <= 1e6"],
    )
    assert space.metric_names == ["train_time_s", "val_accuracy", "n_params"]
    ge, le = space.constraints
    assert ge.violation({"val_accuracy": 0.99}) < 0 < ge.violation({"val_accuracy": 0.97})
    assert le.violation({"n_params": 2e6}) == 1e6


def test_a_space_written_with_the_old_metric_name_reads_as_today():
    """`params` was the parameter count's name; a space (and a study) using it still work."""
    old = _space(
        axes={"model.routing_iterations": [1, 3]},
        objectives={"train_time_s": "minimize", "params": "minimize"},
        constraints=["params <= 1e6"],
        reference_point={"train_time_s": 100, "params": 1e7},
    )
    assert old.metric_names == ["train_time_s", "n_params"]
    assert str(old.constraints[0]) == "n_params <= 1e+06"
    assert old.reference_point == (100.0, 1e7)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"bogus": 1}, "t.yaml: bogus: unknown key"),
        ({"n_trials": "x"}, "t.yaml: n_trials: Input should be a valid integer"),
        (
            {"axes": {"model.routing_iterations": []}},
            "axes.model.routing_iterations: empty list of choices",
        ),
        (
            {"axes": {"optimizer.lr": {"low": 0.1, "high": 0.01}}},
            "axes.optimizer.lr: low 0.1 is greater than high 0.01",
        ),
        (
            {"axes": {"lr_policy.name": ["constant", "cosine"]}},
            "lr_policy.name: 'cosine' is not a valid choice; choose from 'constant', 'exp_decay'",
        ),
        ({"axes": {"model.foo": [1, 2]}}, "model.foo: unknown key"),
        (  # the top-level value overwrote the sub-axis' in every point: 8 and 16 never ran
            {
                "axes": {
                    "batch_schedule.name": {
                        "fixed": {},
                        "adabatch": {"batch_schedule.batch_size": [8, 16]},
                    },
                    "batch_schedule.batch_size": [32, 64],
                }
            },
            "axes.batch_schedule.name.adabatch.batch_schedule.batch_size: batch_schedule."
            "batch_size is also an axis beside this choice",
        ),
        (
            {"axes": {"lr_policy.name": {"constant": {"lr_policy.name": "exp_decay"}}}},
            "axes.lr_policy.name.constant.lr_policy.name: lr_policy.name is also an axis",
        ),
        (  # a range with a misspelt or missing key: not read as choices named low, high, lg
            {"axes": {"optimizer.lr": {"low": 1e-4, "high": 1e-2, "lg": True}}, "n_trials": 2},
            "axes.optimizer.lr.lg: not a range key (low, high, log, step); did you mean log?",
        ),
        (
            {"axes": {"optimizer.lr": {"low": 1e-4}}, "n_trials": 2},
            "axes.optimizer.lr: a range needs low and high; high is missing",
        ),
        (  # YAML's .inf: the message was `model.routing_iterations: ... (got 4.0)`
            {"axes": {"model.routing_iterations": {"low": 4, "high": math.inf}}, "n_trials": 2},
            "t.yaml: axes.model.routing_iterations.high: expected a finite number, got inf",
        ),
        (
            {"axes": {"optimizer.lr": {"low": -math.inf, "high": 0.1}}, "n_trials": 2},
            "t.yaml: axes.optimizer.lr.low: expected a finite number, got -inf",
        ),
        (
            {"axes": {"optimizer.lr": {"low": 0.1, "high": 0.2, "step": math.nan}}},
            "t.yaml: axes.optimizer.lr.step: expected a finite number, got nan",
        ),
        (
            {"axes": {"model.routing_iterations": ["three"]}},
            "model.routing_iterations: Input should be a valid integer",
        ),
        ({"axes": {"preset": ["baseline", "fast"]}}, "axes.preset: unknown preset 'fast'"),
        (
            {"objectives": {"accuracy": "maximize", "train_time_s": "minimize"}},
            "objectives.accuracy: not a metric",
        ),
        ({"objectives": {"val_accuracy": "maximize"}}, "objectives: give 2 or 3 metrics, got 1"),
        (  # params is n_params' old name: read as one objective, the last direction won
            {
                "objectives": {
                    "train_time_s": "minimize",
                    "params": "minimize",
                    "n_params": "maximize",
                }
            },
            "objectives: params and n_params are one metric (n_params)",
        ),
        (
            {
                "objectives": {"train_time_s": "minimize", "n_params": "minimize"},
                "reference_point": {"train_time_s": 1, "n_params": 2, "params": 3},
            },
            "reference_point: n_params and params are one metric (n_params)",
        ),
        (
            {"objectives": {"val_accuracy": "up", "train_time_s": "minimize"}},
            "objectives.val_accuracy",
        ),
        ({"constraints": ["accuracy > 3"]}, "expected 'METRIC >= NUMBER'"),
        ({"constraints": ["acc >= 0.9"]}, "'acc' is not a metric"),
        # characters of a number that make none: one line, not a float() traceback
        ({"constraints": ["val_accuracy >= ."]}, "expected 'METRIC >= NUMBER'"),
        ({"constraints": ["val_accuracy >= e"]}, "expected 'METRIC >= NUMBER'"),
        ({"constraints": ["val_accuracy >= 1-2"]}, "expected 'METRIC >= NUMBER'"),
        ({"constraints": ["train_time_s <= 1e999"]}, "the bound must be a finite number"),
        ({"base": {"preset": "nope"}}, "base.preset: unknown preset 'nope'"),
        ({"base": {"epochs": 0}}, "epochs: Input should be greater than or equal to 1"),
        (
            {"axes": {"optimizer.lr": {"low": 0, "high": 1, "log": True}}},
            "a log range needs low > 0",
        ),
        (
            {"axes": {"model.primary_types": {"low": 2, "high": 7, "step": 2}}},
            "axes.model.primary_types: high 7 is not low 2 plus whole steps of 2 (the last step "
            "ends at 6)",
        ),
        (
            {"axes": {"optimizer.lr": {"low": 0.001, "high": 0.0045, "step": 0.002}}},
            "axes.optimizer.lr: high 0.0045 is not low 0.001 plus whole steps of 0.002",
        ),
        (
            {"axes": {"model.routing_iterations": [1, 1, 2]}},
            "axes.model.routing_iterations: 1 is listed twice",
        ),
        (  # one value for the config, so its points would run twice
            {"axes": {"lr_policy.name": ["warm_restarts"], "lr_policy.T_0": [1, 1.0, 2]}},
            "axes.lr_policy.T_0: 1 and 1.0 are one value, listed twice",
        ),
        (
            {"axes": {"model.recon_weight": [0, 0.0005, 0.0]}},
            "axes.model.recon_weight: 0 and 0.0 are one value, listed twice",
        ),
        (
            {"axes": {"model.routing_iterations": [1, 3]}, "points": [{"model.decoder": "full"}]},
            "points[0].model.decoder: not an axis",
        ),
        (
            {
                "axes": {"model.routing_iterations": [1, 3]},
                "points": [{"model.routing_iterations": 2}],
            },
            "points[0].model.routing_iterations: 2 is not one of the axis' choices",
        ),
        (  # a fixed axis is no parameter: the point would run the fixed value, fp32
            {
                "axes": {"precision": "fp32", "model.routing_iterations": [1, 3]},
                "points": [{"precision": "bf16", "model.routing_iterations": 3}],
            },
            "points[0].precision: 'bf16' is not the axis' value 'fp32'",
        ),
        (
            {"axes": {"optimizer.lr": {"low": 1e-4, "high": 1e-2}}},
            "n_trials: required for a space with continuous ranges",
        ),
        (  # a point's value on a range: a number, within it, on its steps
            {
                "axes": {"optimizer.lr": {"low": 1e-4, "high": 1e-2}},
                "n_trials": 2,
                "points": [{"optimizer.lr": "fast"}],
            },
            "points[0].optimizer.lr: 'fast' is not a number",
        ),
        (
            {
                "axes": {"optimizer.lr": {"low": 1e-4, "high": 1e-2}},
                "n_trials": 2,
                "points": [{"optimizer.lr": True}],
            },
            "points[0].optimizer.lr: True is not a number",
        ),
        (
            {
                "axes": {"model.conv_channels": {"low": 8, "high": 64, "step": 8}},
                "points": [{"model.conv_channels": 12}],
            },
            "points[0].model.conv_channels: 12 is not 8 plus whole steps of 8",
        ),
        (
            {
                "axes": {"model.conv_channels": {"low": 8, "high": 64, "step": 8}},
                "points": [{"model.conv_channels": 72}],
            },
            "points[0].model.conv_channels: 72 is outside [8, 64]",
        ),
        (
            {"axes": {"optimizer.lr": [0.001, float("inf")]}},
            "optimizer.lr: Input should be a finite number",
        ),
        (
            {"axes": {"optimizer.betas": [[0.9, 0.999], [1.5, 0.9]]}},
            "optimizer.betas[0]: Input should be less than 1",
        ),
        (
            {"axes": {"optimizer.lr": {"low": 1e-4, "high": float("inf")}}, "n_trials": 4},
            "optimizer.lr",
        ),
        (  # the config's error named the low end alone: "Input should be a valid integer
            # (got 2.0)", as if 2 were the mistake, not the step
            {"axes": {"model.primary_types": {"low": 2, "high": 8, "step": 0.5}}},
            "axes.model.primary_types: model.primary_types takes integers, but this range "
            "(low 2, high 8, step 0.5) gives floats; give low, high and step as integers",
        ),
        (  # nested as in base: it read as choices of a key `model` ("expected a mapping of
            # axes under this choice")
            {"axes": {"model": {"routing_iterations": [1, 3]}}},
            "axes.model: a section, not a key: axes name dotted keys (model.routing_iterations: ",
        ),
        (
            {"axes": {"model.primary_types": {"low": 0.5, "high": 8}}, "n_trials": 2},
            "model.primary_types: Input should be a valid integer (got 0.5)",
        ),
        (
            {"reference_point": {"train_time_s": 100}},
            "reference_point: give a value for each objective (train_time_s, val_accuracy)",
        ),
        (
            {"reference_point": {"train_time_s": 100, "val_accuracy": "low"}},
            "reference_point.val_accuracy: Input should be a valid number",
        ),
        (  # a NaN reference point made every hypervolume 0
            {"reference_point": {"train_time_s": float("nan"), "val_accuracy": 0.0}},
            "reference_point.train_time_s: Input should be a finite number",
        ),
        (
            {"reference_point": {"train_time_s": float("inf"), "val_accuracy": 0.0}},
            "reference_point.train_time_s: Input should be a finite number",
        ),
    ],
)
def test_bad_spaces_name_file_and_key(fields, message):
    with pytest.raises(ConfigError) as err:
        space = _space(**fields)
        space.planned_trials()
    assert str(err.value).startswith("t.yaml") and message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_a_space_of_no_axes_is_one_point_and_says_so():
    """`axes: {}` (or no axes key) is the base config alone: one grid point, and a note for
    `dse run` to print; a space with a second value says nothing."""
    for space in (_space(), _space(axes={})):
        assert space.grid() == [{}] and space.planned_trials() == 1
        assert space.one_point_note() == (
            "t.yaml: axes: none given, so the space is one point (its base config): one trial"
        )
    fixed = _space(axes={"precision": "fp32", "model.routing_iterations": [2]})
    assert fixed.one_point_note() == (
        "t.yaml: axes: none gives a second value, so the space is one point (its base config): "
        "one trial"
    )
    assert _space(axes={"model.routing_iterations": [1, 2]}).one_point_note() is None
    assert _space(axes={"optimizer.lr": {"low": 0.001, "high": 0.01}}).one_point_note() is None


@pytest.mark.parametrize(
    ("axes", "got"),
    [
        (None, "nothing (null); a space of its base config alone: axes: {} (or no axes key)"),
        ([], "[]; a space of its base config alone: axes: {} (or no axes key)"),
        (["optimizer.lr"], "['optimizer.lr']"),
        ("optimizer.lr", "'optimizer.lr'"),
    ],
)
def test_axes_that_are_not_a_mapping_are_one_line(axes, got):
    """`axes:` with every axis commented out is null: said, with how a space of no axes is
    written (pydantic said "Input should be an object (got None)")."""
    with pytest.raises(ConfigError) as err:
        _space(axes=axes)
    assert str(err.value) == (
        f"t.yaml: axes: expected a mapping of keys to values (KEY: [choices]), got {got}"
    )


def test_an_empty_mapping_names_the_file_and_the_missing_key(tmp_path):
    """A space file holding `{}`: one line naming the file and the one key a space needs
    (pydantic's words were `name: Field required`); an empty file says it is empty."""
    (tmp_path / "e.yaml").write_text("{}\n")
    with pytest.raises(ConfigError) as err:
        load_space(str(tmp_path / "e.yaml"))
    assert str(err.value) == f"{tmp_path / 'e.yaml'}: name: missing (a required key)"
    (tmp_path / "e.yaml").write_text("")
    with pytest.raises(ConfigError, match="e.yaml: the file is empty$"):
        load_space(str(tmp_path / "e.yaml"))


def test_space_files(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ConfigError, match="empty.yaml: the file is empty"):
        load_space(str(tmp_path / "empty.yaml"))
    (tmp_path / "bad.yaml").write_text("name: x\naxes: {a: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: invalid YAML"):
        load_space(str(tmp_path / "bad.yaml"))
    with pytest.raises(ConfigError, match="^space nowhere.yaml: no such file, nor a shipped space"):
        load_space("nowhere.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="list.yaml: expected a mapping"):
        load_space(str(tmp_path / "list.yaml"))
    # PyYAML keeps the last of a repeated key: the first axis would be dropped unseen
    twice = "name: x\naxes:\n  model.routing_iterations: [1, 2]\n  model.routing_iterations: [3]\n"
    (tmp_path / "twice.yaml").write_text(twice)
    with pytest.raises(
        ConfigError,
        match=r"twice.yaml:4: invalid YAML: key 'model.routing_iterations' is given twice$",
    ):
        load_space(str(tmp_path / "twice.yaml"))


def test_a_local_file_wins_over_a_shipped_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smoke.yaml").write_text("name: mine\naxes: {model.routing_iterations: [1, 2]}\n")
    assert load_space("smoke.yaml").name == "mine"


def test_selection_never_sees_the_test_set():
    with pytest.raises(ConfigError, match="objectives.test_accuracy: test_accuracy is reported"):
        _space(
            axes={"model.routing_iterations": [1, 3]},
            objectives={"train_time_s": "minimize", "test_accuracy": "maximize"},
        )
    with pytest.raises(ConfigError, match="constraints: test_accuracy is reported only"):
        _space(axes={"model.routing_iterations": [1, 3]}, constraints=["test_accuracy >= 0.9"])


def test_paper_cpu_space_is_the_eight_presets_at_cpu_size():
    space = load_space("paper_cpu.yaml")
    configs = {values["preset"]: space.config_for(values) for values in space.grid()}
    assert len(configs) == 8 and all(c.epochs == 4 for c in configs.values())
    assert configs["adabatch"].batch_schedule.milestones == ((1, 64),)
    assert configs["wab_ws"].model.weight_sharing == "fastrcaps"
    assert configs["wab_ws"].lr_policy.name == "warm_adabatch"
    assert configs["baseline"].batch_schedule.batch_size == 64


def test_base_config_is_the_empty_point_built_once():
    space = load_space("smoke.yaml")
    assert space.base_config() == space.config_for({})
    assert space.base_config() is space.base_config()
    repeated = space.with_repeats(3)  # after the base config is cached: the copy has its own
    assert repeated.base_config().repeats == 3
    assert repeated.base_config() == repeated.config_for({})
    assert space.base_config().repeats == 1


def test_datasets_are_the_base_the_points_and_every_dataset_choice():
    assert _space().datasets() == {"mnist"}
    assert _space(base={"dataset": {"name": "smallnorb"}}).datasets() == {"smallnorb"}
    adabatch = {"fixed": {}, "adabatch": {"dataset.name": ["smallnorb"]}}  # two choices deep
    space = _space(
        axes={
            "dataset.augment": [True, False],
            "lr_policy.name": {"constant": {"batch_schedule.name": adabatch}, "exp_decay": {}},
        },
    )
    assert space.datasets() == {"mnist", "smallnorb"}
    space = _space(
        axes={"dataset.name": ["mnist", "fashion_mnist"], "lr_policy.name": ["exp_decay"]},
        points=[{"dataset.name": "fashion_mnist", "lr_policy.name": "exp_decay"}],
    )
    assert space.datasets() == {"mnist", "fashion_mnist"}
    nested_only = _space(axes={"lr_policy.name": {"constant": {"dataset.name": ["smallnorb"]}}})
    assert nested_only.datasets() == {"mnist", "smallnorb"}
    fixed_under_a_choice = {"constant": {"dataset.name": "fashion_mnist"}, "exp_decay": {}}
    assert _space(axes={"lr_policy.name": fixed_under_a_choice}).datasets() == {
        "mnist",
        "fashion_mnist",
    }
    # the whole section as an axis: its choices name datasets too (they were missed, so the
    # run checked no data for them, and a trial met the missing files mid-run)
    sections = [{"name": "mnist"}, {"name": "fashion_mnist", "train_subset": 300}]
    assert _space(axes={"dataset": sections}).datasets() == {"mnist", "fashion_mnist"}
    fixed_section = {"constant": {}, "exp_decay": {"dataset": {"value": {"name": "smallnorb"}}}}
    assert _space(axes={"lr_policy.name": fixed_section}).datasets() == {"mnist", "smallnorb"}


def test_each_dataset_section_says_where_in_the_file_it_comes_from():
    """`dse run` names the file and the place (base, point, axis value) of a section whose
    subset the data cannot give."""
    space = _space(
        base={"dataset": {"train_subset": 300}},
        axes={"dataset.test_subset": {"low": 10, "high": 500}, "preset": ["baseline"]},
        points=[{"dataset.test_subset": 20}],
    )
    uses = [
        (use.where, use.config.train_subset, use.config.test_subset)
        for use in space.dataset_configs()
    ]
    assert uses == [
        ("t.yaml: base", 300, None),
        ("t.yaml: points[0]", 300, 20),
        ("t.yaml: axes.dataset.test_subset = 10", 300, 10),
        ("t.yaml: axes.dataset.test_subset = 500", 300, 500),
        ("t.yaml: axes.preset = 'baseline'", 300, None),
    ]


def test_contains_and_parameter_names_a_study_can_take():
    space = parse_space(
        {
            "name": "c",
            "axes": {
                "model.routing_iterations": [1, 3],
                "optimizer.lr": {"low": 1e-4, "high": 1e-2, "log": True},
            },
            "n_trials": 4,
        },
        "c.yaml",
    )
    assert space.contains({"model.routing_iterations": 3, "optimizer.lr": 1e-3})
    assert not space.contains({"model.routing_iterations": 2, "optimizer.lr": 1e-3})
    assert not space.contains({"model.routing_iterations": 3, "optimizer.lr": 1.0})
    assert not space.contains({"model.routing_iterations": 3})  # an active axis missing
    assert not space.contains({"model.routing_iterations": 3, "optimizer.lr": 1e-3, "x": 1})
    recorded = {
        "model.routing_iterations": optuna.distributions.CategoricalDistribution([1, 2]),
        "optimizer.lr": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True),
    }
    named = space.with_param_names(recorded)
    assert [a.name for a in named.axes] == ["model.routing_iterations#2", "optimizer.lr"]
    assert named.contains({"model.routing_iterations#2": 1, "optimizer.lr": 1e-3})
    assert not named.contains({"model.routing_iterations": 1, "optimizer.lr": 1e-3})
    assert named.fingerprint() == space.fingerprint()  # the file's space, whatever the names


def test_fingerprint_differences_name_the_keys():
    space = load_space("smoke")
    other = space.with_repeats(2)
    assert space.fingerprint().differences(other.fingerprint()) == ["base.repeats"]
    assert space.fingerprint().differences(space.fingerprint()) == []


def test_grid_size_counts_what_the_grid_lists():
    space = load_space("full.yaml")
    assert space.grid_size() == sum(1 for _ in iter_grid(space.axes)) == 7776
    ranged = _space(
        axes={
            "optimizer.lr": {"low": 0.001, "high": 0.003, "step": 0.001},
            "model.conv_channels": {"low": 8, "high": 24, "step": 8},
            "lr_policy.name": {"constant": {}, "exp_decay": {"lr_policy.rate": [0.9, 0.96]}},
        }
    )
    assert ranged.grid_size() == len(ranged.grid()) == 3 * 3 * 3


def test_choices_with_sub_axes_keep_their_type():
    """Choices written as mapping keys (to give them sub-axes) are ints or booleans when the
    key says so: they were read as strings, '3' is not an int."""
    space = _space(
        axes={
            "model.routing_iterations": {1: {}, 3: {"model.class_dim": [8, 16]}},
            "dataset.augment": {True: {}, False: {}},
        }
    )
    configs = [space.config_for(point) for point in space.grid()]
    assert [(c.model.routing_iterations, c.model.class_dim) for c in configs[::2]] == [
        (1, 16),
        (3, 8),
        (3, 16),
    ]
    assert {c.dataset.augment for c in configs} == {True, False}
