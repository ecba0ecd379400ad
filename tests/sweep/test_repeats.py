"""Counting a space's distinct configurations, and finding a repeat's original (no Ray)."""

from types import SimpleNamespace

from advent_sweep.sweep.repeats import distinct_configurations, original_of
from tests.sweep.test_forecast import spec_of


def test_distinct_configurations_follow_conditions_and_steps(tmp_path):
    space = {
        "method": {"type": "categorical", "choices": ["source_only", "minent", "advent"]},
        "lambda_ent_main": {"type": "categorical", "choices": [1e-3, 1e-2], "when": {"method": ["minent"]}},
        "entropy_low": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.25},
    }
    # (source_only: 1 + minent: 2 + advent: 1) × entropy_low 0, 0.25, 0.5
    assert distinct_configurations(spec_of(tmp_path, space=space)) == 4 * 3
    assert distinct_configurations(spec_of(tmp_path)) is None  # quickstart's continuous λ ranges


def test_a_repeat_names_the_earliest_trial_that_was_not_itself_a_repeat():
    trials = [SimpleNamespace(number=0, params={"method": "minent"}, user_attrs={}),
              SimpleNamespace(number=1, params={"method": "source_only"}, user_attrs={"repeat_of": 5}),
              SimpleNamespace(number=2, params={"method": "source_only"}, user_attrs={})]
    assert original_of({"method": "source_only"}, trials, number=3) == 2
    assert original_of({"method": "advent"}, trials, number=3) is None
    assert original_of({"method": "minent"}, trials, number=0) is None
