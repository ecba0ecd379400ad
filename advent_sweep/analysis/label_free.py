"""How well each label-free validator would have chosen snapshots, measured against target mIoU.

Target labels are missing in unsupervised domain adaptation, so a validator (selection.py)
must stand in for them. Over all reports we rank each validator against target mIoU as
Musgrave et al. (2022) do, with plain and weighted Spearman, and give the mIoU its pick
loses to the oracle's (the regret), over the whole sweep and within each trial.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from advent_sweep.analysis.results import KEY, SweepResults
from advent_sweep.errors import ResultsError
from advent_sweep.selection import ACCURACY, VALIDATORS

MIN_REPORTS = 5  # fewer reports than this give no meaningful rank correlation
COLUMNS = ["validator", "direction", "reports", "spearman", "weighted_spearman", "sweep_regret", "picked_sweep", "picked_trial",
           "picked_iteration", "mean_trial_regret", "max_trial_regret", "reference"]


@dataclass(frozen=True)
class LabelFreeSelection:
    """One row per validator (``table``), one per trial (``per_trial``), and what was left out (``note``)."""

    table: pd.DataFrame
    per_trial: pd.DataFrame
    note: str
    reports: int


def weighted_spearman(validator_scores: ArrayLike, accuracies: ArrayLike, power: float = 2.0) -> float:
    """Musgrave et al.'s weighted Spearman: errors among the best checkpoints weigh most.

    Dense ranks over their maximum give r_v, r_a in (0, 1]; each checkpoint weighs
    w = max(r_v, r_a)**power; the result is the w-weighted Pearson correlation of the
    w-weighted ranks. Scores must be finite and oriented so that higher is better. NaN when either
    variable is constant. ``weighted_spearman([1, 2, 3], [1, 3, 2], power=0.0) == 0.5``.
    """
    v, a = np.asarray(validator_scores, dtype=float), np.asarray(accuracies, dtype=float)
    if v.shape != a.shape or v.ndim != 1:
        raise ValueError(f"two equal-length vectors needed, got shapes {v.shape} and {a.shape}")
    if len(np.unique(v)) < 2 or len(np.unique(a)) < 2:
        return float("nan")
    weights = np.maximum(_dense_rank(v), _dense_rank(a)) ** power
    return _weighted_pearson(_weighted_rank(v, weights), _weighted_rank(a, weights), weights)


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Plain Spearman (Pearson of average ranks): the weighted one with every w = 1."""
    return weighted_spearman(x, y, power=0.0)


def _dense_rank(x: np.ndarray) -> np.ndarray:
    ranks = np.unique(x, return_inverse=True)[1] + 1.0
    return ranks / ranks.max()


def _weighted_rank(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Summed weight of the smaller values plus (k + 1)/2 times the mean weight of the k tied ones."""
    _, group, counts = np.unique(x, return_inverse=True, return_counts=True)
    total = np.bincount(group, weights=weights)
    return (np.cumsum(total) - total + (counts + 1) / 2 * total / counts)[group]


def _weighted_pearson(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    dx, dy = x - np.average(x, weights=weights), y - np.average(y, weights=weights)
    return float(np.sum(weights * dx * dy) / np.sqrt(np.sum(weights * dx**2) * np.sum(weights * dy**2)))


def validator_reports(results: SweepResults, name: str) -> pd.DataFrame:
    """The reports with both the validator and target mIoU, its best first, with ``score`` oriented higher-is-better.

    Ties go to the earlier iteration, then to the sweep and trial id, so the pick is reproducible.
    """
    if name not in VALIDATORS:
        raise ResultsError(f"unknown validator {name!r}; known: {', '.join(VALIDATORS)}")
    reports = results.reports
    if name not in reports.columns:
        return reports.iloc[:0].assign(score=pd.Series(dtype=float))
    rows = reports.dropna(subset=[name, ACCURACY])
    rows = rows.assign(score=rows[name] if VALIDATORS[name].mode == "max" else -rows[name])
    return rows.sort_values(["score", "iteration", *KEY], ascending=[False, True, True, True], ignore_index=True)


def correlations(ranked: pd.DataFrame) -> tuple[float, float]:
    """Spearman and weighted Spearman of ``validator_reports`` rows; NaN with fewer than MIN_REPORTS."""
    if len(ranked) < MIN_REPORTS:
        return float("nan"), float("nan")
    return spearman(ranked["score"], ranked[ACCURACY]), weighted_spearman(ranked["score"], ranked[ACCURACY])


def label_free_selection(results: SweepResults) -> LabelFreeSelection:
    """Each validator with values against target mIoU over every report that has both.

    Regrets are in mIoU points: the best mIoU among those reports minus the mIoU of the
    report the validator ranks best; per trial, the same within the trial's own reports.
    """
    scored = results.reports.dropna(subset=[ACCURACY])
    per_trial = scored.sort_values([ACCURACY, "iteration"], ascending=[False, True]).groupby(KEY).head(1)
    per_trial = per_trial[[*KEY, "iteration", ACCURACY]].sort_values(KEY, ignore_index=True)
    per_trial = per_trial.rename(columns={"iteration": "oracle_iteration", ACCURACY: f"oracle_{ACCURACY}"})
    rows, notes, missing = [], [], []
    for name, validator in VALIDATORS.items():
        ranked = validator_reports(results, name)
        if ranked.empty:
            missing.append(name)
            continue
        if len(ranked) < MIN_REPORTS:
            notes.append(f"{name}: too few reports to rank: {len(ranked)} (at least {MIN_REPORTS} needed)")
        picks = ranked.groupby(KEY).head(1).set_index(KEY)[ACCURACY]
        trial_regret = (ranked.groupby(KEY)[ACCURACY].max() - picks).rename(f"regret.{name}")
        per_trial = per_trial.merge(trial_regret.reset_index(), on=KEY, how="left")
        pick, (rho, weighted) = ranked.iloc[0], correlations(ranked)
        rows.append({
            "validator": name, "direction": validator.mode, "reports": len(ranked), "spearman": rho, "weighted_spearman": weighted,
            "sweep_regret": ranked[ACCURACY].max() - pick[ACCURACY],
            "picked_sweep": pick["sweep"], "picked_trial": pick["trial_id"], "picked_iteration": int(pick["iteration"]),
            "mean_trial_regret": trial_regret.mean(), "max_trial_regret": trial_regret.max(), "reference": validator.reference,
        })
    if missing:
        notes.append(f"no values for: {', '.join(missing)}")
    return LabelFreeSelection(pd.DataFrame(rows, columns=COLUMNS), per_trial, "; ".join(notes), len(scored))
