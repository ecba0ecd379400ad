"""Real quickstart-sized sweeps (the quickstart's scheduler shape on tiny models) against the cost features.

One embedded Ray (loopback only) serves the module.
"""

import os

import pandas as pd
import pytest

from advent_sweep.sweep.forecast import forecast
from advent_sweep.sweep.launch import launch
from tests.sweep.test_forecast import spec_of

pytestmark = pytest.mark.slow

QUICKSTART_POINTS = [
    {"method": "source_only"}, {"method": "advent", "lambda_adv_main": 1e-3}, {"method": "minent", "lambda_ent_main": 1e-3},
    {"method": "advent_minent", "lambda_ent_main": 1e-3, "lambda_adv_main": 1e-3},
]


@pytest.fixture(scope="module")
def local_ray():
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


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
