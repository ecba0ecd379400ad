"""Parameter importance from the Parquet rows with Optuna's evaluators."""

import dataclasses

import numpy as np
import pytest

from advent_sweep.analysis import parameter_importance
from advent_sweep.analysis.results import varying_parameters
from advent_sweep.errors import ResultsError


@pytest.mark.parametrize("evaluator", ["fanova", "ped_anova"])
def test_importances_are_non_negative_and_sum_to_one(results, evaluator: str) -> None:
    importances = parameter_importance(results, evaluator=evaluator)
    assert (importances.values >= 0).all() and importances.values.sum() == pytest.approx(1.0)
    assert set(importances.values.index) <= set(varying_parameters(results.reports))
    assert importances.values.is_monotonic_decreasing and importances.trials == 17


def test_fanova_ranks_first_the_parameter_that_sets_the_score(results) -> None:
    """The fixture's mIoU is the method's base (30, 38, 40, 42) plus uniform noise of ±5: method explains most of it."""
    importances = parameter_importance(results, evaluator="fanova").values
    assert importances.index[0] == "config.method"
    assert importances.iloc[0] > 0.5 and (importances.iloc[1:] < 0.2).all(), importances.round(3).to_dict()


def test_conditional_parameters_are_left_out_of_trials_that_lack_them(results) -> None:
    reports = results.reports.copy()
    reports.loc[~reports["config.method"].isin(["advent", "advent_minent"]), "config.lambda_adv_main"] = np.nan
    conditional = dataclasses.replace(results, reports=reports)
    fanova = parameter_importance(conditional)
    assert fanova.left_out == ("config.lambda_adv_main",) and fanova.values.sum() == pytest.approx(1.0)
    assert "config.lambda_adv_main" in parameter_importance(conditional, evaluator="ped_anova").values.index


def test_fewer_than_two_trials_is_a_clear_message(results) -> None:
    one = dataclasses.replace(results, reports=results.reports[results.reports["trial_id"] == "spike"])
    with pytest.raises(ResultsError, match="at least 2 finished trials with a target_miou value; found 1"):
        parameter_importance(one)


def test_no_varying_parameter_is_a_clear_message(results) -> None:
    reports = results.reports
    constant = reports.assign(**{c: reports[c].iloc[0] for c in varying_parameters(reports)})
    with pytest.raises(ResultsError, match="no config parameter varies"):
        parameter_importance(dataclasses.replace(results, reports=constant))


def test_unknown_evaluator(results) -> None:
    with pytest.raises(ResultsError, match="allowed: fanova, ped_anova"):
        parameter_importance(results, evaluator="shap")
