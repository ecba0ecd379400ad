"""The models of a space.yaml: each section and each search-space parameter, as pydantic parses it.

These are shapes, bounds, allowed values and defaults, each field described (the JSON Schema and
docs/space-yaml.md are generated from them: ``sweep/config_schema``). What makes a spec sound as a whole is checked by
``spec_checks`` (with the search space's rules of ``space_rules``), which ``spec.SweepSpec``
runs before it is built; this module imports none of them, so that all of them can build on it.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, StrictBool, StrictFloat, StrictInt, Tag, create_model,
    field_validator,
)

from advent_sweep.advent.config import TrainConfig
from advent_sweep.advent.snapshots import DEFAULT_RULES, check_rules
from advent_sweep.advent.trackers import check_installed, check_tracking_uri
from advent_sweep.data.config import DataConfig

DEFAULT_STORAGE = "~/advent-sweep-results"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"  # a folder name: no path, no hidden folder
DEFAULT_BACKBONE: str = TrainConfig.model_fields["backbone"].default

SamplerName = Literal["tpe", "random", "gp", "cmaes", "grid"]
SchedulerName = Literal["asha", "fifo"]
ModeName = Literal["max", "min"]
SAMPLER_NAMES: tuple[str, ...] = typing.get_args(SamplerName)
SCHEDULER_NAMES: tuple[str, ...] = typing.get_args(SchedulerName)
MODE_NAMES: tuple[str, ...] = typing.get_args(ModeName)
Choice = Union[StrictBool, StrictInt, StrictFloat, str, None]
Condition = dict[str, Annotated[list[Choice], Field(min_length=1)]]
WHEN = ("Condition: a mapping categorical parameter of this space → its values for which this parameter is sampled "
        "(every condition must hold); when it is not sampled, the setting keeps its fixed or default value. Default: null "
        "(always sampled).")


class FloatParam(BaseModel):
    """A float drawn from [low, high], uniformly or on a log scale, optionally on a step grid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["float"] = Field(description="The parameter type: float (a real number from [low, high]). Required.")
    low: float = Field(description="Smallest value (included), in the setting's unit. Required; > 0 with log: true.")
    high: float = Field(description="Largest value (included), in the setting's unit. Required; >= low.")
    log: bool = Field(False, description="Sample on a log scale (uniform in log(value)), as for λ and learning rates. Default: false.")
    step: float | None = Field(None, gt=0, description="Sample only low + k·step (high − low must be a multiple); not with log. Default: null (continuous).")
    when: Condition | None = Field(None, description=WHEN)


class IntParam(BaseModel):
    """An int drawn from [low, high] (both included), optionally on a log scale or a step grid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["int"] = Field(description="The parameter type: int (a whole number from [low, high]). Required.")
    low: int = Field(description="Smallest value (included), in the setting's unit. Required; > 0 with log: true.")
    high: int = Field(description="Largest value (included), in the setting's unit. Required; >= low.")
    log: bool = Field(False, description="Sample on a log scale (uniform in log(value)). Default: false.")
    step: int = Field(1, ge=1, description="Sample only low + k·step (high − low must be a multiple); not with log. Default: 1.")
    when: Condition | None = Field(None, description=WHEN)


class CategoricalParam(BaseModel):
    """One of a list of values (strings, numbers, booleans or null)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["categorical"] = Field(description="The parameter type: categorical (one of a list of values). Required.")
    choices: list[Choice] = Field(
        min_length=1, description="The values to choose from, each a valid value of the setting, no duplicates. Required; at least one."
    )
    when: Condition | None = Field(None, description=WHEN)


Param = Union[FloatParam, IntParam, CategoricalParam]
PARAM_TYPES: tuple[str, ...] = tuple(typing.get_args(m.model_fields["type"].annotation)[0] for m in typing.get_args(Param))


def _param_type(value: Any) -> Any:
    """The ``type`` of a parameter (a mapping as written, or a parsed model); None when there is none."""
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


ParamSpec = Annotated[
    Union[tuple(Annotated[model, Tag(name)] for model, name in zip(typing.get_args(Param), PARAM_TYPES))],
    Discriminator(
        _param_type,
        custom_error_type="param_type",
        custom_error_message=f"unknown parameter type; allowed: {', '.join(PARAM_TYPES)}",
    ),
]


class SearcherSpec(BaseModel):
    """The Optuna sampler (chosen by name), its seed and the configurations to try first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sampler: SamplerName = Field(
        "tpe", description="Optuna sampler: tpe (multivariate TPE), random, gp (Gaussian process), cmaes (CMA-ES) or grid "
        "(every combination of categorical / stepped values). Default: tpe."
    )
    seed: int = Field(0, description="Seed of the sampler: the same seed proposes the same configurations. Default: 0.")
    points_to_evaluate: list[dict[str, Choice]] = Field(
        [], description="Configurations to try first, each a mapping parameter → value (a subset of the space; the rest "
        "are sampled); at most num_samples of them. Default: [] (none)."
    )
    n_startup_trials: int | None = Field(
        None, ge=0, description="Random trials before the model-based samplers (tpe, gp, cmaes) start modelling, in trials. "
        "Default: null (Optuna's own: 10 for tpe and gp, 1 for cmaes)."
    )


class SchedulerSpec(BaseModel):
    """ASHA on the trainer's ``iteration`` (or FIFO: every trial trains to trainer.iterations).

    For ASHA, left-out values are filled in: max_t = trainer.iterations,
    grace_period = trainer.eval_interval, reduction_factor = 3.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: SchedulerName = Field(
        "asha", description="asha (stop weak trials early at rungs) or fifo (every trial trains trainer.iterations). Default: asha."
    )
    grace_period: int | None = Field(
        None, ge=1, description="ASHA's first rung: no trial is stopped before it, in trainer iterations; >= trainer.eval_interval. "
        "Default: null (trainer.eval_interval)."
    )
    reduction_factor: float | None = Field(
        None, gt=1, description="ASHA's η: about 1/η of the trials at a rung go on to the next, rungs η times apart. Default: null (3)."
    )
    max_t: int | None = Field(
        None, ge=1, description="The most iterations a trial trains, in trainer iterations; <= trainer.iterations. "
        "Default: null (trainer.iterations)."
    )

    def rungs(self) -> list[int]:
        """The iterations at which ASHA compares trials (grace_period · reduction_factor^k < max_t)."""
        if self.type != "asha":
            return []
        milestones, k = [], 0
        while self.grace_period * self.reduction_factor**k < self.max_t:
            milestones.append(self.grace_period * self.reduction_factor**k)
            k += 1
        return [int(m) if float(m).is_integer() else m for m in milestones]


class Resources(BaseModel):
    """What one trial holds: CPUs and GPUs (fractions share a GPU between trials)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: float = Field(
        1.0, ge=0, description="CPUs one trial holds, in CPUs (its torch threads: the whole CPUs, unless trainer.threads). Default: 1."
    )
    gpu: float = Field(
        0.0, ge=0, description="GPUs one trial holds, in GPUs: a fraction <= 1 shares a GPU between trials, or a whole number. "
        "Default: 0."
    )


class CheckpointsSpec(BaseModel):
    """Which trial checkpoints outlive a sweep: each trial's last, a stopped trial's only on request.

    A trial the scheduler stopped early is never resumed, and its checkpoint (~90 MB for the quickstart's
    ResNet-18, far more for ResNet-101) is dropped when it ends unless ``keep_stopped``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_stopped: StrictBool = Field(
        False, description="Keep the checkpoint of a trial the scheduler stopped early (a trial that trains to the end keeps "
        "its last either way). Default: false."
    )
    keep_rules: tuple[str, ...] = Field(
        DEFAULT_RULES,
        description="Selection rules (best: by the sweep's metric; last; or a label-free validator) whose preferred "
        "report each trial keeps as a model-only snapshot in its folder's snapshots/, stopped trials too (keep_stopped "
        "governs only the resumable checkpoint). Default: [best].",
    )

    @field_validator("keep_rules")
    @classmethod
    def _known_rules(cls, rules: tuple[str, ...]) -> tuple[str, ...]:
        return check_rules(rules)


def _trainer_settings() -> type[BaseModel]:
    """TrainConfig's settings as space.yaml's ``trainer`` section writes them, for its JSON Schema.

    Every setting but ``data`` (the top-level data section), and ``weights`` may also be a mapping
    backbone → weights, one entry per backbone a trial can have. ``spec_checks`` checks the section.
    """
    fields: dict[str, Any] = {name: (field.annotation, field) for name, field in TrainConfig.model_fields.items() if name != "data"}
    weights = TrainConfig.model_fields["weights"]
    by_backbone = Field(
        weights.default,
        description=f"{weights.description} Or a mapping backbone → one of these, with an entry for every backbone a trial can have.",
    )
    fields["weights"] = (Union[weights.annotation, dict[str, Union[str, None]]], by_backbone)
    doc = "TrainConfig's settings fixed for every trial: every one but data; weights may also be a mapping backbone → weights."
    return create_model("TrainerSettings", __config__=ConfigDict(extra="forbid"), __doc__=doc, **fields)


TrainerSettings = _trainer_settings()


def _empty_is_default(value: Any) -> Any:
    """A section written with no value (``searcher:`` alone in YAML) is the section with every default."""
    return {} if value is None else value


class MlflowTracking(BaseModel):
    """Each trial as an MLflow run (named after the trial, its config as parameters, metrics at trainer iterations)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracking_uri: str | None = Field(None, description=(
        "Where MLflow keeps the runs: a server (http://host:5000) or a database (sqlite:////abs/path/mlflow.db); MLflow 3 "
        "refuses a plain folder. Default: null (the SQLite database mlflow.db in the sweep folder; a sweep on s3:// or "
        "gs:// must name one every worker reaches)."))
    experiment: str | None = Field(None, description="The MLflow experiment the trials' runs go in. Default: null (the sweep's name).")

    @field_validator("tracking_uri")
    @classmethod
    def _known_uri(cls, uri: str | None) -> str | None:
        return None if uri is None else check_tracking_uri(uri)


class WandbTracking(BaseModel):
    """Each trial as a Weights & Biases run (named after the trial, in a group named after the sweep)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field("advent-sweep", description="The W&B project. Default: advent-sweep.")
    entity: str | None = Field(None, description="The W&B user or team. Default: null (the logged-in user's default entity).")
    mode: Literal["online", "offline"] = Field("online", description=(
        "online: sent to W&B as the trial runs (needs `wandb login`); offline: kept in run folders, no network, for "
        "`wandb sync` later. Default: online."))
    dir: str | None = Field(None, description=(
        "The folder W&B writes its run folders (wandb/) into. Default: null (each trial's folder when the sweep's "
        "storage is local, else the worker's working folder)."))


class TrackingSpec(BaseModel):
    """Experiment trackers the trials also log to (besides TensorBoard); each needs its extra installed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mlflow: MlflowTracking | None = Field(None, description="Log to MLflow (pip install 'advent-sweep[mlflow]'). Default: null (off).")
    wandb: WandbTracking | None = Field(None, description="Log to Weights & Biases (pip install 'advent-sweep[wandb]'). Default: null (off).")

    @field_validator("mlflow", "wandb")
    @classmethod
    def _installed(cls, tracker: BaseModel | None, info: Any) -> BaseModel | None:
        if tracker is not None:
            check_installed(info.field_name)
        return tracker


class SweepFields(BaseModel):
    """The top-level keys of a space.yaml, each section as parsed; ``spec.SweepSpec`` is these, checked in full."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=NAME_PATTERN, description="The sweep's name: its results go to <storage>/<name>. Required; 1–100 letters, "
        "digits, '.', '_', '-', not starting with '.', '_' or '-'."
    )
    storage: str = Field(
        DEFAULT_STORAGE, min_length=1, description="Where sweeps live: a local folder (~ expanded, made absolute) or a URI "
        "(s3://bucket/path, gs://bucket/path, file:///path) that every node can reach. Default: ~/advent-sweep-results."
    )
    data: Annotated[DataConfig, BeforeValidator(_empty_is_default, json_schema_input_type=Union[DataConfig, None])] = Field(
        DataConfig(), description="The domain pair every trial trains on (source → target). Default: the synthetic benchmark."
    )
    trainer: Annotated[dict[str, Any], BeforeValidator(_empty_is_default, json_schema_input_type=Union[TrainerSettings, None])] = Field(
        {}, description="TrainConfig settings fixed for every trial (not data: that is the data section); every setting not "
        "written here or searched keeps its TrainConfig default. Default: {} (every default)."
    )
    space: dict[str, ParamSpec] = Field(
        min_length=1,
        description="The search space: a mapping TrainConfig setting → how it is sampled (float, int or categorical). "
        "Required; at least one parameter; a setting is either fixed in trainer or searched here."
    )
    searcher: Annotated[SearcherSpec, BeforeValidator(_empty_is_default, json_schema_input_type=Union[SearcherSpec, None])] = Field(
        SearcherSpec(), description="The Optuna sampler that proposes each trial's parameters. Default: TPE, seed 0."
    )
    scheduler: Annotated[SchedulerSpec, BeforeValidator(_empty_is_default, json_schema_input_type=Union[SchedulerSpec, None])] = Field(
        SchedulerSpec(), description="Which trials stop early. Default: ASHA on the trainer iteration, its settings from the trainer's."
    )
    num_samples: int | None = Field(
        None, ge=1, description="How many trials the sweep runs, in trials. Required, except with sampler grid (default: the "
        "whole grid)."
    )
    max_concurrent: int = Field(
        ge=1, description="How many trials run at once, in trials (also bounded by the cluster's CPUs and GPUs over "
        "resources). Required."
    )
    resources: Annotated[Resources, BeforeValidator(_empty_is_default, json_schema_input_type=Union[Resources, None])] = Field(
        Resources(), description="What one trial holds. Default: 1 CPU, no GPU."
    )
    metric: str = Field(
        "target_miou", description="The reported metric the sweep optimises: target_miou (target-val mIoU, in percent), "
        "target_miou_13 (SYNTHIA's 13-class mIoU*), iou.<class name>, or a label-free validator (target_entropy, target_im, "
        "target_bnm, target_snd, source_val_miou). Default: target_miou."
    )
    mode: ModeName | None = Field(
        None, description="Whether a larger (max) or smaller (min) metric is better; it must fit the metric. Default: null "
        "(the metric's own: min for target_entropy, else max)."
    )
    max_failures: int = Field(
        2, ge=-1, description="How often a failed trial is retried from its last checkpoint; -1: without limit. Default: 2."
    )
    checkpoints: Annotated[CheckpointsSpec, BeforeValidator(_empty_is_default, json_schema_input_type=Union[CheckpointsSpec, None])] = Field(
        CheckpointsSpec(), description="Which trial checkpoints outlive the sweep. Default: each trial's last, not a stopped trial's."
    )
    tracking: Annotated[TrackingSpec, BeforeValidator(_empty_is_default, json_schema_input_type=Union[TrackingSpec, None])] = Field(
        TrackingSpec(), description="Experiment trackers (MLflow, W&B) each trial also logs to, besides TensorBoard. Default: none."
    )
