"""The method x backbone table and the marginal tables agree with pandas on the same rows."""

import dataclasses
import random

import numpy as np
import pandas as pd
import pytest

from advent_sweep.analysis import METHOD_NAMES, load_results, marginal_effects, method_table
from advent_sweep.analysis.ablation import equal_budget
from tests.analysis.conftest import ITERATIONS, FakeTrial, _config, write_sweep


def at_common_budget(reports: pd.DataFrame, rule: str) -> pd.DataFrame:
    """By hand: every trial cut at the largest iteration all reached (200: some stopped after 2 reports), then the rule."""
    common = reports.groupby("trial_id")["iteration"].max().min()
    assert common == 200
    reports = reports[reports["iteration"] <= common]
    return reports.loc[reports.groupby("trial_id")["target_miou"].idxmax()] if rule == "best" else reports.groupby("trial_id").tail(1)


@pytest.mark.parametrize("rule", ["best", "last"])
def test_method_table_matches_a_hand_computation(results, rule: str) -> None:
    per_trial = at_common_budget(results.reports, rule)
    table = method_table(results, rule=rule)
    assert list(table["method"].astype(str).unique()) == list(METHOD_NAMES.values())
    assert table.columns[8:].tolist() == ["iou.road", "iou.sky", "iou.car"]
    for row in table.to_dict("records"):
        method = next(key for key, name in METHOD_NAMES.items() if name == row["method"])
        group = per_trial[(per_trial["config.method"] == method) & (per_trial["config.backbone"] == row["backbone"])]
        assert row["trials"] == len(group) and row["seeds"] == group["config.seed"].nunique()
        assert row["mean"] == pytest.approx(group["target_miou"].mean())
        assert row["std"] == pytest.approx(group["target_miou"].std())
        assert row["best"] == pytest.approx(group["target_miou"].max())
        source = per_trial[(per_trial["config.method"] == "source_only") & (per_trial["config.backbone"] == row["backbone"])]
        assert row["gain"] == pytest.approx(group["target_miou"].mean() - source["target_miou"].mean())
        for name in ("iou.road", "iou.sky", "iou.car"):
            assert np.isclose(row[name], group[name].mean(), equal_nan=True)


def test_marginal_tables_bin_the_right_trials(results) -> None:
    per_trial = at_common_budget(results.reports, "best")
    marginals = {m.key: m for m in marginal_effects(results)}
    assert list(marginals) == ["lambda_ent_main", "lambda_adv_main", "class_prior_mu", "entropy_range"]
    adapting = per_trial[per_trial["config.method"] != "source_only"]
    mu = marginals["class_prior_mu"].table.set_index("μ (class-ratio prior)")
    assert mu["n"].sum() == len(adapting)
    assert mu.loc["0.3", "mean"] == pytest.approx(adapting.loc[adapting["config.class_prior_mu"] == 0.3, "target_miou"].mean())
    assert mu.index[0] == "0 (off)"
    lam = marginals["lambda_ent_main"].table
    assert lam["n"].sum() == per_trial["config.method"].isin(["minent", "advent_minent"]).sum()
    assert lam.iloc[:, 0].iloc[0].startswith("[")  # log bins, lowest first
    ranges = marginals["entropy_range"].table.set_index("entropy range [e_lo, e_hi]")
    assert set(ranges.index) <= {"[0, 1]", "[0.1, 0.9]", "[0.2, 1]"}
    assert ranges["max"].max() == adapting["target_miou"].max()


def test_a_knob_that_does_not_vary_is_skipped_with_a_note(results) -> None:
    constant = dataclasses.replace(results, reports=results.reports.assign(**{"config.class_prior_mu": 0.0}))
    mu = next(m for m in marginal_effects(constant) if m.key == "class_prior_mu")
    assert mu.table is None and "does not vary" in mu.note and "0 (off)" in mu.note


def test_a_knob_without_its_methods_is_skipped(results) -> None:
    reports = results.reports[results.reports["config.method"] == "source_only"]
    only_source = dataclasses.replace(results, reports=reports)
    assert all(m.table is None and m.note.startswith("skipped: no trials of") for m in marginal_effects(only_source))
    assert len(method_table(only_source)) == 2 and isinstance(method_table(only_source), pd.DataFrame)


def test_the_methods_table_counts_only_what_its_budget_says(tmp_path) -> None:
    """Two completed MinEnt trials (best 40 and 44 by 400), one stopped at 200 with 50 there, and a source-only one."""
    minent = [FakeTrial("done-a", _config(random.Random(1), "minent", "resnet18", 0), (30.0, 35.0, 38.0, 40.0), (0.3,) * 4),
              FakeTrial("done-b", _config(random.Random(2), "minent", "resnet18", 1), (32.0, 36.0, 41.0, 44.0), (0.3,) * 4),
              FakeTrial("early", _config(random.Random(3), "minent", "resnet18", 2), (45.0, 50.0), (0.3,) * 2, "stopped")]
    source = FakeTrial("source", _config(random.Random(4), "source_only", "resnet18", 0), (20.0, 25.0, 28.0, 30.0), (0.5,) * 4)
    results = load_results(write_sweep(tmp_path, "budget", [*minent, source]))
    assert ITERATIONS[:2] == (100, 200)

    completed = method_table(results, budget="completed").set_index("method").loc["MinEnt"]
    assert (completed["trials"], completed["seeds"], completed["mean"]) == (2, 2, pytest.approx(42.0))
    assert completed["gain"] == pytest.approx(42.0 - 30.0)
    assert "completed trials only (trained to the end): 3 of 4 finished; 1 stopped early left out" in \
        equal_budget(results, budget="completed").note

    common = method_table(results).set_index("method").loc["MinEnt"]  # every trial at iteration <= 200
    assert (common["trials"], common["seeds"], common["mean"]) == (3, 3, pytest.approx((35.0 + 36.0 + 50.0) / 3))
    assert common["gain"] == pytest.approx((35.0 + 36.0 + 50.0) / 3 - 25.0)
    assert equal_budget(results).note == "every finished trial at iteration ≤ 200, the largest that all 4 reached"
