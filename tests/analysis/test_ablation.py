"""The method x backbone table and the marginal tables agree with pandas on the same rows."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from advent_sweep.analysis import METHOD_NAMES, marginal_effects, method_table


@pytest.mark.parametrize("rule", ["best", "last"])
def test_method_table_matches_a_hand_computation(results, rule: str) -> None:
    reports = results.reports
    per_trial = reports.loc[reports.groupby("trial_id")["target_miou"].idxmax()] if rule == "best" else reports.groupby("trial_id").tail(1)
    table = method_table(results, rule=rule)
    assert list(table["method"].astype(str).unique()) == list(METHOD_NAMES.values())
    assert table.columns[7:].tolist() == ["iou.road", "iou.sky", "iou.car"]
    for row in table.to_dict("records"):
        method = next(key for key, name in METHOD_NAMES.items() if name == row["method"])
        group = per_trial[(per_trial["config.method"] == method) & (per_trial["config.backbone"] == row["backbone"])]
        assert row["trials"] == len(group) and row["seeds"] == group["config.seed"].nunique()
        assert row["mean"] == pytest.approx(group["target_miou"].mean())
        assert row["std"] == pytest.approx(group["target_miou"].std())
        assert row["best"] == pytest.approx(group["target_miou"].max())
        for name in ("iou.road", "iou.sky", "iou.car"):
            assert np.isclose(row[name], group[name].mean(), equal_nan=True)


def test_marginal_tables_bin_the_right_trials(results) -> None:
    per_trial = results.reports.loc[results.reports.groupby("trial_id")["target_miou"].idxmax()]
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
