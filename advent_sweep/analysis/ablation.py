"""Ablation tables: the paper's method x backbone table, and the marginal effect of each ADVENT knob.

Each trial counts once, with the report the selection rule picks, and trials are compared at
an equal budget (:func:`equal_budget`): a trial ASHA stopped at iteration 60 is not set beside
one that trained to 120, at a cost it never paid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd

from advent_sweep.analysis.best import select_best
from advent_sweep.analysis.results import KEY, SweepResults
from advent_sweep.errors import ResultsError

METHOD_NAMES = {"source_only": "Source only", "minent": "MinEnt", "advent": "AdvEnt", "advent_minent": "AdvEnt+MinEnt"}
MAX_BINS = 5
# Which methods a knob acts in (as in advent.config; not imported, so analysis stays free of the model layer).
ENTROPY_METHODS = ("minent", "advent_minent")
ADVERSARIAL_METHODS = ("advent", "advent_minent")
ADAPTING_METHODS = ("minent", "advent", "advent_minent")
Budget = Literal["common", "completed"]
BUDGETS: tuple[str, ...] = ("common", "completed")


@dataclass(frozen=True)
class BudgetRows:
    """One row per trial at an equal budget (the rule's report), and a sentence saying what was counted."""

    rows: pd.DataFrame
    note: str


def equal_budget(results: SweepResults, metric: str | None = None, mode: str | None = None, rule: str = "best",
                 min_iterations: int = 0, budget: Budget = "common") -> BudgetRows:
    """The trials compared at one budget: ``common`` cuts every trial at the largest iteration all reached (their
    reports up to it, the rule's pick among them); ``completed`` keeps only trials that trained to the end."""
    metric, mode = results.resolve(metric, mode)
    if budget not in BUDGETS:
        raise ResultsError(f"unknown budget {budget!r}; allowed: {', '.join(BUDGETS)}")
    finished = results.trials[results.trials["status"].isin(["completed", "stopped"])]
    reached = results.reports.merge(finished[KEY], on=KEY).groupby(KEY)["iteration"].max()
    if reached.empty:
        raise ResultsError("no finished trial (completed or stopped) to compare")
    if budget == "completed":
        done = results.trials.loc[results.trials["status"] == "completed", KEY]
        rows = select_best(results, metric, mode, rule, min_iterations).merge(done, on=KEY)
        note = (f"completed trials only (trained to the end): {len(rows)} of {len(reached)} finished; "
                f"{len(reached) - len(rows)} stopped early left out")
    else:
        common = int(reached.min())
        cut = results.reports[results.reports["iteration"] <= common].merge(reached.reset_index()[KEY], on=KEY)
        rows = select_best(replace(results, reports=cut), metric, mode, rule, min_iterations)
        note = f"every finished trial at iteration ≤ {common}, the largest that all {len(reached)} reached"
    return BudgetRows(rows, note)


@dataclass(frozen=True)
class Marginal:
    """The metric per bin of one knob (n, mean, std, min, max), or why there is no table."""

    name: str
    key: str
    table: pd.DataFrame | None
    note: str


def method_table(results: SweepResults, metric: str | None = None, mode: str | None = None, rule: str = "best",
                 min_iterations: int = 0, budget: Budget = "common") -> pd.DataFrame:
    """One row per method (paper order) x backbone at an equal budget: trials, seeds, mean, std, best, the gain
    of the mean over source-only (same backbone and benchmark; NaN without it), and per-class IoU means.

    A ``benchmark`` column (source → target) leads when the results mix domain pairs.
    """
    metric, mode = results.resolve(metric, mode)
    rows = equal_budget(results, metric, mode, rule, min_iterations, budget).rows.copy()
    rows["method"] = pd.Categorical(rows["config.method"].map(lambda m: METHOD_NAMES.get(m, m)),
                                    categories=_method_order(rows["config.method"]), ordered=True)
    rows["benchmark"] = rows["data.source"] + " → " + rows["data.target"]
    keys = (["benchmark"] if rows["benchmark"].nunique() > 1 else []) + ["method", "config.backbone"]
    groups = rows.groupby(keys, observed=True, sort=True)
    table = groups[metric].agg(["size", "mean", "std", "max" if mode == "max" else "min"])
    table.columns = ["trials", "mean", "std", "best"]
    table.insert(1, "seeds", groups["config.seed"].nunique())
    table = table.reset_index()
    alike = [key for key in keys if key != "method"]  # the source-only row a method is measured against
    baseline = table.loc[table["method"] == METHOD_NAMES["source_only"], [*alike, "mean"]].rename(columns={"mean": "baseline"})
    table = table.merge(baseline, on=alike, how="left")
    table.insert(table.columns.get_loc("best") + 1, "gain", table["mean"] - table.pop("baseline"))
    ious = groups[[c for c in rows.columns if c.startswith("iou.")]].mean().reset_index()
    return table.merge(ious, on=keys).rename(columns={"config.backbone": "backbone"})


def paper_style(table: pd.DataFrame) -> pd.DataFrame:
    """``method_table`` for reading: mean ± std in one cell, IoU columns named by class."""
    shown = table.drop(columns=["mean", "std"]).rename(columns=lambda c: c.removeprefix("iou."))
    shown["gain"] = [f"{g:+.2f}" if g == g else "–" for g in table["gain"]]
    shown.insert(shown.columns.get_loc("seeds") + 1, "mean ± std", [_pm(m, s) for m, s in zip(table["mean"], table["std"])])
    return shown


def marginal_effects(results: SweepResults, metric: str | None = None, mode: str | None = None, rule: str = "best",
                     min_iterations: int = 0, budget: Budget = "common") -> list[Marginal]:
    """The metric binned by λ_ent, λ_adv (log bins), μ (fixed bins) and the entropy range [e_lo, e_hi], at an equal budget.

    Only trials of the methods a knob acts in count; a knob that does not vary there is skipped, with a note.
    """
    metric, mode = results.resolve(metric, mode)
    rows = equal_budget(results, metric, mode, rule, min_iterations, budget).rows
    knobs: list[tuple[str, str, tuple[str, ...], Callable[[pd.DataFrame], pd.Series]]] = [
        ("λ_ent (main)", "lambda_ent_main", ENTROPY_METHODS, lambda r: _binned(r["config.lambda_ent_main"], _log_edges)),
        ("λ_adv (main)", "lambda_adv_main", ADVERSARIAL_METHODS, lambda r: _binned(r["config.lambda_adv_main"], _log_edges)),
        ("μ (class-ratio prior)", "class_prior_mu", ADAPTING_METHODS, lambda r: _binned(r["config.class_prior_mu"], _mu_edges)),
        ("entropy range [e_lo, e_hi]", "entropy_range", ADAPTING_METHODS, _ranges),
    ]
    return [_marginal(rows, metric, *knob) for knob in knobs]


def _marginal(rows: pd.DataFrame, metric: str, name: str, key: str, methods: tuple[str, ...],
              bins: Callable[[pd.DataFrame], pd.Series]) -> Marginal:
    used = rows[rows["config.method"].isin(methods)]
    where = f"trials of {', '.join(METHOD_NAMES[m] for m in methods)}"
    if used.empty:
        return Marginal(name, key, None, f"skipped: no {where}")
    labels = bins(used)
    if labels.nunique() < 2:
        return Marginal(name, key, None, f"skipped: does not vary over the {len(used)} {where} (all {labels.iloc[0]})")
    table = used.loc[labels.index].groupby(labels, sort=False)[metric].agg(n="size", mean="mean", std="std", min="min", max="max")
    return Marginal(name, key, table.rename_axis(name).reset_index(), f"{len(used)} {where}")


def _binned(values: pd.Series, edges: Callable[[pd.Series], np.ndarray]) -> pd.Series:
    """One bin per value when there are few, else intervals; 0 (the term turned off) always on its own.

    Returned in ascending order of value, so groupby(sort=False) keeps the bins in order.
    """
    values = values.sort_values()
    positive = values[values > 0]
    if positive.nunique() <= MAX_BINS:
        labels = positive.map(lambda v: f"{v:.3g}")
    else:
        bounds = edges(positive)
        names = [f"{'(' if k else '['}{low:.2g}, {high:.2g}]" for k, (low, high) in enumerate(zip(bounds[:-1], bounds[1:]))]
        labels = pd.cut(positive, bounds, labels=names, include_lowest=True).astype(str)
    return pd.concat([pd.Series("0 (off)", index=values.index[values == 0]), labels])


def _log_edges(values: pd.Series) -> np.ndarray:
    return np.geomspace(values.min(), values.max(), MAX_BINS + 1)


def _mu_edges(values: pd.Series) -> np.ndarray:
    return np.array([0.0, 0.25, 0.5, 0.75, 1.0])


def _ranges(rows: pd.DataFrame) -> pd.Series:
    ordered = rows.sort_values(["config.entropy_low", "config.entropy_high"])
    return ordered["config.entropy_low"].map("{:g}".format).radd("[") + ", " + ordered["config.entropy_high"].map("{:g}]".format)


def _method_order(methods: pd.Series) -> list[str]:
    others = sorted(set(methods) - set(METHOD_NAMES))
    return [METHOD_NAMES[m] for m in METHOD_NAMES if m in set(methods)] + others


def _pm(mean: float, std: float) -> str:
    return f"{mean:.2f}" if np.isnan(std) else f"{mean:.2f} ± {std:.2f}"
