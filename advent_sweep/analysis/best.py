"""Choosing the best trial under a stated rule, and exporting its config as a file that reruns it.

The official ADVENT evaluation scores every snapshot on target val and keeps the best,
which selects on target labels; the rule is therefore always explicit: best-so-far,
last, or label-free (the report a validator of advent_sweep/selection.py ranks best).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

import advent_sweep
from advent_sweep.analysis.results import KEY, SweepResults
from advent_sweep.errors import ResultsError
from advent_sweep.selection import VALIDATORS
from advent_sweep.storage import write_atomically

RULES = {
    "best": "best-so-far: each trial's best report under the metric (on target labels unless the metric is a validator)",
    "last": "last: each trial's last report",
    **{name: f"label-free: each trial's report with the {'highest' if v.mode == 'max' else 'lowest'} {name}, "
             f"trials ranked by it" for name, v in VALIDATORS.items()},
}

# A YAML modeline needs the schema's path or URL, which a file written anywhere (and copied to a cluster) cannot
# know: the first line names the command that prints the schema instead.
SCHEMA_COMMENT = "# JSON Schema of this file: `advent-sweep schema train` (docs/schema/train.schema.json in advent-sweep's repository)"


@dataclass(frozen=True)
class BestChoice:
    """What ``export_best`` wrote: the trial, the value that made it best, and where."""

    path: Path
    sweep: str
    trial_id: str
    status: str
    metric: str
    mode: str
    rule: str
    min_iterations: int
    value: float
    iteration: int
    config: dict[str, Any]

    def __str__(self) -> str:
        return (f"{self.path}: trial {self.trial_id} of sweep {self.sweep} ({self.status}), "
                f"{self.metric} {self.value:.4g} at iteration {self.iteration} (rule {self.rule}, mode {self.mode})")


def select_best(results: SweepResults, metric: str | None = None, mode: str | None = None, rule: str = "best",
                min_iterations: int = 0) -> pd.DataFrame:
    """One report per trial, the one ``rule`` picks, ranked best first.

    Columns: sweep, trial_id, status, iteration, <metric>, then the rest of that report
    (config.*, iou.*, losses), so ablations read the per-class IoU at the same report.
    Only reports at ``iteration >= min_iterations`` count (rule last: the trial is left out).
    """
    metric, mode = results.resolve(metric, mode)
    if rule not in RULES:
        raise ResultsError(f"unknown rule {rule!r}; allowed: {', '.join(RULES)}")
    reports = results.reports
    if rule == "last":
        rows = reports.sort_values("iteration").groupby(KEY).tail(1)
        rows = rows[rows["iteration"] >= min_iterations]
        rank_by, ascending = metric, mode == "min"
    else:
        rank_by, ascending = (rule, VALIDATORS[rule].mode == "min") if rule in VALIDATORS else (metric, mode == "min")
        if rank_by not in reports.columns:
            raise ResultsError(f"rule {rule} needs the {rank_by} column, which the reports lack")
        rows = reports[reports["iteration"] >= min_iterations].dropna(subset=[rank_by])
        rows = rows.sort_values([rank_by, "iteration"], ascending=[ascending, True]).groupby(KEY).head(1)
    rows = rows.dropna(subset=[metric, rank_by])
    if rows.empty:
        at = f" at iteration >= {min_iterations}" if min_iterations else ""
        raise ResultsError(f"no trial has a {metric} report{at} under rule {rule}")
    rows = rows.sort_values([rank_by, *KEY], ascending=[ascending, True, True])
    rows = rows.merge(results.trials[[*KEY, "status"]], on=KEY, how="left")
    first = [*KEY, "status", "iteration", metric]
    return rows[first + [c for c in rows.columns if c not in first]].reset_index(drop=True)


def format_top(results: SweepResults, k: int = 10, metric: str | None = None, mode: str | None = None,
               rule: str = "best", min_iterations: int = 0) -> str:
    """The ``k`` best trials as a text table (what ``advent-sweep best --top K`` prints)."""
    metric, mode = results.resolve(metric, mode)
    ranked = select_best(results, metric, mode, rule, min_iterations).head(k)
    shown = [c for c in (*KEY, "status", "config.method", "config.backbone", "config.seed", "iteration", metric) if c in ranked.columns]
    if len(results.sweeps) == 1:
        shown.remove("sweep")
    table = ranked[shown].rename(columns=lambda c: c.removeprefix("config."))
    table.index = range(1, len(table) + 1)
    header = f"top {len(table)} by {metric} ({mode}), rule {rule}" + (f", iteration >= {min_iterations}" if min_iterations else "")
    return header + "\n" + table.to_string(float_format=lambda v: f"{v:.4g}")


def export_best(results: SweepResults, output_path: str | Path, metric: str | None = None, mode: str | None = None,
                rule: str = "best", min_iterations: int = 0) -> BestChoice:
    """Write the best trial's full TrainConfig as YAML that ``advent-sweep train`` runs as is.

    Provenance goes in comment lines, since TrainConfig forbids unknown keys. The file is
    written atomically, and not at all when no trial qualifies.
    """
    metric, mode = results.resolve(metric, mode)
    top = select_best(results, metric, mode, rule, min_iterations).iloc[0]
    listed = results.trials
    if "config_json" not in listed.columns:
        raise ResultsError("trials.parquet is missing, so the best trial's full config is unknown; retry once the sweep has written it")
    config_json = listed.loc[(listed["sweep"] == top["sweep"]) & (listed["trial_id"] == top["trial_id"]), "config_json"]
    if config_json.isna().all():
        raise ResultsError(f"trial {top['trial_id']} of sweep {top['sweep']} has no config_json in trials.parquet yet; retry later")
    choice = BestChoice(Path(output_path), top["sweep"], top["trial_id"], top["status"], metric, mode, rule, min_iterations,
                        float(top[metric]), int(top["iteration"]), json.loads(config_json.dropna().iloc[0]))
    choice.path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(choice.path, _yaml_text(choice).encode())
    return choice


def _yaml_text(choice: BestChoice) -> str:
    lines = [
        SCHEMA_COMMENT,
        f"# best configuration chosen by advent-sweep {advent_sweep.__version__}",
        f"# sweep: {choice.sweep}, trial: {choice.trial_id} ({choice.status})",
        f"# {choice.metric} = {choice.value!r} ({choice.mode}) at iteration {choice.iteration}",
        f"# rule: {RULES[choice.rule]}" + (f"; reports at iteration >= {choice.min_iterations}" if choice.min_iterations else ""),
    ]
    if choice.iteration != choice.config.get("iterations"):
        lines.append(f"# to stop at that report, set iterations: {choice.iteration} (the poly schedule follows poly_horizon either way)")
    lines.append(f"# rerun: advent-sweep train {choice.path.name}")
    return "\n".join(lines) + "\n" + yaml.safe_dump(choice.config, sort_keys=False)
