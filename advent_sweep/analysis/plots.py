"""PNG plots of a sweep: learning curves, metric against each varying parameter, importance bars, validators.

Figures are built on matplotlib's ``Figure`` directly (no pyplot), so nothing changes the
caller's backend or global state, and no display is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from advent_sweep.analysis.ablation import METHOD_NAMES
from advent_sweep.analysis.label_free import correlations, validator_reports
from advent_sweep.analysis.results import KEY, SweepResults, varying_parameters
from advent_sweep.selection import ACCURACY, VALIDATORS

if TYPE_CHECKING:  # importing it would load Optuna for plots that do not need it
    from advent_sweep.analysis.importance import Importances

COLORS = dict(zip(METHOD_NAMES, ("tab:gray", "tab:blue", "tab:orange", "tab:green")))


def learning_curves(results: SweepResults, metric: str, path: Path) -> Path:
    """The metric against trainer iterations, one line per trial, one panel per sweep (three to a row).

    Colour is the method; a trial stopped early by the scheduler is dashed, with an x where it stopped.
    """
    sweeps = list(results.reports["sweep"].unique())
    columns = min(len(sweeps), 3)
    rows = -(-len(sweeps) // columns)
    figure = Figure(figsize=(6 * columns, 4 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(sweeps):]:
        ax.set_visible(False)
    status = results.trials.set_index(KEY)["status"]
    for ax, sweep in zip(axes, sweeps):
        for (_, trial), curve in results.reports[results.reports["sweep"] == sweep].groupby(KEY, sort=False):
            curve = curve.dropna(subset=[metric])
            stopped = status.get((sweep, trial)) == "stopped"
            color = COLORS.get(curve["config.method"].iloc[0], "tab:purple") if len(curve) else None
            ax.plot(curve["iteration"], curve[metric], color=color, alpha=0.8, linestyle="--" if stopped else "-")
            if stopped and len(curve):
                ax.plot(curve["iteration"].iloc[-1], curve[metric].iloc[-1], "x", color=color, markersize=8)
        ax.set(title=f"sweep {sweep}", xlabel="trainer iteration", ylabel=metric)
        ax.grid(alpha=0.3)
    axes[len(sweeps) - 1].legend(handles=[*_method_handles(), Line2D([], [], color="black", linestyle="--", marker="x", label="stopped early")],
                    fontsize="small")
    figure.savefig(path, dpi=100)
    return path


def metric_vs_parameters(ranked: pd.DataFrame, metric: str, folder: Path) -> list[Path]:
    """One scatter per varying config parameter: each trial's chosen metric value against it (log x when it spans decades)."""
    paths = []
    colors = ranked["config.method"].map(lambda m: COLORS.get(m, "tab:purple"))
    for column in varying_parameters(ranked):
        values = ranked[column]
        figure = Figure(figsize=(5, 3.5), layout="constrained")
        ax = figure.subplots()
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            ax.scatter(values, ranked[metric], c=colors, alpha=0.8)
            if values.min() > 0 and values.max() / values.min() > 100:
                ax.set_xscale("log")
        else:
            categories = sorted(values.astype(str).unique())
            ax.scatter(values.astype(str).map(categories.index), ranked[metric], c=colors, alpha=0.8)
            ax.set_xticks(range(len(categories)), categories)
        ax.set(xlabel=column.removeprefix("config."), ylabel=metric)
        ax.grid(alpha=0.3)
        ax.legend(handles=_method_handles(), fontsize="x-small")
        path = folder / f"metric_vs_{column.removeprefix('config.')}.png"
        figure.savefig(path, dpi=100)
        paths.append(path)
    return paths


def importance_bars(importances: Importances, path: Path) -> Path:
    """Horizontal bars of each parameter's share of importance, largest on top."""
    values = importances.values.iloc[::-1]
    figure = Figure(figsize=(5, 0.4 * len(values) + 1.2), layout="constrained")
    ax = figure.subplots()
    ax.barh([name.removeprefix("config.") for name in values.index], values.to_numpy(), color="tab:blue")
    ax.set(xlabel=f"importance ({importances.evaluator}, {importances.trials} trials)", xlim=(0, 1))
    figure.savefig(path, dpi=100)
    return path


def validator_scatter(results: SweepResults, validator: str, path: Path) -> Path:
    """Target mIoU against one label-free validator, every report a dot coloured by method, its pick ringed.

    A good validator puts the highest dots at its better end; the title gives both rank correlations.
    """
    ranked = validator_reports(results, validator)
    rho, weighted = correlations(ranked)
    better = "higher" if VALIDATORS[validator].mode == "max" else "lower"
    figure = Figure(figsize=(5, 3.5), layout="constrained")
    ax = figure.subplots()
    ax.scatter(ranked[validator], ranked[ACCURACY], c=ranked["config.method"].map(lambda m: COLORS.get(m, "tab:purple")), alpha=0.7)
    pick = ranked.head(1)
    ax.scatter(pick[validator], pick[ACCURACY], s=200, facecolors="none", edgecolors="black", linewidths=1.5)
    ax.set(xlabel=f"{validator} ({better} is better)", ylabel=ACCURACY,
           title=f"{len(ranked)} reports: Spearman {rho:.2f}, weighted {weighted:.2f}")
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # BNM's values (~3e-3) would print as overlapping decimals
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 4))
    ax.legend(handles=[*_method_handles(), Line2D([], [], marker="o", markersize=10, markerfacecolor="none", markeredgecolor="black",
                                                  linestyle="none", label="validator's pick")], fontsize="x-small")
    figure.savefig(path, dpi=100)
    return path


def anytime_plot(curve: pd.DataFrame, random_search: dict[str, pd.DataFrame], metric: str, unit: str, path: Path) -> Path:
    """Best ``metric`` so far against resource-hours spent, a line per sweep; random search's expected curve
    for the same trials dashed, where it can be computed."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    for sweep, reports in curve.groupby("sweep", sort=False):
        line, = ax.step(reports["resource_hours"], reports["best_so_far"], where="post", label=f"sweep {sweep}")
        expected = random_search.get(sweep)
        if expected is not None:
            ax.plot(expected["resource_hours"], expected["expected_best"], "--", color=line.get_color(),
                    label="random search over the same trials (expected)")
    ax.set(xlabel=f"{unit.upper()}-hours spent", ylabel=f"best {metric} so far", title="anytime performance")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    figure.savefig(path, dpi=100)
    return path


def _method_handles() -> list[Line2D]:
    return [Line2D([], [], color=color, label=METHOD_NAMES[method]) for method, color in COLORS.items()]
