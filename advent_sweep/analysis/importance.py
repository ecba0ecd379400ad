"""Which config parameters the metric depends on, by Optuna's own importance evaluators.

The study is rebuilt in memory from the Parquet rows (one FrozenTrial per finished trial,
valued at the rule's report), so this works for any sweep, whatever stored its study.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from advent_sweep.analysis.ablation import Budget, equal_budget
from advent_sweep.analysis.results import SweepResults, varying_parameters
from advent_sweep.errors import ResultsError

EVALUATORS = {
    "fanova": lambda seed: optuna.importance.FanovaImportanceEvaluator(seed=seed),
    "ped_anova": lambda seed: optuna.importance.PedAnovaImportanceEvaluator(),
}


@dataclass(frozen=True)
class Importances:
    """Each parameter's share of importance (non-negative, summing to 1, largest first).

    ``left_out`` are conditional parameters (absent from some trials) that fANOVA cannot assess.
    """

    values: pd.Series
    evaluator: str
    trials: int
    left_out: tuple[str, ...]
    budget: str  # which trials were compared, at what budget


def parameter_importance(results: SweepResults, metric: str | None = None, mode: str | None = None, rule: str = "best",
                         min_iterations: int = 0, budget: Budget = "common", evaluator: str = "fanova",
                         seed: int = 0) -> Importances:
    """Importance of each varying config.* parameter for the metric over the finished trials at an equal budget."""
    if evaluator not in EVALUATORS:
        raise ResultsError(f"unknown importance evaluator {evaluator!r}; allowed: {', '.join(EVALUATORS)}")
    metric, mode = results.resolve(metric, mode)
    counted = equal_budget(results, metric, mode, rule, min_iterations, budget)
    rows = counted.rows
    if len(rows) < 2:
        raise ResultsError(f"parameter importance needs at least 2 finished trials with a {metric} value; found {len(rows)}")
    params = varying_parameters(rows)
    if not params:
        raise ResultsError(f"no config parameter varies across the {len(rows)} finished trials: nothing to rank")
    distributions = {name: _distribution(rows[name].dropna()) for name in params}
    trials = [
        optuna.trial.create_trial(
            params={name: _plain(row[name]) for name in params if not pd.isna(row[name])},
            distributions={name: distributions[name] for name in params if not pd.isna(row[name])},
            value=float(row[metric]),
        )
        for row in rows[[*params, metric]].to_dict("records")
    ]
    raw = _evaluate(trials, "maximize" if mode == "max" else "minimize", EVALUATORS[evaluator](seed))
    shares = pd.Series(raw, dtype=float).clip(lower=0.0)
    if shares.empty or shares.sum() <= 0:
        raise ResultsError(f"{evaluator} finds no parameter that explains any variation of {metric} over {len(rows)} trials")
    return Importances((shares / shares.sum()).sort_values(ascending=False), evaluator, len(rows),
                       tuple(sorted(set(params) - set(raw))), counted.note)


def _evaluate(trials: list[optuna.trial.FrozenTrial], direction: str, evaluator: Any) -> dict[str, float]:
    """Raw importances from a throwaway in-memory study, without Optuna's 'study created' log line."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction=direction)
    finally:
        optuna.logging.set_verbosity(verbosity)
    study.add_trials(trials)
    return evaluator.evaluate(study)


def _distribution(values: pd.Series) -> BaseDistribution:
    """Float (log when positive and spanning more than 2 decades), int, or categorical for anything else."""
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return CategoricalDistribution(sorted({_plain(v) for v in values}, key=str))
    low, high = values.min(), values.max()
    if pd.api.types.is_integer_dtype(values):
        return IntDistribution(int(low), int(high))
    return FloatDistribution(float(low), float(high), log=bool(low > 0 and high / low > 100))


def _plain(value: Any) -> Any:
    """numpy scalars as the Python values Optuna's distributions compare against."""
    return value.item() if isinstance(value, np.generic) else value
