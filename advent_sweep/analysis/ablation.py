"""Ablation tables: the paper's method x backbone table, and the marginal effect of each ADVENT knob.

Each trial counts once, with the report the selection rule picks (its best, or its last),
so a trial that ran longer does not weigh more than one stopped early.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from advent_sweep.analysis.best import select_best
from advent_sweep.analysis.results import SweepResults

METHOD_NAMES = {"source_only": "Source only", "minent": "MinEnt", "advent": "AdvEnt", "advent_minent": "AdvEnt+MinEnt"}
MAX_BINS = 5
# Which methods a knob acts in (as in advent.config; not imported, so analysis stays free of the model layer).
ENTROPY_METHODS = ("minent", "advent_minent")
ADVERSARIAL_METHODS = ("advent", "advent_minent")
ADAPTING_METHODS = ("minent", "advent", "advent_minent")


@dataclass(frozen=True)
class Marginal:
    """The metric per bin of one knob (n, mean, std, min, max), or why there is no table."""

    name: str
    key: str
    table: pd.DataFrame | None
    note: str


def method_table(results: SweepResults, metric: str | None = None, mode: str | None = None, rule: str = "best",
                 min_iterations: int = 0) -> pd.DataFrame:
    """One row per method (paper order) x backbone: trials, seeds, mean, std and best of the metric, per-class IoU means.

    A ``benchmark`` column (source → target) leads when the results mix domain pairs.
    """
    metric, mode = results.resolve(metric, mode)
    rows = select_best(results, metric, mode, rule, min_iterations)
    rows["method"] = pd.Categorical(rows["config.method"].map(lambda m: METHOD_NAMES.get(m, m)),
                                    categories=_method_order(rows["config.method"]), ordered=True)
    rows["benchmark"] = rows["data.source"] + " → " + rows["data.target"]
    keys = (["benchmark"] if rows["benchmark"].nunique() > 1 else []) + ["method", "config.backbone"]
    groups = rows.groupby(keys, observed=True, sort=True)
    table = groups[metric].agg(["size", "mean", "std", "max" if mode == "max" else "min"])
    table.columns = ["trials", "mean", "std", "best"]
    table.insert(1, "seeds", groups["config.seed"].nunique())
    ious = groups[[c for c in rows.columns if c.startswith("iou.")]].mean()
    return table.join(ious).reset_index().rename(columns={"config.backbone": "backbone"})


def paper_style(table: pd.DataFrame) -> pd.DataFrame:
    """``method_table`` for reading: mean ± std in one cell, IoU columns named by class."""
    shown = table.drop(columns=["mean", "std"]).rename(columns=lambda c: c.removeprefix("iou."))
    shown.insert(shown.columns.get_loc("seeds") + 1, "mean ± std", [_pm(m, s) for m, s in zip(table["mean"], table["std"])])
    return shown


def marginal_effects(results: SweepResults, metric: str | None = None, mode: str | None = None, rule: str = "best",
                     min_iterations: int = 0) -> list[Marginal]:
    """The metric binned by λ_ent, λ_adv (log bins), μ (fixed bins) and the entropy range [e_lo, e_hi].

    Only trials of the methods a knob acts in count; a knob that does not vary there is skipped, with a note.
    """
    metric, mode = results.resolve(metric, mode)
    rows = select_best(results, metric, mode, rule, min_iterations)
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
