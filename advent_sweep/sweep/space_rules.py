"""The search space's own rules: how it is walked, and how its parameters are checked.

The first half is shared by SweepSpec (``param_order``, ``is_active``, ``bounds``, ``grid``,
``describe``) and by the checks: the order parameters are sampled in, which are active, their
values and bounds. The second half checks the parameters (the models of ``spec_models``) once
they have parsed: their ranges, their bounds and choices against TrainConfig, their conditions,
the entropy pair and the first points. Problems go to a ``spec_problems.Problems``;
``spec_checks`` runs these checks with those of the other sections.

The entropy range rule: when ``entropy_low`` is sampled in a trial, ``entropy_high`` is
drawn from ``[max(its low, entropy_low), its high]`` (the raised bound rounded up onto its
``step`` grid), so ``entropy_low <= entropy_high`` always holds without discarding
trials. A spec is accepted only if that interval can never be empty. A categorical
``entropy_high``, or any parameter under the grid sampler, has fixed values that cannot
move, so there every possible ``entropy_low`` must be <= every ``entropy_high`` value.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter, ValidationError

from advent_sweep.advent.config import TrainConfig
from advent_sweep.sweep.spec_models import FloatParam, IntParam, Param
from advent_sweep.sweep.spec_problems import Problems


# --- walking the space (SweepSpec and the checks) ------------------------------------------------


def contains(values: list[Any], value: Any) -> bool:
    """Membership that tells True from 1 (YAML values and Optuna choices keep their types)."""
    return any(v == value and type(v) is type(value) for v in values) or (
        not isinstance(value, bool) and any(v == value and not isinstance(v, bool) for v in values)
    )


def is_active(param: Param, sampled: dict[str, Any]) -> bool:
    """Whether every condition of ``param`` holds for the values sampled so far."""
    return all(condition in sampled and contains(values, sampled[condition]) for condition, values in (param.when or {}).items())


def order(space: dict[str, Param]) -> tuple[tuple[str, ...], list[str] | None]:
    """Parameters with what they depend on first (conditions, entropy_low), else as written; or a cycle."""
    needs = {name: {c for c in (param.when or {}) if c in space and c != name} for name, param in space.items()}
    if "entropy_low" in space and "entropy_high" in space:
        needs["entropy_high"].add("entropy_low")
    ordered: list[str] = []
    while len(ordered) < len(space):
        ready = [name for name in space if name not in ordered and needs[name] <= set(ordered)]
        if not ready:
            return tuple(ordered), _find_cycle(needs, [n for n in space if n not in ordered])
        ordered.append(ready[0])
    return tuple(ordered), None


def _find_cycle(needs: dict[str, set[str]], remaining: list[str]) -> list[str]:
    path = [remaining[0]]
    while True:
        following = sorted(needs[path[-1]] & set(remaining))[0]
        if following in path:
            return path[path.index(following) :] + [following]
        path.append(following)


def _decimal(value: float) -> Decimal:
    return Decimal(str(value))


def grid_values(param: Param) -> list[Any]:
    """All values of a categorical or stepped parameter (exact decimal steps, no float drift)."""
    if param.type == "categorical":
        return list(param.choices)
    if param.type == "int":
        return list(range(param.low, param.high + 1, param.step))
    low, step = _decimal(param.low), _decimal(param.step)
    count = int((_decimal(param.high) - low) / step) + 1
    return [float(low + i * step) for i in range(count)]


def on_grid(value: float, param: FloatParam | IntParam) -> bool:
    """Whether ``value`` is low + k·step for a whole k (exact decimal arithmetic)."""
    return (_decimal(value) - _decimal(param.low)) % _decimal(param.step) == 0


def round_up(value: float, param: FloatParam | IntParam) -> float:
    """The smallest value of ``param``'s grid (low + k·step; ints for int) that is >= value."""
    if param.type == "int":
        k = max(0, math.ceil((value - param.low) / param.step))
        return param.low + k * param.step
    if param.step is None:
        return value
    low, step = _decimal(param.low), _decimal(param.step)
    k = max(0, math.ceil((_decimal(value) - low) / step))
    return float(low + k * step)


def extreme(param: Param, pick: Any) -> float:
    """``pick`` (min or max) of the values ``param`` can take."""
    return pick(param.choices) if param.type == "categorical" else pick(param.low, param.high)


def bounds(space: dict[str, Param], name: str, sampled: dict[str, Any], grid: bool) -> tuple[float, float]:
    """The [low, high] to sample float/int parameter ``name`` from, given the values sampled so far.

    Only entropy_high moves (unless the sampler is ``grid``): its low bound is raised to a sampled
    entropy_low, rounded up onto its step grid (the entropy range rule).
    """
    param = space[name]
    low, high = param.low, param.high
    if name == "entropy_high" and not grid and "entropy_low" in sampled:
        low = max(low, round_up(sampled["entropy_low"], param))
    return low, high


def entropy_high_moves(space: dict[str, Param], grid: bool) -> bool:
    """Whether entropy_high's low bound can be raised by a sampled entropy_low (see :func:`bounds`)."""
    low, high = space.get("entropy_low"), space.get("entropy_high")
    if low is None or high is None or high.type == "categorical" or grid:
        return False
    return extreme(low, max) > high.low


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def fmt_list(values: list[Any]) -> str:
    return ", ".join(map(fmt, values))


def describe_range(param: FloatParam | IntParam) -> str:
    text = f"[{fmt(param.low)}, {fmt(param.high)}]"
    if param.log:
        text += " log"
    if param.step not in (None, 1):
        text += f" step {fmt(param.step)}"
    return f"{param.type} {text}"


# --- checking the parameters -------------------------------------------------------------------


def config_errors(base: dict[str, Any], updates: dict[str, Any]) -> tuple[TrainConfig | None, list[str]]:
    """TrainConfig built from base + updates, or the messages saying why not."""
    try:
        return TrainConfig.model_validate({**base, **updates}), []
    except ValidationError as error:
        return None, [e["msg"].removeprefix("Value error, ") for e in error.errors(include_url=False)]


def _as_configured(base: dict[str, Any] | None, name: str, value: Any) -> Any:
    """``value`` as TrainConfig stores setting ``name`` (unchanged when there is no base or it fails)."""
    config, _ = config_errors(base, {name: value}) if base is not None else (None, [])
    return getattr(config, name) if config else value


def check_param_shape(problems: Problems, loc: tuple, name: str, param: Param) -> bool:
    """Type fits the setting; low <= high; log needs low > 0; step fits the range."""
    before = len(problems.details)
    kind = {float: "float", int: "int"}.get(TrainConfig.model_fields[name].annotation)
    if param.type == "float" and kind != "float":
        allowed = "int, categorical" if kind == "int" else "categorical"
        problems.add(loc + ("type",), f"float does not fit {name} (a {kind or 'non-numeric'} setting); allowed: {allowed}", "float")
    if param.type == "int" and kind is None:
        problems.add(loc + ("type",), f"int does not fit {name} (a non-numeric setting); allowed: categorical", "int")
    if param.type == "categorical":
        return len(problems.details) == before
    if param.low > param.high:
        problems.add(loc + ("low",), f"greater than high ({param.high}); allowed: low <= high", param.low)
    if param.log and param.low <= 0:
        problems.add(loc + ("low",), "must be > 0 on a log scale; allowed: low > 0 with log: true", param.low)
    if param.log and param.step not in (None, 1):
        problems.add(loc + ("step",), "a step cannot be combined with log: true; allowed: remove step or log", param.step)
    elif param.step is not None and param.low <= param.high and not on_grid(param.high, param):
        problems.add(
            loc + ("step",),
            f"high - low ({param.high} - {param.low}) is not a multiple of step; allowed: a step that divides the range",
            param.step,
        )
    return len(problems.details) == before


def check_param_values(
    problems: Problems, loc: tuple, name: str, param: Param, base: dict[str, Any], raw_space: dict[str, Any]
) -> Param | None:
    """Each bound / choice, with the fixed settings, gives a valid TrainConfig; choices normalised."""
    # entropy_low and entropy_high, when both are searched, are checked together (check_entropy_pair).
    partner = {"entropy_low": ("entropy_high", 1.0), "entropy_high": ("entropy_low", 0.0)}.get(name)
    if partner and partner[0] in raw_space:
        base = {**base, partner[0]: partner[1]}
    before = len(problems.details)
    if param.type != "categorical":
        for bound in ("low", "high"):
            value = getattr(param, bound)
            for message in config_errors(base, {name: value})[1]:
                problems.add(loc + (bound,), message, value)
        return param if len(problems.details) == before else None
    choices = []
    for i, choice in enumerate(param.choices):
        config, messages = config_errors(base, {name: choice})
        for message in messages:
            problems.add(loc + ("choices", i), message, choice)
        if config is None:
            continue
        value = getattr(config, name)
        if contains(choices, value):
            problems.add(loc + ("choices", i), "a duplicate; allowed: distinct values", choice)
        choices.append(value)
    return param.model_copy(update={"choices": choices}) if len(problems.details) == before else None


def check_conditions(problems: Problems, space: dict[str, Param], raw_space: dict[str, Any], base: dict[str, Any] | None) -> None:
    """``when`` names categorical parameters of the space and only their choices; no cycles."""
    categoricals = [n for n, p in raw_space.items() if isinstance(p, dict) and p.get("type") == "categorical"]
    allowed_names = ", ".join(categoricals) or "none (the space has no categorical parameter)"
    for name, param in list(space.items()):
        if not param.when:
            continue
        when, ok = {}, True
        for condition, values in param.when.items():
            loc = ("space", name, "when", condition)
            target = space.get(condition)
            if condition == name:
                problems.add(loc, f"a parameter cannot depend on itself; allowed: {allowed_names}")
            elif target is None:
                if condition not in raw_space:  # (one that failed validation is reported where it is)
                    problems.add(loc, f"{condition} is not a parameter of this space; allowed: {allowed_names}")
            elif target.type != "categorical":
                problems.add(loc, f"{condition} is a {target.type} parameter; a condition needs a categorical one; allowed: {allowed_names}")
            else:
                when[condition] = [_as_configured(base, condition, value) for value in values]
                for i, value in enumerate(when[condition]):
                    if not contains(target.choices, value):
                        problems.add(loc + (i,), f"not a choice of {condition}; allowed: {fmt_list(target.choices)}", value)
                continue
            ok = False
        if ok:
            space[name] = param.model_copy(update={"when": when})
    _, cycle = order(space)
    if cycle:
        problems.add(("space", cycle[0], "when"), f"conditions form a cycle ({' → '.join(cycle)}); allowed: conditions that lead back to no parameter")


def check_entropy_pair(problems: Problems, space: dict[str, Param], base: TrainConfig, grid: bool) -> None:
    """entropy_low <= entropy_high must hold in every trial (the entropy range rule, above)."""
    low, high = space.get("entropy_low"), space.get("entropy_high")
    if low is None or high is None:
        return
    largest_low, smallest_high = extreme(low, max), extreme(high, min)
    if high.type == "categorical" or grid:
        if largest_low > smallest_high:
            problems.add(
                ("space", "entropy_high"),
                f"its smallest value ({fmt(smallest_high)}) is below the largest entropy_low ({fmt(largest_low)}); "
                "fixed values (categorical or grid) cannot move above a sampled entropy_low; "
                "allowed: every entropy_high value >= every entropy_low value",
            )
    elif largest_low > high.high:
        problems.add(
            ("space", "entropy_high", "high"),
            f"below the largest entropy_low ({fmt(largest_low)}), so no entropy_high >= entropy_low could be drawn; "
            f"allowed: high >= {fmt(largest_low)}",
            high.high,
        )
    if low.when and base.entropy_low > smallest_high:
        problems.add(
            ("space", "entropy_low", "when"),
            f"when entropy_low is not sampled it is {fmt(base.entropy_low)}, above entropy_high's low "
            f"({fmt(smallest_high)}); allowed: an entropy_high range >= the fixed entropy_low",
        )
    if high.when and base.entropy_high < largest_low:
        problems.add(
            ("space", "entropy_high", "when"),
            f"when entropy_high is not sampled it is {fmt(base.entropy_high)}, below the largest entropy_low "
            f"({fmt(largest_low)}); allowed: an entropy_low range <= the fixed entropy_high",
        )


def check_point(
    problems: Problems, i: int, point: dict[str, Any], space: dict[str, Param], names: list[str], base: dict[str, Any] | None
) -> dict[str, Any]:
    """A first point names only space parameters, each in range and active; normalised values."""
    loc = ("searcher", "points_to_evaluate", i)
    normalised = {}
    for name, value in point.items():
        param = space.get(name)
        if param is None:
            if name not in names:  # (a parameter that failed validation is reported where it is)
                problems.add(loc + (name,), f"not a parameter of the space; allowed: {', '.join(names)}", value)
            continue
        value, message = _point_value(name, param, value, base)
        if message:
            problems.add(loc + (name,), message, value)
        normalised[name] = value
    for name in normalised:
        for condition, values in (space[name].when or {}).items():
            if condition in normalised and not contains(values, normalised[condition]):
                problems.add(
                    loc + (name,),
                    f"inactive in this point: {name} is sampled only when {condition} in "
                    f"[{fmt_list(values)}], and the point sets {condition}={fmt(normalised[condition])}; "
                    "allowed: leave it out of this point",
                )
    if ("entropy_low" in normalised) != ("entropy_high" in normalised) and {"entropy_low", "entropy_high"} <= set(space):
        problems.add(loc, "gives only one of entropy_low / entropy_high; allowed: both (they are drawn as a pair)")
    if base is not None and not any(d["loc"][:3] == loc for d in problems.details):
        for message in config_errors(base, normalised)[1]:
            problems.add(loc, message)
    return normalised


def _point_value(name: str, param: Param, value: Any, base: dict[str, Any] | None) -> tuple[Any, str | None]:
    """The value as the trial will see it, and what is wrong with it (None if nothing)."""
    if param.type == "categorical":
        value = _as_configured(base, name, value)
        if not contains(param.choices, value):
            return value, f"not one of the choices; allowed: {fmt_list(param.choices)}"
        return value, None
    kind = int if param.type == "int" else float
    try:
        value = TypeAdapter(kind).validate_python(value)
    except ValidationError:
        return value, f"not {'an int' if kind is int else 'a number'}; allowed: {describe_range(param)}"
    if isinstance(value, bool) or not param.low <= value <= param.high:
        return value, f"out of range; allowed: {describe_range(param)}"
    if param.step not in (None, 1) and not on_grid(value, param):
        return value, f"not on the step grid; allowed: {describe_range(param)}"
    return value, None
