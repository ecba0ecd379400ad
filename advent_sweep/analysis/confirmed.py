"""Summaries of a confirm run (``<sweep>/confirm/``): per configuration over seeds, and per selection rule.

Only pandas: the summary is recomputed from the confirm run's Parquet files and its plan.json,
so ``advent-sweep best --confirmed`` and a notebook get the same numbers as ``confirm`` printed.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

import advent_sweep
from advent_sweep.analysis.best import SCHEMA_COMMENT, BestChoice, select_best
from advent_sweep.analysis.markdown import markdown
from advent_sweep.analysis.results import SweepResults
from advent_sweep.errors import ResultsError
from advent_sweep.selection import ACCURACY, SELECTION_RULES
from advent_sweep.storage import filesystem_and_path, write_atomically

# Student's t, 0.975 quantile, by degrees of freedom: the 95% interval of a mean over few seeds.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


@dataclass(frozen=True)
class ConfirmSummary:
    """``configurations``: one row per candidate; ``rules``: each selection rule's mean target mIoU on the confirm runs."""

    configurations: pd.DataFrame
    rules: pd.DataFrame
    metric: str
    rule: str


def interval_95(values: pd.Series) -> float:
    """Half-width of the 95% t-interval of the mean (NaN for fewer than 2 values)."""
    n = values.count()
    if n < 2:
        return math.nan
    return (T_975[n - 2] if n - 2 < len(T_975) else 1.96) * values.std() / math.sqrt(n)


def candidate_of(results: SweepResults, plan: dict[str, Any]) -> pd.Series:
    """Each confirm trial's candidate index: the candidate whose config equals the trial's but for the seed."""
    keys = {json.dumps({**c["config"], "seed": None}, sort_keys=True): i for i, c in enumerate(plan["candidates"])}
    configs = results.trials.set_index("trial_id")["config_json"].dropna()
    return configs.map(lambda text: keys.get(json.dumps({**json.loads(text), "seed": None}, sort_keys=True)))


def summarise_confirm(results: SweepResults, plan: dict[str, Any]) -> ConfirmSummary:
    """Per candidate: the sweep's reported value, the confirmed mean, std, 95% interval and n over seeds, and the
    optimism (reported minus mean); each seed run scored as the sweep chose (the plan's rule on its metric)."""
    metric, mode, rule = plan["metric"], plan["mode"], plan["rule"]
    runs = select_best(results, metric, mode, rule)
    candidates = candidate_of(results, plan)
    runs = runs.assign(candidate=runs["trial_id"].map(candidates))
    searched = _searched(results, candidates)
    rows = []
    for index, candidate in enumerate(plan["candidates"]):
        values = runs.loc[runs["candidate"] == index, metric]
        mean = values.mean()
        rows.append({
            "candidate": index, "trial_id": candidate["trial_id"], "reported": candidate["reported"],
            "reported_iteration": candidate["iteration"], "seeds": int(values.count()), "mean": mean, "std": values.std(),
            "interval_95": interval_95(values), "optimism": candidate["reported"] - mean if mode == "max" else mean - candidate["reported"],
            **{f"seed_{seed}": _value_for_seed(runs, index, seed, metric) for seed in plan["seeds"]},
            **(searched.loc[index].to_dict() if index in searched.index else {}),
        })
    return ConfirmSummary(pd.DataFrame(rows), _rules(results), metric, rule)


def _value_for_seed(runs: pd.DataFrame, candidate: int, seed: int, metric: str) -> float:
    chosen = runs.loc[(runs["candidate"] == candidate) & (runs["config.seed"] == seed), metric]
    return float(chosen.iloc[0]) if len(chosen) else math.nan


def _searched(results: SweepResults, candidates: pd.Series) -> pd.DataFrame:
    """Per candidate, the searched parameters that differ between candidates, as its confirm runs read them.

    The confirm folder carries the sweep's space, so ``load_results`` has already blanked a parameter a
    candidate never sampled (an AdvEnt candidate's λ_ent): the table shows it empty, not as its default.
    """
    space = [f"config.{name}" for spec in results.sweeps.values() for name in spec.get("spec", {}).get("space", {})]
    columns = [c for c in dict.fromkeys(space) if c in results.trials.columns]
    trials = results.trials.assign(candidate=results.trials["trial_id"].map(candidates))
    values = trials.dropna(subset=["candidate"]).groupby("candidate")[columns].first()
    values.index = values.index.astype(int)
    return values[[c for c in columns if values[c].nunique(dropna=False) > 1]]


def _rules(results: SweepResults) -> pd.DataFrame:
    """Each rule's snapshot in every confirm run, and the target mIoU it reaches: what a paper's protocol costs."""
    rows = []
    for rule in SELECTION_RULES:
        try:
            picked = select_best(results, ACCURACY, "max", rule)[ACCURACY]
        except ResultsError:
            continue
        rows.append({"rule": rule, "runs": int(picked.count()), f"mean_{ACCURACY}": picked.mean(), "std": picked.std()})
    table = pd.DataFrame(rows)
    if len(table):
        oracle = table.loc[table["rule"] == "best", f"mean_{ACCURACY}"].iloc[0]
        table["below_oracle"] = oracle - table[f"mean_{ACCURACY}"]
    return table


def read_confirm(sweep: str | Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """The plan and the per-configuration summary a finished ``advent-sweep confirm`` wrote in ``<sweep>/confirm/``."""
    filesystem, root = filesystem_and_path(f"{str(sweep).rstrip('/')}/confirm")
    try:
        with filesystem.open_input_stream(f"{root}/plan.json") as stream:
            plan = json.loads(stream.read())
        summary = pq.read_table(f"{root}/summary.parquet", filesystem=filesystem).to_pandas()
    except (OSError, ValueError) as error:
        raise ResultsError(f"{sweep}: no finished confirm run ({error}); run advent-sweep confirm {sweep} first") from None
    return plan, summary


def write_confirm_summary(summary: ConfirmSummary, folder: str) -> None:
    """summary.parquet / .md and rules.parquet / .md in the confirm folder, each written atomically."""
    filesystem, root = filesystem_and_path(folder)
    for name, frame in (("summary", summary.configurations), ("rules", summary.rules)):
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
        write_atomically(f"{root}/{name}.parquet", buffer.getvalue(), filesystem)
        write_atomically(f"{root}/{name}.md", markdown(frame).encode(), filesystem)


def format_confirm(summary: ConfirmSummary) -> str:
    """The text ``advent-sweep confirm`` prints."""
    lines = [f"confirmed {summary.metric} (rule {summary.rule}) over seeds, against what the sweep reported:"]
    for row in summary.configurations.itertuples():
        lines.append(f"  #{row.candidate + 1} trial {row.trial_id}: reported {row.reported:.2f}, confirmed {row.mean:.2f} "
                     f"± {row.std:.2f} (95% interval ± {row.interval_95:.2f}, {row.seeds} seeds), optimism {row.optimism:+.2f}")
    if len(summary.rules):
        lines.append(f"selection rules on the confirm runs (mean {ACCURACY} of each rule's snapshot):")
        lines += [f"  {row['rule']:>16}: {row[f'mean_{ACCURACY}']:.2f} ({row['runs']} runs, {row['below_oracle']:.2f} below the oracle)"
                  for row in summary.rules.to_dict("records")]
    return "\n".join(lines)


def export_confirmed(sweep: str | Path, output_path: str | Path) -> BestChoice:
    """Write the configuration with the best confirmed mean (``advent-sweep confirm``'s summary) as a YAML to rerun.

    Its provenance lines give the confirmed mean, std and every seed's value beside what the sweep reported.
    """
    plan, summary = read_confirm(sweep)
    best = summary.sort_values("mean", ascending=plan["mode"] == "min").iloc[0]
    candidate = plan["candidates"][int(best["candidate"])]
    seeds = ", ".join(f"{seed}: {best[f'seed_{seed}']:.4g}" for seed in plan["seeds"])
    choice = BestChoice(Path(output_path), plan["sweep"], candidate["trial_id"], "confirmed", plan["metric"], plan["mode"],
                        plan["rule"], 0, float(best["mean"]), int(candidate["iteration"]), candidate["config"])
    lines = [
        SCHEMA_COMMENT,
        f"# best confirmed configuration, chosen by advent-sweep {advent_sweep.__version__}",
        f"# sweep: {choice.sweep}, trial: {choice.trial_id}; the sweep reported {plan['metric']} = {candidate['reported']!r} "
        f"(rule {plan['rule']}, iteration {candidate['iteration']})",
        f"# confirmed on {int(best['seeds'])} fresh seeds: mean {best['mean']:.4g} ± {best['std']:.4g} "
        f"(95% interval ± {best['interval_95']:.4g}); per seed {seeds}; optimism {best['optimism']:+.4g}",
        f"# rerun: advent-sweep train {choice.path.name}",
    ]
    choice.path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(choice.path, ("\n".join(lines) + "\n" + yaml.safe_dump(choice.config, sort_keys=False)).encode())
    return choice
