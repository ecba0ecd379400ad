"""The models of a space.yaml: each section and each search-space parameter, as pydantic parses it.

These are shapes and defaults only. What makes a spec sound as a whole is checked by
``spec_checks`` (with the search space's rules of ``space_rules``), which ``spec.SweepSpec``
runs before it is built; this module imports none of them, so that all of them can build on it.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, field_validator

from advent_sweep.advent.config import TrainConfig
from advent_sweep.advent.trackers import check_installed, check_tracking_uri
from advent_sweep.data.config import DataConfig

DEFAULT_STORAGE = "~/advent-sweep-results"
DEFAULT_BACKBONE: str = TrainConfig.model_fields["backbone"].default

SamplerName = Literal["tpe", "random", "gp", "cmaes", "grid"]
SchedulerName = Literal["asha", "fifo"]
SAMPLER_NAMES: tuple[str, ...] = typing.get_args(SamplerName)
SCHEDULER_NAMES: tuple[str, ...] = typing.get_args(SchedulerName)
Choice = Union[StrictBool, StrictInt, StrictFloat, str, None]
Condition = dict[str, Annotated[list[Choice], Field(min_length=1)]]


class FloatParam(BaseModel):
    """A float drawn from [low, high], uniformly or on a log scale, optionally on a step grid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)
    when: Condition | None = None


class IntParam(BaseModel):
    """An int drawn from [low, high] (both included), optionally on a log scale or a step grid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)
    when: Condition | None = None


class CategoricalParam(BaseModel):
    """One of a list of values (strings, numbers, booleans or null)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=1)
    when: Condition | None = None


Param = Union[FloatParam, IntParam, CategoricalParam]
ParamSpec = Annotated[Param, Field(discriminator="type")]
PARAM_TYPES: dict[str, type[BaseModel]] = {"float": FloatParam, "int": IntParam, "categorical": CategoricalParam}


class SearcherSpec(BaseModel):
    """The Optuna sampler (chosen by name), its seed and the configurations to try first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sampler: SamplerName = "tpe"
    seed: int = 0
    points_to_evaluate: list[dict[str, Choice]] = []
    n_startup_trials: int | None = Field(None, ge=0)


class SchedulerSpec(BaseModel):
    """ASHA on the trainer's ``iteration`` (or FIFO: every trial trains to trainer.iterations).

    For ASHA, left-out values are filled in: max_t = trainer.iterations,
    grace_period = trainer.eval_interval, reduction_factor = 3.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: SchedulerName = "asha"
    grace_period: int | None = Field(None, ge=1)
    reduction_factor: float | None = Field(None, gt=1)
    max_t: int | None = Field(None, ge=1)

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

    cpu: float = Field(1.0, ge=0)
    gpu: float = Field(0.0, ge=0)


class CheckpointsSpec(BaseModel):
    """Which trial checkpoints outlive a sweep: each trial's last, a stopped trial's only on request.

    A trial the scheduler stopped early is never resumed, and its checkpoint (~90 MB for the quickstart's
    ResNet-18, far more for ResNet-101) is dropped when it ends unless ``keep_stopped``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_stopped: StrictBool = False


class MlflowTracking(BaseModel):
    """Each trial as an MLflow run (named after the trial, its config as parameters, metrics at trainer iterations)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracking_uri: str | None = Field(None, description=(
        "where MLflow keeps the runs: a server (http://host:5000) or a database (sqlite:////abs/path/mlflow.db); "
        "default: the SQLite database mlflow.db in the sweep folder (MLflow 3 refuses a plain folder); a sweep on "
        "s3:// or gs:// must name one every worker reaches"))
    experiment: str | None = Field(None, description="the MLflow experiment the trials' runs go in; default: the sweep's name")

    @field_validator("tracking_uri")
    @classmethod
    def _known_uri(cls, uri: str | None) -> str | None:
        return None if uri is None else check_tracking_uri(uri)


class WandbTracking(BaseModel):
    """Each trial as a Weights & Biases run (named after the trial, in a group named after the sweep)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field("advent-sweep", description="the W&B project; default advent-sweep")
    entity: str | None = Field(None, description="the W&B user or team; default: the logged-in user's default entity")
    mode: Literal["online", "offline"] = Field("online", description=(
        "online: sent to W&B as the trial runs (needs `wandb login`); offline: kept in run folders on the worker, "
        "no network, for `wandb sync` later; default online"))
    dir: str | None = Field(None, description=(
        "the local folder W&B writes its run folders (wandb/) into; default: each trial's folder when the sweep's "
        "storage is local, else the worker's working folder"))


class TrackingSpec(BaseModel):
    """Experiment trackers the trials also log to (besides TensorBoard); each needs its extra installed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mlflow: MlflowTracking | None = Field(None, description="log to MLflow (pip install 'advent-sweep[mlflow]'); default: off")
    wandb: WandbTracking | None = Field(None, description="log to Weights & Biases (pip install 'advent-sweep[wandb]'); default: off")

    @field_validator("mlflow", "wandb")
    @classmethod
    def _installed(cls, tracker: BaseModel | None, info: Any) -> BaseModel | None:
        if tracker is not None:
            check_installed(info.field_name)
        return tracker


class SweepFields(BaseModel):
    """The top-level keys of a space.yaml, each section as parsed; ``spec.SweepSpec`` is these, checked in full."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    storage: str = DEFAULT_STORAGE
    data: DataConfig = DataConfig()
    trainer: dict[str, Any] = {}
    space: dict[str, ParamSpec]
    searcher: SearcherSpec = SearcherSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    num_samples: int | None = Field(None, ge=1)
    max_concurrent: int = Field(ge=1)
    resources: Resources = Resources()
    metric: str = "target_miou"
    mode: Literal["max", "min"] | None = None
    max_failures: int = Field(2, ge=-1)
    checkpoints: CheckpointsSpec = CheckpointsSpec()
    tracking: TrackingSpec = Field(TrackingSpec(), description="experiment trackers (MLflow, W&B) the trials log to; default: none")
