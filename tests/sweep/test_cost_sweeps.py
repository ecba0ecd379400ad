"""Real quickstart-sized sweeps (the quickstart's scheduler shape on tiny models) against the cost features.

One embedded Ray (loopback only) serves the module.
"""

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from advent_sweep.sweep.eta import STATUS_FILE
from advent_sweep.sweep.forecast import forecast
from advent_sweep.sweep.launch import launch
from advent_sweep.sweep.study_journal import JOURNAL_FILE, journal_storage
from tests.sweep.test_forecast import TINY_TRAINER, spec_of

pytestmark = pytest.mark.slow

QUICKSTART_POINTS = [
    {"method": "source_only"}, {"method": "advent", "lambda_adv_main": 1e-3}, {"method": "minent", "lambda_ent_main": 1e-3},
    {"method": "advent_minent", "lambda_ent_main": 1e-3, "lambda_adv_main": 1e-3},
]


@pytest.mark.parametrize("seed", [0, 1])
def test_the_asha_forecast_is_within_25_percent_of_the_iterations_a_sweep_trains(local_ray, tmp_path, seed):
    spec = spec_of(tmp_path, name=f"forecast{seed}",
                   searcher={"sampler": "tpe", "seed": seed, "n_startup_trials": 4, "points_to_evaluate": QUICKSTART_POINTS})
    expected = forecast(spec, seconds_per_iteration=1.0).iterations
    launch(spec)
    trials = pd.read_parquet(f"{spec.folder}/trials.parquet")
    assert len(trials) == 9
    actual = trials["iterations"].sum()
    assert abs(expected - actual) <= 0.25 * actual, (expected, actual, trials[["trial_id", "iterations", "best_value"]])
    status = json.loads(Path(spec.folder, STATUS_FILE).read_text())  # what a person reads while it runs, at its end
    assert status["finished"] and status["iterations_done"] == actual and status["iterations_forecast"] == round(expected)


def test_a_repeat_is_not_trained_and_the_study_says_so(local_ray, tmp_path, capsys):
    space = {"method": {"type": "categorical", "choices": ["source_only", "minent"]}}  # two parameter-free choices
    spec = spec_of(tmp_path, name="repeats", space=space, num_samples=4, searcher={"sampler": "tpe", "seed": 0},
                   trainer={**TINY_TRAINER, "iterations": 2, "poly_horizon": 2}, scheduler={"type": "fifo"})
    launch(spec)
    trials = pd.read_parquet(f"{spec.folder}/trials.parquet")
    assert sorted(trials["config.method"]) == ["minent", "source_only"]
    study = optuna.load_study(study_name="repeats", storage=journal_storage(f"{spec.folder}/{JOURNAL_FILE}"))
    repeats = [t for t in study.trials if "repeat_of" in t.user_attrs]
    assert repeats and all(t.state == TrialState.FAIL for t in repeats)
    originals = {t.number: t.params for t in study.trials if "repeat_of" not in t.user_attrs}
    assert len(originals) == 2
    assert all(t.params == originals[t.user_attrs["repeat_of"]] for t in repeats)
    assert "the searcher ends after 2 of num_samples 4 trials: the space has 2 distinct configurations" in capsys.readouterr().out
