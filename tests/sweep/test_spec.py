"""SweepSpec: every search space validates; each class of bad input is named, all at once."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from advent_sweep.advent.config import TrainConfig
from advent_sweep.errors import ConfigError
from advent_sweep.sweep.spec import SweepSpec
from advent_sweep.validation import validate

SEARCH_SPACES = sorted((Path(__file__).parents[2] / "search_spaces").glob("*.yaml"))
METHODS = "'source_only', 'minent', 'advent' or 'advent_minent'"


def spec_values(**changes) -> dict:
    """A small valid space.yaml as a mapping; keyword arguments replace top-level sections."""
    values = {
        "name": "unit",
        "trainer": {"backbone": "resnet18", "iterations": 300, "poly_horizon": 300, "eval_interval": 50, "lr": 1e-2},
        "space": {
            "method": {"type": "categorical", "choices": ["minent", "advent", "advent_minent"]},
            "lambda_ent_main": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True, "when": {"method": ["minent", "advent_minent"]}},
            "lambda_adv_main": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True, "when": {"method": ["advent", "advent_minent"]}},
        },
        "searcher": {"points_to_evaluate": [{"method": "advent", "lambda_adv_main": 1e-3}]},
        "scheduler": {"grace_period": 50, "reduction_factor": 3, "max_t": 300},
        "num_samples": 8,
        "max_concurrent": 2,
    }
    values.update(copy.deepcopy(changes))
    return values


def problems(values: dict) -> list[str]:
    """The lines of the ConfigError that validating ``values`` raises."""
    with pytest.raises(ConfigError) as error:
        validate(SweepSpec, values, "space.yaml")
    head, *lines = str(error.value).splitlines()
    assert head == "space.yaml: invalid SweepSpec:"
    return [line.strip() for line in lines]


def with_space(**params) -> dict:
    values = spec_values()
    values["space"].update(copy.deepcopy(params))
    return values


# --- the files in search_spaces/ -------------------------------------------------------------------


@pytest.mark.parametrize("path", SEARCH_SPACES, ids=lambda p: p.name)
def test_every_search_space_validates(path):
    spec = SweepSpec.from_yaml(path)
    assert spec.name == path.stem
    assert SweepSpec.model_validate(spec.model_dump()) == spec  # resolved values validate as they are
    assert SweepSpec.model_validate(json.loads(spec.model_dump_json())) == spec  # as sweep.json stores them
    assert f"sweep {spec.name!r}" in spec.describe()


def test_search_spaces_are_all_there():
    names = {path.name for path in SEARCH_SPACES}
    assert {"quickstart.yaml", "gta5_cityscapes_resnet101.yaml", "gta5_cityscapes_vgg16.yaml",
            "gta5_cityscapes_backbones.yaml", "synthia_cityscapes_resnet101.yaml", "ablation.yaml"} <= names


def test_real_data_specs_validate_without_their_folders():
    spec = SweepSpec.from_yaml(Path(__file__).parents[2] / "search_spaces" / "synthia_cityscapes_resnet101.yaml")
    assert not Path(spec.data.source_root).exists()
    assert (spec.data.source, spec.data.protocol, spec.resources.gpu) == ("synthia", 16, 1.0)
    assert (spec.base_config.iterations, spec.base_config.poly_horizon, spec.base_config.eval_interval) == (120_000, 250_000, 2_000)


def test_quickstart_numbers():
    spec = SweepSpec.from_yaml(Path(__file__).parents[2] / "search_spaces" / "quickstart.yaml")
    assert (spec.scheduler.grace_period, spec.scheduler.reduction_factor, spec.scheduler.max_t) == (60, 3.0, 120)
    assert spec.scheduler.rungs() == [60]
    assert (spec.num_samples, spec.max_concurrent, spec.resources.cpu, spec.resources.gpu) == (9, 2, 1.0, 0.0)
    assert spec.base_config.backbone == "resnet18" and spec.data.synthetic.size == (64, 64)
    assert spec.searcher.points_to_evaluate[:2] == [{"method": "source_only"}, {"method": "advent", "lambda_adv_main": 1e-3}]
    assert spec.base_config.source_warmup.model_dump() == {"iterations": 240, "lr": 5e-3, "seed": 0}
    assert spec.base_config.bn_momentum == 0.01 and spec.train_config({}).threads == 1
    assert spec.base_config.lr == 2.5e-4  # the paper's: at 2.5e-3 source-only spread over seeds with std 1.7


def test_backbones_space_starts_each_backbone_from_its_own_weights():
    spec = SweepSpec.from_yaml(Path(__file__).parents[2] / "search_spaces" / "gta5_cityscapes_backbones.yaml")
    resnet = spec.train_config({"backbone": "resnet101", "method": "advent"})
    vgg = spec.train_config({"backbone": "vgg16", "lr": 1e-5, "method": "advent"})
    assert resnet.weights == "/data/pretrained/DeepLab_resnet_pretrained_imagenet.pth"
    assert (resnet.lr, resnet.param_repeats) == (2.5e-4, "official")
    assert (vgg.weights, vgg.lr, vgg.param_repeats) == ("VGG16_Weights.IMAGENET1K_V1", 1e-5, "unique")
    assert "weights           by backbone: resnet101 → /data/pretrained/" in spec.describe()


def test_ablation_runs_the_whole_grid():
    spec = SweepSpec.from_yaml(Path(__file__).parents[2] / "search_spaces" / "ablation.yaml")
    assert spec.searcher.sampler == "grid" and spec.scheduler.type == "fifo"
    assert spec.num_samples == 3 * 2 * 2 * 2 * 2
    assert spec.grid()["seed"] == [0, 1]


# --- defaults and resolution -----------------------------------------------------------------------


def test_defaults_are_resolved():
    values = spec_values()
    del values["scheduler"], values["searcher"]
    spec = SweepSpec.model_validate(values)
    assert spec.storage == os.path.join(os.path.expanduser("~"), "advent-sweep-results")
    assert (spec.searcher.sampler, spec.searcher.seed, spec.searcher.points_to_evaluate) == ("tpe", 0, [])
    assert (spec.metric, spec.mode, spec.max_failures) == ("target_miou", "max", 2)
    # ASHA: max_t = trainer.iterations, grace_period = trainer.eval_interval, reduction factor 3
    assert (spec.scheduler.type, spec.scheduler.max_t, spec.scheduler.grace_period, spec.scheduler.reduction_factor) == ("asha", 300, 50, 3.0)
    assert spec.data.source == "synthetic"


def test_a_validators_mode_defaults_to_its_direction():
    assert SweepSpec.model_validate(spec_values(metric="target_entropy")).mode == "min"
    for validator in ("target_im", "target_bnm", "target_snd", "source_val_miou"):
        assert SweepSpec.model_validate(spec_values(metric=validator)).mode == "max"
    assert SweepSpec.model_validate(spec_values(metric="iou.road")).mode == "max"
    assert SweepSpec.model_validate(spec_values(metric="target_miou_13")).mode == "max"


def test_values_are_normalised_for_train_config():
    values = with_space(class_prior_mu={"type": "categorical", "choices": ["0", 1]})
    values["space"]["lambda_adv_main"]["low"] = "1e-5"  # YAML reads 1e-5 (no dot) as a string
    spec = SweepSpec.model_validate(values)
    assert spec.space["class_prior_mu"].choices == [0.0, 1.0]
    assert spec.space["lambda_adv_main"].low == 1e-5


def test_storage_keeps_uris_and_makes_paths_absolute(tmp_path, monkeypatch):
    assert SweepSpec.model_validate(spec_values(storage="s3://bucket/sweeps")).storage == "s3://bucket/sweeps"
    monkeypatch.chdir(tmp_path)
    spec = SweepSpec.model_validate(spec_values(storage="results"))
    assert spec.storage == str(tmp_path / "results")
    assert spec.folder == str(tmp_path / "results" / "unit")
    assert spec.with_storage("gs://b/x").storage == "gs://b/x"
    assert spec.with_storage("~/elsewhere").storage == os.path.expanduser("~/elsewhere")
    with pytest.raises(ConfigError, match=r"storage: not a valid URI; allowed: a local folder or a URI"):
        spec.with_storage("://nothing")


# --- train_config ----------------------------------------------------------------------------------


def test_train_config_is_trainer_plus_data_plus_params():
    spec = SweepSpec.model_validate(spec_values(data={"synthetic": {"size": [32, 32]}}))
    config = spec.train_config({"method": "minent", "lambda_ent_main": 0.02})
    assert isinstance(config, TrainConfig)
    assert (config.method, config.lambda_ent_main, config.backbone, config.iterations, config.lr) == ("minent", 0.02, "resnet18", 300, 1e-2)
    assert config.lambda_adv_main == 1e-3  # inactive: the TrainConfig default
    assert config.data.synthetic.size == (32, 32)


def test_train_config_rejects_unknown_and_invalid_params():
    spec = SweepSpec.model_validate(spec_values())
    with pytest.raises(ConfigError, match=r"trial parameters lr are not in the space; allowed: method, lambda_ent_main, lambda_adv_main"):
        spec.train_config({"lr": 0.1})
    with pytest.raises(ConfigError, match=r"method: Input should be"):
        spec.train_config({"method": "nope"})


@pytest.mark.parametrize(("cpu", "threads"), [(1, 1), (2.5, 2), (0.5, 1), (4, 4)])
def test_a_trial_computes_on_as_many_threads_as_it_holds_whole_cpus(cpu, threads):
    spec = SweepSpec.model_validate(spec_values(resources={"cpu": cpu}))
    assert spec.train_config({"method": "minent"}).threads == threads
    assert f"(torch threads: {threads})" in spec.describe()


def test_trainer_threads_win_over_resources_cpu():
    values = spec_values(resources={"cpu": 2})
    values["trainer"]["threads"] = 1
    assert SweepSpec.model_validate(values).train_config({"method": "minent"}).threads == 1


# --- each class of bad input names its field ---------------------------------------------------------


def test_unknown_top_level_key():
    assert problems(spec_values(foo=1)) == [
        "foo: unknown key; allowed: name, storage, data, trainer, space, searcher, scheduler, num_samples, "
        "max_concurrent, resources, metric, mode, max_failures, checkpoints, tracking"
    ]


def test_unknown_key_in_trainer():
    values = spec_values()
    values["trainer"]["lrr"] = 0.1
    (line,) = problems(values)
    assert line.startswith("trainer.lrr: unknown key; allowed: method, backbone, weights, source_warmup, multi_level,")
    assert "lr, lr_discriminator" in line and "data" not in line.split("allowed:")[1]


def test_data_is_not_a_trainer_setting():
    values = spec_values()
    values["trainer"]["data"] = {"source": "gta5"}
    assert problems(values) == ["trainer.data: not allowed here: data settings go in the top-level data section"]


def test_unknown_key_in_space_param_and_searcher_and_data():
    values = spec_values(searcher={"sampler": "tpe", "sed": 1}, data={"synthetic": {"sise": [8, 8]}})
    values["space"]["lambda_adv_main"]["lowest"] = 0.1
    assert problems(values) == [
        "data.synthetic.sise: unknown key; allowed: seed, size, num_train, num_val, target_style",
        "space.lambda_adv_main.lowest: unknown key; allowed: type, low, high, log, step, when",
        "searcher.sed: unknown key; allowed: sampler, seed, points_to_evaluate, n_startup_trials",
    ]


def test_wrong_types():
    values = spec_values(num_samples="many")
    values["trainer"]["lr"] = "fast"
    values["space"]["lambda_adv_main"]["high"] = [1]
    assert problems(values) == [
        "trainer.lr: Input should be a valid number, unable to parse string as a number (got 'fast')",
        "space.lambda_adv_main.high: Input should be a valid number (got [1])",
        "num_samples: Input should be a valid integer, unable to parse string as an integer (got 'many')",
    ]


def test_out_of_range_trainer_value_and_inconsistent_trainer():
    values = spec_values()
    values["trainer"].update(class_prior_mu=2, poly_horizon=100)
    assert problems(values) == [
        "trainer.class_prior_mu: Input should be less than or equal to 1 (got 2)",
        "trainer: iterations (300) must not exceed poly_horizon (100)",
    ]


def test_low_greater_than_high_and_log_needs_positive_low():
    values = with_space(
        lr={"type": "float", "low": 0.1, "high": 1e-3, "log": True},
        class_prior_mu={"type": "float", "low": 0.0, "high": 1.0, "log": True},
    )
    del values["trainer"]["lr"]
    assert problems(values) == [
        "space.lr.low: greater than high (0.001); allowed: low <= high (got 0.1)",
        "space.class_prior_mu.low: must be > 0 on a log scale; allowed: low > 0 with log: true (got 0.0)",
    ]


def test_unknown_parameter_type_and_setting():
    values = with_space(momentum={"type": "uniform", "low": 0, "high": 1}, lambda_foo={"type": "float", "low": 0, "high": 1})
    lines = problems(values)
    assert lines[0] == "space.momentum.type: unknown parameter type; allowed: float, int, categorical (got 'uniform')"
    assert lines[1].startswith("space.lambda_foo: not a TrainConfig setting; allowed: method, backbone,")
    assert len(lines) == 2


def test_unknown_sampler():
    assert problems(spec_values(searcher={"sampler": "bayes"})) == [
        "searcher.sampler: Input should be 'tpe', 'random', 'gp', 'cmaes' or 'grid' (got 'bayes')"
    ]


def test_unknown_method_choice():
    values = with_space(method={"type": "categorical", "choices": ["advent", "adventt"]})
    assert problems(values) == [f"space.method.choices.1: Input should be {METHODS} (got 'adventt')"]


def test_invalid_choices_for_their_setting():
    values = with_space(
        backbone={"type": "categorical", "choices": ["resnet18", "resnet9000"]},
        seed={"type": "categorical", "choices": [0, 0, 1]},
    )
    del values["trainer"]["backbone"]
    lines = problems(values)
    assert lines[0].startswith("space.backbone.choices.1: unknown backbone 'resnet9000'; allowed: ")
    assert lines[1] == "space.seed.choices.1: a duplicate; allowed: distinct values (got 0)"


def test_empty_or_missing_space():
    values = spec_values(space={})
    assert problems(values) == [
        "space: empty: a sweep needs at least one parameter to search; allowed: a mapping of TrainConfig setting → "
        "{type: float|int|categorical, ...}"
    ]
    del values["space"]
    assert problems(values)[0].startswith("space: missing; allowed: a mapping of TrainConfig setting")


def test_settings_that_cannot_be_searched():
    values = with_space(
        iterations={"type": "int", "low": 100, "high": 300},
        data={"type": "categorical", "choices": ["x"]},
        lr={"type": "float", "low": 1e-3, "high": 1e-1},  # also fixed in trainer
    )
    lines = problems(values)
    assert lines[0].startswith("space.iterations: cannot be searched: the training budget is fixed per sweep")
    assert lines[1] == "space.data: cannot be searched: the data is set once per sweep in the top-level data section"
    assert lines[2] == "space.lr: also fixed in trainer.lr; a setting is either fixed or searched: remove one"


def test_threads_cannot_be_searched():
    assert problems(with_space(threads={"type": "int", "low": 1, "high": 4})) == [
        "space.threads: cannot be searched: set by resources.cpu or trainer.threads"
    ]


@pytest.mark.parametrize(("threads", "message"), [
    (0, "Input should be greater than or equal to 1 (got 0)"),
    (-1, "Input should be greater than or equal to 1 (got -1)"),
    ("two", "Input should be a valid integer, unable to parse string as an integer (got 'two')"),
])
def test_trainer_threads_below_one_or_not_a_number(threads, message):
    values = spec_values()
    values["trainer"]["threads"] = threads
    assert problems(values) == [f"trainer.threads: {message}"]


def test_param_type_must_fit_the_setting():
    values = with_space(seed={"type": "float", "low": 0, "high": 3}, amp={"type": "int", "low": 0, "high": 1})
    assert problems(values) == [
        "space.seed.type: float does not fit seed (a int setting); allowed: int, categorical (got 'float')",
        "space.amp.type: int does not fit amp (a non-numeric setting); allowed: categorical (got 'int')",
    ]


def test_bounds_must_give_a_valid_train_config():
    values = with_space(
        class_prior_mu={"type": "float", "low": 0.0, "high": 2.0},
        poly_horizon={"type": "int", "low": 100, "high": 1000, "step": 100},
    )
    del values["trainer"]["poly_horizon"]
    assert problems(values) == [
        "space.class_prior_mu.high: Input should be less than or equal to 1 (got 2.0)",
        "space.poly_horizon.low: iterations (300) must not exceed poly_horizon (100) (got 100)",
    ]


def test_step_must_divide_the_range_and_not_mix_with_log():
    values = with_space(
        class_prior_mu={"type": "float", "low": 0.0, "high": 1.0, "step": 0.3},
        weight_decay={"type": "float", "low": 1e-5, "high": 1e-3, "log": True, "step": 1e-5},
    )
    assert problems(values) == [
        "space.class_prior_mu.step: high - low (1.0 - 0.0) is not a multiple of step; allowed: a step that divides the range (got 0.3)",
        "space.weight_decay.step: a step cannot be combined with log: true; allowed: remove step or log (got 1e-05)",
    ]


def test_bad_when():
    values = with_space(
        class_prior_mu={"type": "float", "low": 0, "high": 1, "when": {"methd": ["advent"]}},
        entropy_low={"type": "float", "low": 0, "high": 0.5, "when": {"lambda_adv_main": [0.1]}},
    )
    values["space"]["lambda_ent_main"]["when"] = {"method": ["minent", "source_only"]}
    assert problems(values) == [
        "space.lambda_ent_main.when.method.1: not a choice of method; allowed: minent, advent, advent_minent (got 'source_only')",
        "space.class_prior_mu.when.methd: methd is not a parameter of this space; allowed: method",
        "space.entropy_low.when.lambda_adv_main: lambda_adv_main is a float parameter; a condition needs a categorical one; allowed: method",
    ]


def test_conditions_must_not_form_a_cycle():
    values = with_space(multi_level={"type": "categorical", "choices": [True, False], "when": {"method": ["advent"]}})
    values["space"]["method"]["when"] = {"multi_level": [True]}
    assert problems(values) == [
        "space.method.when: conditions form a cycle (method → multi_level → method); allowed: conditions that lead back to no parameter"
    ]


def test_points_to_evaluate_out_of_range_unknown_and_inactive():
    points = [
        {"method": "advent", "lambda_adv_main": 5.0},
        {"method": "minent", "lambda_adv_main": 1e-3, "lr": 0.1},
        {"method": "ADVENT"},
    ]
    assert problems(spec_values(searcher={"points_to_evaluate": points})) == [
        "searcher.points_to_evaluate.0.lambda_adv_main: out of range; allowed: float [1e-05, 0.1] log (got 5.0)",
        "searcher.points_to_evaluate.1.lr: not a parameter of the space; allowed: method, lambda_ent_main, lambda_adv_main (got 0.1)",
        "searcher.points_to_evaluate.1.lambda_adv_main: inactive in this point: lambda_adv_main is sampled only when method in "
        "[advent, advent_minent], and the point sets method=minent; allowed: leave it out of this point",
        "searcher.points_to_evaluate.2.method: not one of the choices; allowed: minent, advent, advent_minent (got 'ADVENT')",
    ]


def test_more_points_than_trials():
    points = [{"method": m} for m in ("minent", "advent", "advent_minent")]
    assert problems(spec_values(num_samples=2, searcher={"points_to_evaluate": points})) == [
        "searcher.points_to_evaluate: 3 points but only 2 trials (num_samples); allowed: at most num_samples points"
    ]


def test_metric_mode_mismatch_says_why():
    assert problems(spec_values(metric="target_entropy", mode="max")) == [
        "mode: max does not fit metric target_entropy: target_entropy is the label-free validator mean_n H(p_n), the mean "
        "normalised prediction entropy on target val; lower is better; allowed: min (got 'max')"
    ]
    assert problems(spec_values(metric="target_bnm", mode="min")) == [
        "mode: min does not fit metric target_bnm: target_bnm is the label-free validator batch nuclear-norm ‖P‖_* / N of "
        "the N×C target prediction matrix; higher is better; allowed: max (got 'min')"
    ]
    assert problems(spec_values(mode="min")) == [
        "mode: min does not fit metric target_miou: target_miou is an IoU in percent: higher is better; allowed: max (got 'min')"
    ]
    assert problems(spec_values(metric="target_miou_13", mode="min")) == [
        "mode: min does not fit metric target_miou_13: target_miou_13 is an IoU in percent: higher is better; allowed: max (got 'min')"
    ]


UNKNOWN_METRIC = (
    "metric: not a metric a trial reports; allowed: target_miou (max), target_miou_13 (max, SYNTHIA only), "
    "iou.<class name> (max), or a label-free validator: target_entropy (min), target_im (max), target_bnm (max), "
    "target_snd (max), source_val_miou (max) (got 'loss')"
)


def test_an_unknown_metric_and_an_unknown_mode_are_both_reported():
    assert problems(spec_values(metric="loss")) == [UNKNOWN_METRIC]
    assert problems(spec_values(metric="loss", mode="maximise")) == [
        UNKNOWN_METRIC, "mode: unknown mode; allowed: max, min (got 'maximise')"
    ]


def test_scheduler_rules():
    values = spec_values(scheduler={"grace_period": 20, "max_t": 600, "reduction_factor": 1})
    assert problems(values) == [
        "scheduler.reduction_factor: Input should be greater than 1 (got 1)",
    ]
    values = spec_values(scheduler={"grace_period": 20, "max_t": 600})
    assert problems(values) == [
        "scheduler.max_t: beyond trainer.iterations (300): no trial trains past it; allowed: <= 300 (got 600)",
        "scheduler.grace_period: below trainer.eval_interval (50): a trial reports its metric only every eval_interval "
        "iterations, so ASHA would have nothing to compare at the first rung; allowed: >= 50 (got 20)",
    ]
    assert problems(spec_values(scheduler={"grace_period": 400})) == [
        "scheduler.grace_period: beyond max_t (300); allowed: <= 300 (got 400)"
    ]
    assert problems(spec_values(scheduler={"type": "fifo", "grace_period": 50})) == [
        "scheduler.grace_period: not used by the fifo scheduler (every trial trains trainer.iterations); allowed: remove it (got 50)"
    ]


def test_resources_rules():
    assert problems(spec_values(resources={"gpu": 1.5})) == [
        "resources.gpu: a trial can share one GPU, not part of several; allowed: a fraction <= 1 or a whole number (got 1.5)"
    ]
    values = spec_values(resources={"cpu": 1, "gpu": 0})
    values["trainer"]["device"] = "cuda"
    assert problems(values) == ["resources.gpu: 0, but trainer.device is cuda; allowed: gpu > 0, or device auto/cpu (got 0.0)"]
    assert SweepSpec.model_validate(spec_values(resources={"cpu": 2, "gpu": 0.5})).resources.gpu == 0.5


def test_missing_required_values_and_unsafe_name():
    values = spec_values(name="../up")
    del values["num_samples"], values["max_concurrent"]
    assert problems(values) == [
        "name: not a safe folder name; allowed: 1–100 letters, digits, '.', '_', '-', not starting with '.', '_' or '-' (got '../up')",
        "num_samples: missing; allowed: an int >= 1 (the number of trials)",
        "max_concurrent: missing; allowed: an int >= 1 (how many trials run at once)",
    ]


def test_n_startup_trials_only_for_model_based_samplers():
    assert problems(spec_values(searcher={"sampler": "random", "n_startup_trials": 3})) == [
        "searcher.n_startup_trials: not used by sampler random; allowed with: tpe, gp, cmaes (got 3)"
    ]


# --- grid and the entropy range ------------------------------------------------------------------------


def grid_values(**space) -> dict:
    return spec_values(space=space, searcher={"sampler": "grid"}, num_samples=None)


def test_grid_needs_finite_values_and_no_conditions():
    values = spec_values(searcher={"sampler": "grid", "points_to_evaluate": [{"method": "advent"}]})
    assert problems(values) == [
        "space.lambda_ent_main: sampler grid needs a finite set of values; allowed: categorical, int, or float with step",
        "space.lambda_ent_main.when: not supported with sampler grid (the grid is a full product; a skipped parameter "
        "would repeat trials); allowed: remove when, or use sampler tpe/random",
        "space.lambda_adv_main: sampler grid needs a finite set of values; allowed: categorical, int, or float with step",
        "space.lambda_adv_main.when: not supported with sampler grid (the grid is a full product; a skipped parameter "
        "would repeat trials); allowed: remove when, or use sampler tpe/random",
        "searcher.points_to_evaluate: not used with sampler grid (the grid already lists every point); allowed: []",
    ]


def test_grid_size_sets_num_samples():
    values = grid_values(
        method={"type": "categorical", "choices": ["minent", "advent"]},
        class_prior_mu={"type": "float", "low": 0.0, "high": 0.3, "step": 0.1},
        seed={"type": "int", "low": 0, "high": 4, "step": 2},
    )
    spec = SweepSpec.model_validate(values)
    assert spec.grid() == {"method": ["minent", "advent"], "class_prior_mu": [0.0, 0.1, 0.2, 0.3], "seed": [0, 2, 4]}
    assert spec.num_samples == 24
    assert problems({**values, "num_samples": 25})[0].startswith(
        "num_samples: more than the 24 points of the grid (repeats would be random re-draws); allowed: <= 24"
    )


def test_overlapping_entropy_ranges_are_fine_for_tpe():
    spec = SweepSpec.model_validate(
        with_space(entropy_low={"type": "float", "low": 0.0, "high": 0.6}, entropy_high={"type": "float", "low": 0.2, "high": 1.0})
    )
    assert spec.param_order().index("entropy_low") < spec.param_order().index("entropy_high")
    assert spec.bounds("entropy_high", {"entropy_low": 0.5}) == (0.5, 1.0)
    assert spec.bounds("entropy_high", {"entropy_low": 0.1}) == (0.2, 1.0)


def test_entropy_high_bound_is_raised_onto_its_step_grid():
    spec = SweepSpec.model_validate(
        with_space(entropy_low={"type": "float", "low": 0.0, "high": 0.5}, entropy_high={"type": "float", "low": 0.3, "high": 1.0, "step": 0.1})
    )
    assert spec.bounds("entropy_high", {"entropy_low": 0.42}) == (0.5, 1.0)


def test_entropy_range_that_can_be_empty_is_rejected():
    values = with_space(entropy_low={"type": "float", "low": 0.0, "high": 0.8}, entropy_high={"type": "float", "low": 0.2, "high": 0.6})
    assert problems(values) == [
        "space.entropy_high.high: below the largest entropy_low (0.8), so no entropy_high >= entropy_low could be drawn; "
        "allowed: high >= 0.8 (got 0.6)"
    ]
    values = grid_values(entropy_low={"type": "categorical", "choices": [0.0, 0.5]}, entropy_high={"type": "categorical", "choices": [0.4, 1.0]})
    assert problems(values) == [
        "space.entropy_high: its smallest value (0.4) is below the largest entropy_low (0.5); fixed values (categorical "
        "or grid) cannot move above a sampled entropy_low; allowed: every entropy_high value >= every entropy_low value"
    ]


def test_entropy_range_against_a_fixed_partner():
    values = with_space(entropy_high={"type": "float", "low": 0.1, "high": 1.0})
    values["trainer"]["entropy_low"] = 0.3
    assert problems(values) == [
        "space.entropy_high.low: entropy_low (0.3) must not exceed entropy_high (0.1) (got 0.1)"
    ]


def test_points_give_both_entropy_bounds_in_order():
    space = {"entropy_low": {"type": "float", "low": 0.0, "high": 0.6}, "entropy_high": {"type": "float", "low": 0.2, "high": 1.0}}
    values = spec_values(space=space, searcher={"points_to_evaluate": [{"entropy_low": 0.5, "entropy_high": 0.3}, {"entropy_low": 0.1}]})
    assert problems(values) == [
        "searcher.points_to_evaluate.0: entropy_low (0.5) must not exceed entropy_high (0.3)",
        "searcher.points_to_evaluate.1: gives only one of entropy_low / entropy_high; allowed: both (they are drawn as a pair)",
    ]


# --- every error at once ---------------------------------------------------------------------------


def test_every_error_is_reported_at_once():
    values = spec_values(foo=1, searcher={"sampler": "bayes"}, metric="target_entropy", mode="max", max_concurrent=0)
    values["trainer"]["lrr"] = 1
    values["space"]["method"]["choices"] = ["advent", "adventt"]
    values["space"]["lambda_adv_main"].update(low=1.0, high=0.1)
    lines = problems(values)
    assert lines == [
        lines[0],
        lines[1],
        f"space.method.choices.1: Input should be {METHODS} (got 'adventt')",
        "space.lambda_adv_main.low: greater than high (0.1); allowed: low <= high (got 1.0)",
        "searcher.sampler: Input should be 'tpe', 'random', 'gp', 'cmaes' or 'grid' (got 'bayes')",
        "max_concurrent: Input should be greater than or equal to 1 (got 0)",
        lines[6],
    ]
    assert lines[0].startswith("foo: unknown key;") and lines[1].startswith("trainer.lrr: unknown key;")
    assert lines[6].startswith("mode: max does not fit metric target_entropy")


def test_from_yaml_names_the_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("name: x\nspace: {}\nmax_concurrent: 1\nnum_samples: 1\n")
    with pytest.raises(ConfigError, match=rf"{path}: invalid SweepSpec:\n  space: empty"):
        SweepSpec.from_yaml(path)
    with pytest.raises(ConfigError, match=r"no such file"):
        SweepSpec.from_yaml(tmp_path / "missing.yaml")


def test_describe_shows_the_resolved_spec():
    spec = SweepSpec.from_yaml(Path(__file__).parents[2] / "search_spaces" / "quickstart.yaml")
    lines = spec.describe().splitlines()
    assert lines[0] == f"sweep 'quickstart' → {os.path.expanduser('~')}/advent-sweep-results/quickstart"
    assert lines[1] == "data: synthetic → synthetic (64×64, 200 train / 100 val images, seed 0)"
    assert "  backbone           resnet18" in lines and "  multi_level        false" in lines
    assert "  lambda_adv_main  float [0.001, 1] log  when method in [advent, advent_minent]" in lines
    assert "  first point 1: method=source_only" in lines and "  first point 2: method=advent, lambda_adv_main=0.001" in lines
    assert lines[-3:] == [
        "scheduler: ASHA on iteration: grace period 60, reduction factor 3, max_t 120; rungs at iterations 60",
        "trials: 9, at most 2 at a time, each holding 1 CPU and 0 GPU (torch threads: 1); retries after a failure: 2",
        "metric: target_miou (max: higher is better)",
    ]


def test_describe_says_what_gp_and_cmaes_draw_at_random():
    values = with_space(entropy_low={"type": "float", "low": 0.0, "high": 0.5}, entropy_high={"type": "float", "low": 0.3, "high": 1.0})
    values["searcher"]["sampler"] = "cmaes"
    assert "searcher: Optuna CMA-ES, seed 0, 1 given points first; CMA-ES models a fixed space only, so these are drawn at " \
        "random: method, lambda_ent_main, lambda_adv_main, entropy_high" in SweepSpec.model_validate(values).describe()
    spec = SweepSpec.model_validate(with_space(entropy_high={"type": "float", "low": 0.3, "high": 1.0}))
    assert "entropy_high     float [0.3, 1]" in spec.describe() and "raised" not in spec.describe()
