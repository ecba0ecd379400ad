"""Check a space.yaml mapping section by section, collecting every problem before reporting any.

:func:`check` is what ``SweepSpec`` runs before pydantic builds it: it returns every problem
found, as pydantic error details (so one ValidationError carries them all), and the values
resolved (storage made absolute, choices normalised, num_samples / mode / ASHA's settings
filled in). The rules of the search space itself live in ``space_rules``.
"""

from __future__ import annotations

import functools
import math
import os
import re
import typing
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from advent_sweep.advent.config import TrainConfig
from advent_sweep.data.config import DataConfig
from advent_sweep.selection import VALIDATORS
from advent_sweep.sweep import space_rules
from advent_sweep.sweep.spec_models import (
    DEFAULT_BACKBONE,
    DEFAULT_STORAGE,
    MODE_NAMES,
    PARAM_TYPES,
    FloatParam,
    Param,
    ParamSpec,
    Resources,
    SchedulerSpec,
    SearcherSpec,
    SweepFields,
)
from advent_sweep.sweep.spec_problems import NOTHING, Problems, nested_model

DEFAULT_REDUCTION_FACTOR = 3.0
# The metrics a trial reports that a sweep may optimise, and the only sound direction for each: a label-free
# validator makes a sweep that never sees target labels. target_miou_13 (mIoU* on 13 classes) is reported on
# SYNTHIA data only, source_val_miou with a held-out source split only.
METRIC_MODES = {"target_miou": "max", "target_miou_13": "max", **{v.name: v.mode for v in VALIDATORS.values()}}  # and iou.<class>: max
SAMPLERS_WITH_STARTUP = ("tpe", "gp", "cmaes")

# TrainConfig settings a space may not search, and why.
NOT_SEARCHABLE = {
    "data": "the data is set once per sweep in the top-level data section",
    "iterations": "the training budget is fixed per sweep: set trainer.iterations; the scheduler decides how long each trial trains",
    "eval_interval": "every trial must report at the same iterations so that ASHA compares like with like: set trainer.eval_interval",
    "threads": "set by resources.cpu or trainer.threads",
    "source_warmup": "every trial starts from the same warm-up model: set trainer.source_warmup",
    "weights": "the weights follow the backbone: set trainer.weights, to one value or to a mapping backbone → weights",
}
TRAINER_KEYS = tuple(name for name in TrainConfig.model_fields if name != "data")
SEARCHABLE = tuple(name for name in TRAINER_KEYS if name not in NOT_SEARCHABLE)

_SCHEME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_MISSING_NUM_SAMPLES = "missing; allowed: an int >= 1 (the number of trials)"
_WEIGHTS = "a torchvision weights name (e.g. ResNet101_Weights.IMAGENET1K_V1), a state-dict file, or null (random init)"
_SPACE_SHAPE = "a mapping of TrainConfig setting → {type: float|int|categorical, ...}"
# What a required top-level key that is left out should hold; pydantic's "Field required" does not say.
_WHEN_MISSING = {
    "name": "a folder name (letters, digits, '.', '_', '-')",
    "space": _SPACE_SHAPE,
    "max_concurrent": "an int >= 1 (how many trials run at once)",
}
# pydantic's messages for a top-level field, where a sentence says more.
_MESSAGES = {
    "name": {"string_pattern_mismatch": "not a safe folder name; allowed: 1–100 letters, digits, '.', '_', '-', not starting with '.', '_' or '-'"},
    "mode": {"literal_error": f"unknown mode; allowed: {', '.join(MODE_NAMES)}"},
}
_PARAM = TypeAdapter(ParamSpec)
_PARAM_MODELS = dict(zip(PARAM_TYPES, typing.get_args(Param)))  # (to name a parameter's allowed keys in a message)


@functools.cache
def _adapter(key: str) -> TypeAdapter:
    """Top-level field ``key`` as SweepFields declares it: its type, bounds and allowed values."""
    field = SweepFields.model_fields[key]
    return TypeAdapter(Annotated[field.annotation, field])


def _field(problems: Problems, raw: dict[str, Any], key: str) -> Any:
    """``raw[key]`` as SweepFields declares it (left out: its default), or NOTHING after reporting every problem in it."""
    field = SweepFields.model_fields[key]
    if key not in raw:
        if field.is_required():
            problems.add((key,), f"missing; allowed: {_WHEN_MISSING[key]}", kind="missing")
            return NOTHING
        return field.get_default(call_default_factory=True)
    try:
        return _adapter(key).validate_python(raw[key])
    except ValidationError as error:
        problems.add_validation_error(error, (key,), nested_model(field.annotation), _MESSAGES.get(key))
        return NOTHING


def _section(problems: Problems, raw: dict[str, Any], key: str) -> Any:
    """A section (a model) as parsed, or None after reporting every problem in it."""
    section = _field(problems, raw, key)
    return None if section is NOTHING else section


# --- the checks, section by section -----------------------------------------------------------


def check(raw: dict[str, Any]) -> tuple[Problems, dict[str, Any]]:
    """Check a space.yaml mapping; return every problem and the resolved values."""
    problems = Problems()
    for key in raw:
        if key not in SweepFields.model_fields:  # (what extra="forbid" rejects, reported with the rest)
            problems.add((key,), f"unknown key; allowed: {', '.join(SweepFields.model_fields)}")

    _field(problems, raw, "name")
    storage, problem = normalise_storage(raw.get("storage", DEFAULT_STORAGE))
    if problem:
        problems.add(("storage",), problem, raw.get("storage"))

    data = _section(problems, raw, "data")
    fixed, base = _check_trainer(problems, raw.get("trainer"), data)
    by_backbone = fixed.get("weights") if isinstance(fixed.get("weights"), dict) else None
    # What every trial's TrainConfig is built on (a weights mapping left out: no check reads weights);
    # None when the fixed settings are themselves invalid.
    settings = {key: value for key, value in fixed.items() if by_backbone is None or key != "weights"}
    trial_base = {**settings, "data": data or DataConfig()} if base else None
    raw_space = raw.get("space")
    space = _check_space(problems, raw_space, fixed, trial_base)
    if by_backbone is not None:
        _check_weights_cover(problems, by_backbone, raw["trainer"], fixed, space, raw_space)
    space_rules.check_conditions(problems, space, raw_space if isinstance(raw_space, dict) else {}, trial_base)
    grid = isinstance(raw.get("searcher"), dict) and raw["searcher"].get("sampler") == "grid"
    if base:
        space_rules.check_entropy_pair(problems, space, base, grid)

    searcher = _section(problems, raw, "searcher")
    num_samples = _field(problems, raw, "num_samples")
    if searcher:
        searcher, num_samples = _check_searcher(problems, searcher, space, raw_space, num_samples, trial_base)
    elif num_samples is None and not grid:
        problems.add(("num_samples",), _MISSING_NUM_SAMPLES, kind="missing")

    scheduler = _section(problems, raw, "scheduler")
    if scheduler and base:
        scheduler = _check_scheduler(problems, scheduler, base)

    _field(problems, raw, "max_concurrent")
    _field(problems, raw, "max_failures")

    resources = _section(problems, raw, "resources")
    if resources:
        _check_resources(problems, resources, base)
    mode = _check_metric(problems, raw)
    checkpoints = _section(problems, raw, "checkpoints")
    tracking = _section(problems, raw, "tracking")
    if tracking and tracking.mlflow and tracking.mlflow.tracking_uri is None and "://" in storage:
        problems.add(("tracking", "mlflow", "tracking_uri"), "missing: a sweep on a URI has no local folder for MLflow's "
                     "default; allowed: a server (http://host:5000) or a database (sqlite:///path) every worker reaches",
                     kind="missing")

    resolved = {
        **raw,
        "storage": storage,
        "data": data,
        "trainer": fixed,
        "space": {name: param.model_dump() for name, param in space.items()},
        "searcher": searcher,
        "scheduler": scheduler,
        "num_samples": num_samples,
        "resources": resources,
        "mode": mode,
        "checkpoints": checkpoints,
        "tracking": tracking,
    }
    return problems, resolved


def normalise_storage(value: Any) -> tuple[str, str | None]:
    """A URI (scheme://...) is kept; a local path is made absolute with ~ expanded. Or what is wrong."""
    allowed = "allowed: a local folder or a URI such as s3://bucket/path, gs://bucket/path, file:///path"
    if not isinstance(value, str) or not value.strip():
        return "", f"expected a non-empty string; {allowed}"
    if "://" in value:
        scheme, rest = value.split("://", 1)
        if not _SCHEME_PATTERN.fullmatch(scheme) or not rest.strip("/"):
            return "", f"not a valid URI; {allowed}"
        return value, None
    return os.path.abspath(os.path.expanduser(value)), None


def _check_trainer(problems: Problems, raw: Any, data: DataConfig | None) -> tuple[dict[str, Any], TrainConfig | None]:
    """The fixed settings, normalised, and the TrainConfig they give (None if they give none)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.add(("trainer",), "expected a mapping of TrainConfig settings", raw)
        return {}, None
    fixed = {}
    for key, value in raw.items():
        if key == "data":
            problems.add(("trainer", "data"), "not allowed here: data settings go in the top-level data section")
        elif key not in TRAINER_KEYS:
            problems.add(("trainer", key), f"unknown key; allowed: {', '.join(TRAINER_KEYS)}")
        else:
            fixed[key] = value
    # A weights mapping is kept aside: TrainConfig holds one value, the trial's backbone's entry.
    aside = _split_weights(problems, fixed)
    data = data or DataConfig()
    try:
        config = TrainConfig.model_validate({**fixed, "data": data})
    except ValidationError as error:
        problems.add_validation_error(error, ("trainer",))
        # Keep checking the rest of the spec against the settings that were valid.
        bad = {e["loc"][0] for e in error.errors() if e["loc"]}
        fixed = {key: value for key, value in fixed.items() if key not in bad}
        config, messages = space_rules.config_errors({"data": data}, fixed)
        for message in messages:  # the checks across fields, which pydantic skips while a field fails
            problems.add(("trainer",), message)
    resolved = {**(fixed if config is None else {key: getattr(config, key) for key in fixed}), **aside}
    return {key: resolved[key] for key in raw if key in resolved}, config  # (in the order written)


def _split_weights(problems: Problems, fixed: dict[str, Any]) -> dict[str, Any]:
    """Take a weights mapping (backbone → weights name, file or null) out of ``fixed``, checked; {} if none.

    Any other weights value is left for TrainConfig, except one that is neither a string, null nor a mapping.
    """
    weights = fixed.get("weights")
    if weights is None or isinstance(weights, str):
        return {}
    del fixed["weights"]
    if not isinstance(weights, dict):
        problems.add(("trainer", "weights"), f"expected {_WEIGHTS}; or a mapping backbone → one of these", weights)
        return {}
    from advent_sweep.model import BACKBONES  # (the model layer, as TrainConfig's backbone check imports it)

    for key, entry in weights.items():
        if key not in BACKBONES:
            problems.add(("trainer", "weights"), f"unknown backbone {key!r}; allowed keys: {', '.join(sorted(BACKBONES))}")
        elif entry is not None and not isinstance(entry, str):
            problems.add(("trainer", "weights", key), f"expected {_WEIGHTS}", entry)
    return {"weights": weights}


def _check_weights_cover(
    problems: Problems, by_backbone: dict[str, Any], raw_trainer: dict[str, Any], fixed: dict[str, Any],
    space: dict[str, Any], raw_space: Any,
) -> None:
    """A weights mapping has an entry for every backbone a trial can have: the space's choices, else the fixed one."""
    backbone = space.get("backbone")
    if backbone is not None:
        possible = {value: "a choice of space.backbone" for value in backbone.choices}
        if backbone.when:  # (an inactive backbone is the default: it cannot be searched and fixed both)
            possible.setdefault(DEFAULT_BACKBONE, "the default backbone, when space.backbone is not sampled")
    elif (isinstance(raw_space, dict) and "backbone" in raw_space) or ("backbone" in raw_trainer and "backbone" not in fixed):
        return  # an invalid backbone is reported where it is written
    elif "backbone" in fixed:
        possible = {fixed["backbone"]: "trainer.backbone"}
    else:
        possible = {DEFAULT_BACKBONE: "the default backbone: trainer.backbone is not set"}
    entries = ", ".join(map(str, by_backbone)) or "none"
    for name, why in possible.items():
        if name not in by_backbone:
            problems.add(
                ("trainer", "weights"),
                f"no entry for backbone {name!r} ({why}); entries: {entries}; "
                f"allowed: an entry for every backbone a trial can have ({', '.join(possible)})",
            )


def _check_space(
    problems: Problems, raw: Any, fixed: dict[str, Any], base: dict[str, Any] | None
) -> dict[str, Param]:
    """The parameters that are sound on their own (name, type, range, TrainConfig values)."""
    if raw is None:
        problems.add(("space",), f"missing; allowed: {_SPACE_SHAPE}", kind="missing")
        return {}
    if not isinstance(raw, dict):
        problems.add(("space",), f"expected {_SPACE_SHAPE}", raw)
        return {}
    if not raw:
        problems.add(("space",), f"empty: a sweep needs at least one parameter to search; allowed: {_SPACE_SHAPE}")
        return {}
    space = {}
    for name, spec in raw.items():
        loc = ("space", name)
        named_ok = _check_param_name(problems, loc, name, fixed)
        param = _parse_param(problems, loc, spec)
        if param is None or not named_ok or not space_rules.check_param_shape(problems, loc, name, param):
            continue
        if base is not None:
            param = space_rules.check_param_values(problems, loc, name, param, base, raw)
        if param is not None:
            space[name] = param
    return space


def _check_param_name(problems: Problems, loc: tuple, name: Any, fixed: dict[str, Any]) -> bool:
    if name in NOT_SEARCHABLE:
        problems.add(loc, f"cannot be searched: {NOT_SEARCHABLE[name]}")
    elif name not in TRAINER_KEYS:
        problems.add(loc, f"not a TrainConfig setting; allowed: {', '.join(SEARCHABLE)}")
    elif name in fixed:
        problems.add(loc, f"also fixed in trainer.{name}; a setting is either fixed or searched: remove one")
    else:
        return True
    return False


def _parse_param(problems: Problems, loc: tuple, spec: Any) -> Param | None:
    """The parameter as ParamSpec's discriminated union parses it, or None after reporting why not, at the key written."""
    types = ", ".join(PARAM_TYPES)
    if not isinstance(spec, dict):
        problems.add(loc, f"expected a mapping with a type ({types})", spec)
        return None
    if "type" not in spec:
        problems.add(loc + ("type",), f"missing; allowed: {types}", kind="missing")
        return None
    try:
        return _PARAM.validate_python(spec)
    except ValidationError as error:
        (first, *_) = error.errors(include_url=False)
        if first["type"] == "param_type":  # (the union's own error, about the type)
            problems.add(loc + ("type",), first["msg"], spec["type"])
            return None
        # Errors inside a parameter carry the union's tag first (float.low): the YAML path has no such key.
        errors = [{**e, "loc": e["loc"][1:]} for e in error.errors(include_url=False)]
        problems.add_errors(errors, loc, _PARAM_MODELS[spec["type"]])
        return None


def _check_searcher(
    problems: Problems,
    searcher: SearcherSpec,
    space: dict[str, Any],
    raw_space: Any,
    num_samples: Any,
    base: dict[str, Any] | None,
) -> tuple[SearcherSpec, Any]:
    """The sampler fits the space; num_samples (the whole grid by default) and the first points."""
    sampler = searcher.sampler
    if searcher.n_startup_trials is not None and sampler not in SAMPLERS_WITH_STARTUP:
        problems.add(
            ("searcher", "n_startup_trials"),
            f"not used by sampler {sampler}; allowed with: {', '.join(SAMPLERS_WITH_STARTUP)}",
            searcher.n_startup_trials,
        )
    if sampler == "grid":
        complete = isinstance(raw_space, dict) and len(space) == len(raw_space)  # (every parameter is sound)
        num_samples = _check_grid(problems, searcher, space, complete, num_samples)
    elif num_samples is None:
        problems.add(("num_samples",), _MISSING_NUM_SAMPLES, kind="missing")
    names = list(raw_space) if isinstance(raw_space, dict) else []
    points = searcher.points_to_evaluate
    if names:  # (with no space at all, that is the one problem to report)
        points = [space_rules.check_point(problems, i, point, space, names, base) for i, point in enumerate(points)]
    if isinstance(num_samples, int) and len(points) > num_samples:
        problems.add(
            ("searcher", "points_to_evaluate"),
            f"{len(points)} points but only {num_samples} trials (num_samples); allowed: at most num_samples points",
        )
    return searcher.model_copy(update={"points_to_evaluate": points}), num_samples


def _check_grid(problems: Problems, searcher: SearcherSpec, space: dict[str, Any], complete: bool, num_samples: Any) -> Any:
    """Every parameter has finitely many values and no condition; num_samples at most the grid."""
    for name, param in space.items():
        if isinstance(param, FloatParam) and param.step is None:
            problems.add(("space", name), "sampler grid needs a finite set of values; allowed: categorical, int, or float with step")
            complete = False
        if param.when:
            problems.add(
                ("space", name, "when"),
                "not supported with sampler grid (the grid is a full product; a skipped parameter would repeat "
                "trials); allowed: remove when, or use sampler tpe/random",
            )
    if searcher.points_to_evaluate:
        problems.add(("searcher", "points_to_evaluate"), "not used with sampler grid (the grid already lists every point); allowed: []")
    size = math.prod(len(space_rules.grid_values(p)) for p in space.values() if not isinstance(p, FloatParam) or p.step)
    if num_samples is None and complete:
        return size
    if isinstance(num_samples, int) and complete and num_samples > size:
        problems.add(
            ("num_samples",),
            f"more than the {size} points of the grid (repeats would be random re-draws); allowed: <= {size} "
            "(leave it out to run the whole grid; add a categorical seed parameter for repeats)",
            num_samples,
        )
    return num_samples


def _check_scheduler(problems: Problems, scheduler: SchedulerSpec, base: TrainConfig) -> SchedulerSpec:
    """ASHA: eval_interval <= grace_period <= max_t <= trainer.iterations; FIFO takes no settings."""
    if scheduler.type == "fifo":
        for key in ("grace_period", "reduction_factor", "max_t"):
            if getattr(scheduler, key) is not None:
                problems.add(("scheduler", key), "not used by the fifo scheduler (every trial trains trainer.iterations); allowed: remove it", getattr(scheduler, key))
        return scheduler
    resolved = scheduler.model_copy(
        update={
            "max_t": scheduler.max_t or base.iterations,
            "grace_period": scheduler.grace_period or base.eval_interval,
            "reduction_factor": scheduler.reduction_factor or DEFAULT_REDUCTION_FACTOR,
        }
    )
    if resolved.max_t > base.iterations:
        problems.add(
            ("scheduler", "max_t"),
            f"beyond trainer.iterations ({base.iterations}): no trial trains past it; allowed: <= {base.iterations}",
            resolved.max_t,
        )
    if resolved.grace_period > resolved.max_t:
        problems.add(("scheduler", "grace_period"), f"beyond max_t ({resolved.max_t}); allowed: <= {resolved.max_t}", resolved.grace_period)
    if resolved.grace_period < base.eval_interval:
        problems.add(
            ("scheduler", "grace_period"),
            f"below trainer.eval_interval ({base.eval_interval}): a trial reports its metric only every "
            f"eval_interval iterations, so ASHA would have nothing to compare at the first rung; "
            f"allowed: >= {base.eval_interval}",
            resolved.grace_period,
        )
    return resolved


def _check_resources(problems: Problems, resources: Resources, base: TrainConfig | None) -> None:
    if resources.gpu > 1 and not float(resources.gpu).is_integer():
        problems.add(("resources", "gpu"), "a trial can share one GPU, not part of several; allowed: a fraction <= 1 or a whole number", resources.gpu)
    if resources.cpu == 0 and resources.gpu == 0:
        problems.add(("resources",), "a trial needs some resources; allowed: cpu > 0 or gpu > 0")
    if base is None:
        return
    if base.device.startswith("cuda") and resources.gpu == 0:
        problems.add(("resources", "gpu"), f"0, but trainer.device is {base.device}; allowed: gpu > 0, or device auto/cpu", resources.gpu)
    if base.device == "cpu" and resources.gpu > 0:
        problems.add(("resources", "gpu"), "a GPU reserved for trials that run on trainer.device cpu; allowed: 0, or device auto/cuda", resources.gpu)


def _check_metric(problems: Problems, raw: dict[str, Any]) -> str | None:
    """A metric a trial reports, and the mode that fits it (filled in when left out).

    Whether the data reports it (``iou.<class>`` names, ``target_miou_13`` for SYNTHIA only) is
    checked by ``launch.check_metric`` once the data is built.
    """
    allowed = ("target_miou (max), target_miou_13 (max, SYNTHIA only), iou.<class name> (max), or a label-free validator: "
               + ", ".join(f"{v.name} ({v.mode})" for v in VALIDATORS.values()))
    metric = raw.get("metric", SweepFields.model_fields["metric"].default)
    known = isinstance(metric, str) and (metric in METRIC_MODES or (metric.startswith("iou.") and len(metric) > 4))
    if not known:
        problems.add(("metric",), f"not a metric a trial reports; allowed: {allowed}", metric)
    mode = _field(problems, raw, "mode")
    if mode is NOTHING:
        return None
    if not known:
        return mode
    expected = METRIC_MODES.get(metric, "max")
    if mode is None:
        return expected
    if mode != expected:
        why = (f"{metric} is the label-free validator {VALIDATORS[metric].meaning}; "
               f"{'higher' if expected == 'max' else 'lower'} is better" if metric in VALIDATORS
               else f"{metric} is an IoU in percent: higher is better")
        problems.add(("mode",), f"{mode} does not fit metric {metric}: {why}; allowed: {expected}", mode)
    return mode
