"""Ranking label-free validators against target mIoU: weighted Spearman, regret, and what is left out."""

import math

import numpy as np
import pandas as pd
import pytest

from advent_sweep.analysis import SweepResults, label_free_selection, spearman, weighted_spearman


def _weighted_pearson(x: list[float], y: list[float], w: list[float]) -> float:
    x, y, w = np.array(x), np.array(y), np.array(w)
    dx, dy = x - (w * x).sum() / w.sum(), y - (w * y).sum() / w.sum()
    return (w * dx * dy).sum() / math.sqrt((w * dx**2).sum() * (w * dy**2).sum())


def test_weighted_spearman_by_hand_with_a_tie() -> None:
    v, a = [1, 2, 2, 3, 4], [10, 30, 20, 50, 40]
    # dense ranks / max: r_v = [1, 2, 2, 3, 4] / 4 = [.25, .5, .5, .75, 1]; r_a = [1, 3, 2, 5, 4] / 5 = [.2, .6, .4, 1, .8]
    # w = max(r_v, r_a)² = [.25, .6, .5, 1, 1]² = [.0625, .36, .25, 1, 1]
    w = [0.0625, 0.36, 0.25, 1.0, 1.0]
    # weighted ranks of v: 1 → .0625 (k=1); the tied 2s → .0625 + (2+1)/2 × (.36+.25)/2 = .52;
    # 3 → .0625 + .61 + 1 = 1.6725; 4 → 1.6725 + 1 = 2.6725
    rank_v = [0.0625, 0.52, 0.52, 1.6725, 2.6725]
    # weighted ranks of a, in order 10, 20, 30, 40, 50 (items 0, 2, 1, 4, 3): .0625, .3125, .6725, 1.6725, 2.6725
    rank_a = [0.0625, 0.6725, 0.3125, 2.6725, 1.6725]
    # weighted Pearson: Σw = 2.6725, means 1.74597 and 1.74710, cov 0.95411, variances 1.95782 and 1.96953 → 0.48588
    assert _weighted_pearson(rank_v, rank_a, w) == pytest.approx(0.48588, abs=1e-5)
    assert weighted_spearman(v, a, power=2.0) == pytest.approx(_weighted_pearson(rank_v, rank_a, w), rel=1e-12)


def test_power_zero_is_plain_spearman() -> None:
    v, a = [1, 2, 2, 3, 4], [10, 30, 20, 50, 40]
    assert weighted_spearman(v, a, power=0.0) == spearman(v, a)
    assert spearman(v, a) != pytest.approx(weighted_spearman(v, a))


def test_spearman_is_pearson_of_average_ranks() -> None:
    # average ranks x: [1, 2.5, 2.5, 4, 5], y: [2, 1, 3.5, 3.5, 5]; both means 3;
    # Σ dx·dy = 2 + 1 − .25 + .5 + 4 = 7.25, Σ dx² = Σ dy² = 9.5 → 7.25 / 9.5 = 29/38
    assert spearman([1, 2, 2, 3, 5], [2, 1, 4, 4, 6]) == pytest.approx(29 / 38, rel=1e-12)


def test_constant_variable_gives_nan() -> None:
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(weighted_spearman([1, 2, 3], [5, 5, 5]))


def _results(rows: list[tuple], columns: list[str]) -> SweepResults:
    reports = pd.DataFrame(rows, columns=["sweep", "trial_id", "iteration", *columns])
    trials = reports[["sweep", "trial_id"]].drop_duplicates().assign(status="completed")
    return SweepResults(reports, trials, {"s": {}})


def test_min_validator_in_opposite_order_to_miou_ranks_perfectly() -> None:
    results = _results([("s", "a", i, 10.0 * i, 1.0 - 0.1 * i) for i in range(1, 6)], ["target_miou", "target_entropy"])
    row = label_free_selection(results).table.set_index("validator").loc["target_entropy"]
    assert row["direction"] == "min" and row["reports"] == 5
    assert row["spearman"] == pytest.approx(1.0) and row["weighted_spearman"] == pytest.approx(1.0)
    assert row["sweep_regret"] == 0 and row["picked_iteration"] == 5


# (sweep, trial, iteration, target_miou, target_entropy, target_im, target_bnm, source_val_miou)
REGRET_ROWS = [
    ("s", "a", 1, 40.0, 0.50, 0.30, 1.0, None), ("s", "a", 2, 50.0, 0.30, 0.30, 1.0, None), ("s", "a", 3, 45.0, 0.20, 0.20, 1.0, None),
    ("s", "b", 1, 30.0, 0.25, 0.30, 1.0, None), ("s", "b", 2, 60.0, 0.60, 0.10, 1.0, None), ("s", "b", 3, 55.0, 0.35, 0.05, 1.0, None),
]
REGRET_COLUMNS = ["target_miou", "target_entropy", "target_im", "target_bnm", "source_val_miou"]


def test_regret_over_the_sweep_and_per_trial() -> None:
    selection = label_free_selection(_results(REGRET_ROWS, REGRET_COLUMNS))
    table = selection.table.set_index("validator")
    assert list(table.index) == ["target_entropy", "target_im", "target_bnm"]  # source_val_miou all null, target_snd absent
    assert selection.note == "no values for: target_snd, source_val_miou" and selection.reports == 6
    # entropy: lowest 0.20 at a@3 (45) vs the oracle b@2 (60); per trial a@3 (50 − 45) and b@1 (60 − 30)
    # im: 0.30 ties at a@1, a@2, b@1 → the earlier iteration, then trial id: a@1 (60 − 40); per trial a@1 (10), b@1 (30)
    # bnm: constant → a@1 by the tie rule (60 − 40), per trial a@1 (10), b@1 (30); its correlations are NaN
    expected = {"target_entropy": (15.0, "a", 3, 17.5, 30.0), "target_im": (20.0, "a", 1, 20.0, 30.0), "target_bnm": (20.0, "a", 1, 20.0, 30.0)}
    for name, (regret, trial, iteration, mean, worst) in expected.items():
        row = table.loc[name]
        assert (row["sweep_regret"], row["picked_trial"], row["picked_iteration"]) == (regret, trial, iteration), name
        assert (row["mean_trial_regret"], row["max_trial_regret"]) == (mean, worst), name
    assert math.isnan(table.loc["target_bnm", "spearman"]) and math.isnan(table.loc["target_bnm", "weighted_spearman"])
    per_trial = selection.per_trial.set_index("trial_id")
    assert per_trial["oracle_target_miou"].tolist() == [50.0, 60.0] and per_trial["oracle_iteration"].tolist() == [2, 2]
    assert per_trial["regret.target_entropy"].tolist() == [5.0, 30.0] and per_trial["regret.target_im"].tolist() == [10.0, 30.0]


def test_too_few_reports_give_no_correlation() -> None:
    selection = label_free_selection(_results(REGRET_ROWS[:4], REGRET_COLUMNS))
    assert selection.table[["spearman", "weighted_spearman"]].isna().all().all()
    assert "target_entropy: too few reports to rank: 4 (at least 5 needed)" in selection.note
    assert selection.table.set_index("validator").loc["target_entropy", "sweep_regret"] == 5.0  # a@2 (50) − its pick a@3 (45)
