"""No trial slot spent on a configuration already run: an exact repeat of the searched values is not trained.

When the sampler proposes the searched values of a trial that ran or is running (a parameter-free choice
such as ``method: source_only`` comes back with every value equal), the proposal is told to the Optuna study
as FAIL, marked with the user attributes ``repeat_of`` (the earlier trial's number) and ``not_trained``,
and the sampler is asked again, at most MAX_ASKS times for one Ray trial. FAIL keeps the repeat out of every
sampler's model (the earlier trial already counts once). A space searching ``seed`` keeps its repeats: there
they are the point.

A space with fewer distinct configurations than ``num_samples`` ends when each has run once.
"""

from __future__ import annotations

from typing import Any

from advent_sweep.sweep import space_rules
from advent_sweep.sweep.spec import SweepSpec

MAX_ASKS = 20  # proposals per Ray trial before the sweep ends: only repeats came back
COUNT_LIMIT = 100_000  # a space with more distinct configurations counts as endless


def distinct_configurations(spec: SweepSpec) -> int | None:
    """How many distinct searched configurations the space has; None if endless (a continuous range) or huge."""
    order = spec.param_order()

    def count(index: int, sampled: dict[str, Any]) -> int | None:
        if index == len(order):
            return 1
        name = order[index]
        if not spec.is_active(name, sampled):
            return count(index + 1, sampled)
        param = spec.space[name]
        if param.type == "float" and param.step is None:
            return None
        low, high = (None, None) if param.type == "categorical" else spec.bounds(name, sampled)
        values = [v for v in space_rules.grid_values(param) if low is None or low <= v <= high]
        total = 0
        for value in values:
            below = count(index + 1, {**sampled, name: value})
            if below is None or total + below > COUNT_LIMIT:
                return None
            total += below
        return total

    return count(0, {})


def original_of(params: dict[str, Any], trials: list[Any], number: int) -> int | None:
    """The number of an earlier trial (not itself a repeat) with exactly ``params``; None if there is none."""
    for trial in trials:
        if trial.number != number and "repeat_of" not in trial.user_attrs and trial.params == params:
            return trial.number
    return None


def ended_early_message(spec: SweepSpec, trials: int, reason: str) -> str:
    return (f"sweep {spec.name!r}: the searcher ends after {trials} of num_samples {spec.num_samples} trials: {reason}; "
            "repeats are not trained (their proposals are marked repeat_of in the Optuna study)")
