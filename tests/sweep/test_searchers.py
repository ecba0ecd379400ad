"""Searchers and schedulers from a SweepSpec, exercised with real Optuna studies; no Ray cluster."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import optuna
import pytest
import ray
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from advent_sweep.sweep.searchers import (
    SAMPLERS, SCHEDULERS, DefineByRun, PruningOptunaSearch, build_sampler, build_scheduler, build_search_alg,
)
from advent_sweep.sweep.study_journal import JOURNAL_FILE
from advent_sweep.sweep.spec import SweepSpec
from advent_sweep.sweep.spec_models import SAMPLER_NAMES, SCHEDULER_NAMES

SEARCH_SPACES = Path(__file__).parents[2] / "search_spaces"
optuna.logging.set_verbosity(optuna.logging.WARNING)


BASE = {
    "name": "unit",
    "trainer": {"backbone": "resnet18", "iterations": 300, "poly_horizon": 300, "eval_interval": 50},
    "space": {
        "method": {"type": "categorical", "choices": ["minent", "advent", "advent_minent"]},
        "lambda_ent_main": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True, "when": {"method": ["minent", "advent_minent"]}},
        "lambda_adv_main": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True, "when": {"method": ["advent", "advent_minent"]}},
        "entropy_high": {"type": "float", "low": 0.2, "high": 1.0},  # listed first: the order puts entropy_low before it
        "entropy_low": {"type": "float", "low": 0.0, "high": 0.7},
    },
    "searcher": {"n_startup_trials": 5},
    "scheduler": {"grace_period": 50, "reduction_factor": 2, "max_t": 300},
    "num_samples": 12,
    "max_concurrent": 3,
}


def make_spec(**changes) -> SweepSpec:
    values = copy.deepcopy(BASE)
    for key, value in changes.items():  # searcher and scheduler settings are merged, the rest replaced
        values[key] = {**values[key], **value} if key in ("searcher", "scheduler") else value
    return SweepSpec.model_validate(values)


def draw(spec: SweepSpec, n: int) -> list[dict]:
    """n trials of a real Optuna study driven by the spec's define-by-run function (ask / tell)."""
    study = optuna.create_study(direction="maximize", sampler=build_sampler(spec))
    suggest = DefineByRun(spec)
    drawn = []
    for _ in range(n):
        trial = study.ask()
        assert suggest(trial) is None
        drawn.append(dict(trial.params))
        study.tell(trial, sum(v for v in trial.params.values() if isinstance(v, float)))
    return drawn


# --- define-by-run -----------------------------------------------------------------------------


def test_conditional_params_are_sampled_only_when_active():
    for params in draw(make_spec(), 40):
        method = params["method"]
        assert ("lambda_ent_main" in params) == (method in ("minent", "advent_minent"))
        assert ("lambda_adv_main" in params) == (method in ("advent", "advent_minent"))
        assert {"entropy_low", "entropy_high"} <= set(params)


def test_entropy_low_never_exceeds_entropy_high():
    drawn = draw(make_spec(), 50)
    assert all(p["entropy_low"] <= p["entropy_high"] <= 1.0 for p in drawn)
    assert max(p["entropy_low"] for p in drawn) > 0.2  # the ranges overlap, so the bound did move
    stepped = make_spec(space={**BASE["space"], "entropy_high": {"type": "float", "low": 0.2, "high": 1.0, "step": 0.1}})
    for p in draw(stepped, 50):
        assert p["entropy_low"] <= p["entropy_high"]
        assert round(p["entropy_high"] * 10, 9).is_integer()


def test_same_seed_same_sequence_other_seed_other_sequence():
    assert draw(make_spec(), 15) == draw(make_spec(), 15)
    assert draw(make_spec(), 15) != draw(make_spec(searcher={"seed": 1}), 15)


def test_every_draw_makes_a_valid_train_config():
    spec = make_spec()
    for params in draw(spec, 20):
        config = spec.train_config(params)
        assert config.entropy_low <= config.entropy_high and config.method == params["method"]


def test_define_by_run_pickles():
    """Ray saves OptunaSearch (its define-by-run function included) with the standard pickle."""
    suggest = pickle.loads(pickle.dumps(DefineByRun(make_spec())))
    assert suggest.spec == make_spec()


# --- samplers ------------------------------------------------------------------------------------


def test_sampler_table_covers_every_name():
    assert tuple(SAMPLERS) == SAMPLER_NAMES
    assert tuple(SCHEDULERS) == SCHEDULER_NAMES


@pytest.mark.parametrize("name", ["tpe", "random", "gp", "cmaes"])
def test_every_sampler_builds_and_samples(name):
    spec = make_spec(searcher={"sampler": name, "n_startup_trials": None} if name == "random" else {"sampler": name})
    sampler = build_sampler(spec)
    expected = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
                "gp": optuna.samplers.GPSampler, "cmaes": optuna.samplers.CmaEsSampler}[name]
    assert type(sampler) is expected
    drawn = draw(spec, 6)  # within the random startup trials: quick for GP too
    assert all(p["entropy_low"] <= p["entropy_high"] for p in drawn)


def test_tpe_is_multivariate_and_grouped_when_conditional():
    sampler = build_sampler(make_spec())
    # private attributes: TPESampler keeps its constructor arguments there
    assert (sampler._multivariate, sampler._group, sampler._n_startup_trials) == (True, True, 5)
    plain = build_sampler(make_spec(space={"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}}))
    assert (plain._multivariate, plain._group, plain._n_startup_trials) == (True, False, 5)


def test_grid_sampler_visits_every_point_once():
    spec = SweepSpec.from_yaml(SEARCH_SPACES / "ablation.yaml")
    assert isinstance(build_sampler(spec), optuna.samplers.GridSampler)
    drawn = draw(spec, spec.num_samples)
    keys = {tuple(sorted(p.items())) for p in drawn}
    assert len(keys) == spec.num_samples == 48
    assert {p["seed"] for p in drawn} == {0, 1}


# --- build_search_alg -------------------------------------------------------------------------------


def test_build_search_alg_is_a_concurrency_limited_optuna_search(tmp_path):
    spec = SweepSpec.from_yaml(SEARCH_SPACES / "quickstart.yaml").with_storage(str(tmp_path))
    search_alg = build_search_alg(spec)
    assert isinstance(search_alg, ConcurrencyLimiter) and isinstance(search_alg.searcher, PruningOptunaSearch)
    assert isinstance(search_alg.searcher, OptunaSearch)
    assert search_alg.max_concurrent == 2
    assert (search_alg.searcher.metric, search_alg.searcher.mode) == ("target_miou", "max")
    assert search_alg.searcher._ot_study.study_name == "quickstart"
    stored = optuna.load_study(study_name="quickstart", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "quickstart" / JOURNAL_FILE))))
    assert stored.direction.name == "MAXIMIZE"  # the study lives in the sweep folder's journal
    assert not ray.is_initialized()  # building it needs no Ray


def test_search_alg_suggests_the_given_points_first_then_waits_for_a_free_slot(tmp_path):
    spec = make_spec(
        searcher={"points_to_evaluate": [{"method": "advent", "lambda_adv_main": 1e-3, "entropy_low": 0.0, "entropy_high": 1.0}]},
        max_concurrent=2,
    ).with_storage(str(tmp_path))
    search_alg = build_search_alg(spec)
    first = search_alg.suggest("t1")
    assert first == {"method": "advent", "lambda_adv_main": 1e-3, "entropy_low": 0.0, "entropy_high": 1.0}
    second = search_alg.suggest("t2")
    assert second is not None and second["entropy_low"] <= second["entropy_high"]
    assert search_alg.suggest("t3") is None  # two running: the limiter holds the third
    search_alg.on_trial_complete("t1", {"target_miou": 12.5, "training_iteration": 6})
    assert search_alg.suggest("t3") is not None


def test_search_alg_state_saves_and_restores(tmp_path):
    spec = make_spec().with_storage(str(tmp_path))
    searcher = build_search_alg(spec).searcher
    suggested = searcher.suggest("t1")
    searcher.save(str(tmp_path / "searcher.pkl"))
    restored = build_search_alg(spec).searcher
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored._ot_trials["t1"].params == suggested
    assert len(restored._ot_study.trials) == 1


# --- schedulers ------------------------------------------------------------------------------------


def test_asha_uses_the_trainer_iteration_and_the_spec_numbers():
    scheduler = build_scheduler(make_spec())
    assert isinstance(scheduler, ASHAScheduler)
    assert scheduler._time_attr == "iteration"
    assert (scheduler._metric, scheduler._mode) == ("target_miou", "max")
    assert (scheduler._max_t, scheduler._reduction_factor) == (300, 2.0)
    # rungs at grace_period · reduction_factor^k (stored highest first)
    assert [milestone for milestone, _ in scheduler._brackets[0]._rungs] == [200.0, 100.0, 50.0]


def test_asha_follows_target_entropy_downwards():
    scheduler = build_scheduler(make_spec(metric="target_entropy"))
    assert (scheduler._metric, scheduler._mode, scheduler._metric_op) == ("target_entropy", "min", -1.0)


def test_fifo_scheduler():
    scheduler = build_scheduler(make_spec(scheduler={"type": "fifo", "grace_period": None, "reduction_factor": None, "max_t": None}))
    assert type(scheduler) is FIFOScheduler
