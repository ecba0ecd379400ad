"""What a sweep's findings cost: resource-hours per trial, per method and in total, and the anytime curve.

A trial's resource-hours are its wall time × the resources it held (trials.parquet: ``wall_time_s``,
``resources_gpu``, ``resources_cpu``); a sweep is counted in GPU-hours when its trials held a GPU, else in
CPU-hours. The anytime curve is what every HPO paper draws: the best value reported so far against the
resource-hours spent so far, over the reports in time order (each report adds its trial's wall time since
the one before, × its resources).
"""

from __future__ import annotations

from math import comb

import pandas as pd

from advent_sweep.analysis.results import KEY, SweepResults


def resource_unit(trials: pd.DataFrame) -> str:
    """``gpu`` when any trial held a GPU, else ``cpu``."""
    return "gpu" if (trials["resources_gpu"].fillna(0) > 0).any() else "cpu"


def trial_costs(results: SweepResults) -> pd.DataFrame:
    """Per trial: status, method, iterations, wall time and its CPU- and GPU-hours."""
    trials = results.trials
    frame = trials[[*KEY, "status", "config.method", "iterations", "wall_time_s"]].copy()
    frame["cpu_hours"] = trials["wall_time_s"] * trials["resources_cpu"] / 3600
    frame["gpu_hours"] = trials["wall_time_s"] * trials["resources_gpu"] / 3600
    return frame.rename(columns={"config.method": "method"})


def method_costs(results: SweepResults) -> pd.DataFrame:
    """Per sweep and method: trials, iterations and resource-hours, then the sweep's total (method ``all``)."""
    costs = trial_costs(results)
    columns = {"trials": ("trial_id", "count"), "iterations": ("iterations", "sum"),
               "cpu_hours": ("cpu_hours", "sum"), "gpu_hours": ("gpu_hours", "sum")}
    per_method = costs.groupby(["sweep", "method"], sort=False).agg(**columns).reset_index()
    total = costs.groupby("sweep", sort=False).agg(**columns).reset_index().assign(method="all")
    return pd.concat([per_method, total]).sort_values("sweep", kind="stable").reset_index(drop=True)


def anytime_curve(results: SweepResults, metric: str, mode: str) -> pd.DataFrame:
    """Per sweep, every report in time order: resource-hours spent so far and the best ``metric`` so far."""
    unit = resource_unit(results.trials)
    held = results.trials.set_index(KEY)[f"resources_{unit}"]
    reports = results.reports.sort_values([*KEY, "iteration"])
    spent = reports.groupby(KEY, sort=False)["wall_time_s"].diff().fillna(reports["wall_time_s"]).clip(lower=0)
    reports = reports.assign(hours=spent * held.reindex(pd.MultiIndex.from_frame(reports[KEY])).to_numpy() / 3600)
    reports = reports.sort_values(["sweep", "timestamp"], kind="stable")
    values = reports[metric] if mode == "max" else -reports[metric]
    best = values.groupby(reports["sweep"]).cummax()
    return pd.DataFrame({
        "sweep": reports["sweep"], "trial_id": reports["trial_id"], "iteration": reports["iteration"],
        "value": reports[metric], "resource_hours": reports.groupby("sweep")["hours"].cumsum(),
        "best_so_far": best if mode == "max" else -best,
    }).reset_index(drop=True)


def hours_to_best(curve: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Per sweep: the eventual best trial, the iteration where it first reported its best value, and the
    resource-hours spent until then, against the sweep's total."""
    rows = []
    for sweep, reports in curve.groupby("sweep", sort=False):
        scored = reports.dropna(subset=["value"])
        if scored.empty:
            continue
        best_value = scored["value"].max() if mode == "max" else scored["value"].min()
        first = scored[scored["value"] == best_value].iloc[0]
        total = reports["resource_hours"].iloc[-1]
        rows.append({"sweep": sweep, "best_trial": first["trial_id"], "best_value": best_value, "at_iteration": first["iteration"],
                     "resource_hours_until_then": first["resource_hours"], "resource_hours_total": total,
                     "share_of_total": first["resource_hours"] / total if total else float("nan")})
    return pd.DataFrame(rows)


def random_search_curve(results: SweepResults, metric: str, mode: str, sweep: str) -> pd.DataFrame | None:
    """Random search's expected best value (each trial's best report) after k of the sweep's trials, against
    k × their mean resource-hours.

    Only where every trial trained to the end (no early stops, nothing failed): then the same trials in a random
    order are a random search of that size, and the expected best of the first k is exact (the i-th smallest of n
    values is the best of a random k-subset with probability C(i−1, k−1) / C(n, k)). None otherwise.
    """
    trials = results.trials[results.trials["sweep"] == sweep]
    if len(trials) < 2 or (trials["status"] != "completed").any():
        return None
    reports = results.reports[results.reports["sweep"] == sweep]
    signed = reports[metric] if mode == "max" else -reports[metric]
    best = signed.groupby(reports["trial_id"]).max().dropna()  # each trial's best report, as the anytime curve counts it
    if len(best) < len(trials):
        return None
    values = sorted(best)
    n = len(values)
    unit = resource_unit(trials)
    per_trial = (trials["wall_time_s"] * trials[f"resources_{unit}"]).mean() / 3600
    expected = [sum(v * comb(i, k - 1) for i, v in enumerate(values)) / comb(n, k) for k in range(1, n + 1)]
    return pd.DataFrame({"trials": range(1, n + 1), "resource_hours": [k * per_trial for k in range(1, n + 1)],
                         "expected_best": expected if mode == "max" else [-v for v in expected]})
