"""Resource-hours per trial, per method and in total; hours until the best; the anytime and random-search curves."""

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from advent_sweep.analysis import SweepResults
from advent_sweep.analysis.cost import (
    anytime_curve,
    hours_to_best,
    method_costs,
    random_search_curve,
    trial_costs,
)

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def two_trials(status_b: str = "completed") -> SweepResults:
    """Trial a (advent, 2 CPUs) reports 5 then 7; trial b (minent, 1 CPU) reports 9 between a's two reports."""
    reports = pd.DataFrame({
        "sweep": ["s"] * 3, "trial_id": ["a", "b", "a"], "iteration": [10, 10, 20], "wall_time_s": [10.0, 20.0, 30.0],
        "timestamp": [T0 + timedelta(seconds=s) for s in (10, 20, 30)], "target_miou": [5.0, 9.0, 7.0],
    })
    trials = pd.DataFrame({
        "sweep": ["s", "s"], "trial_id": ["a", "b"], "status": ["completed", status_b], "config.method": ["advent", "minent"],
        "iterations": [20, 10], "wall_time_s": [30.0, 20.0], "resources_cpu": [2.0, 1.0], "resources_gpu": [0.0, 0.0],
    })
    return SweepResults(reports=reports, trials=trials, sweeps={"s": {}})


def test_trial_and_method_costs_are_wall_time_times_resources():
    results = two_trials()
    assert trial_costs(results).set_index("trial_id")["cpu_hours"].to_dict() == {"a": 60 / 3600, "b": 20 / 3600}
    by_method = method_costs(results).set_index("method")
    assert by_method.loc["all", "cpu_hours"] == pytest.approx(80 / 3600) and by_method.loc["all", "iterations"] == 30
    assert by_method.loc["advent", "trials"] == 1 and by_method.loc["minent", "gpu_hours"] == 0


def test_the_anytime_curve_and_the_hours_until_the_eventual_best():
    curve = anytime_curve(two_trials(), "target_miou", "max")
    assert list(curve["best_so_far"]) == [5.0, 9.0, 9.0]
    assert list(curve["resource_hours"] * 3600) == pytest.approx([20.0, 40.0, 80.0])  # a: 10 s × 2, b: 20 s × 1, a: 20 s × 2
    found = hours_to_best(curve, "max").iloc[0]
    assert found["best_trial"] == "b" and found["resource_hours_until_then"] * 3600 == pytest.approx(40.0)
    assert found["share_of_total"] == pytest.approx(0.5)
    assert list(anytime_curve(two_trials(), "target_miou", "min")["best_so_far"]) == [5.0, 5.0, 5.0]


def test_random_search_expected_curve_only_when_every_trial_trained_to_the_end():
    expected = random_search_curve(two_trials(), "target_miou", "max", "s")
    assert list(expected["expected_best"]) == [8.0, 9.0]  # best reports 7 and 9: one at random, then both
    assert list(expected["resource_hours"] * 3600) == pytest.approx([40.0, 80.0])  # mean trial: (60 + 20) / 2 CPU-seconds
    assert random_search_curve(two_trials(status_b="stopped"), "target_miou", "max", "s") is None
