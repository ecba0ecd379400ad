"""space.yaml → SweepSpec: everything a sweep needs, validated in full before anything starts.

A space.yaml names the sweep and where its results go, the data, the trainer settings
that stay fixed, the search space (each parameter a TrainConfig setting), the Optuna
sampler, the scheduler (ASHA on the trainer's reported ``iteration``), the number of
trials, the concurrency, the resources per trial and the metric::

    name: quickstart
    trainer: {backbone: resnet18, iterations: 300, eval_interval: 50}
    space:
      method: {type: categorical, choices: [minent, advent, advent_minent]}
      lambda_adv_main: {type: float, low: 1.0e-4, high: 1.0e-1, log: true,
                        when: {method: [advent, advent_minent]}}
    num_samples: 8
    max_concurrent: 2

``SweepSpec.from_yaml(path)`` reports every problem at once, one line each
(``field.path: what is wrong; allowed: ...``), as one ConfigError; validation never
touches the data folders, Ray or Optuna. The checks live in ``_spec_checks`` (section by
section) and ``_space`` (the search space's rules, which SweepSpec also walks by).

The entropy range rule: when ``entropy_low`` is sampled in a trial, ``entropy_high`` is
drawn from ``[max(its low, entropy_low), its high]`` (the raised bound rounded up onto its
``step`` grid), so ``entropy_low <= entropy_high`` always holds without discarding
trials. A spec is accepted only if that interval can never be empty. A categorical
``entropy_high``, or any parameter under the grid sampler, has fixed values that cannot
move, so there every possible ``entropy_low`` must be <= every ``entropy_high`` value.

Backbones as an axis: ``trainer.weights`` may be a mapping backbone → weights (a torchvision
name, a state-dict file or null), so that each backbone starts from its own ImageNet file::

    trainer: {weights: {resnet101: /data/pretrained/DeepLab_resnet_pretrained_imagenet.pth,
                        vgg16: VGG16_Weights.IMAGENET1K_V1}}
    space: {backbone: {type: categorical, choices: [resnet101, vgg16]}}

Each trial's TrainConfig holds its backbone's entry, one value, so that an exported config
reruns as it is. Every backbone a trial can have needs an entry.
"""

from __future__ import annotations

import math
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError, model_validator

from advent_sweep.advent.config import TrainConfig
from advent_sweep.data.config import DataConfig
from advent_sweep.errors import ConfigError
from advent_sweep.selection import VALIDATORS
from advent_sweep.sweep import _space
from advent_sweep.validation import load_yaml, validate

DEFAULT_STORAGE = "~/advent-sweep-results"
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


ParamSpec = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")]
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


class SweepSpec(BaseModel):
    """A validated space.yaml. Build it with :meth:`from_yaml` (or ``model_validate``).

    Every value is resolved at validation: ``storage`` is absolute (or a URI),
    ``num_samples`` and ``mode`` are set, ASHA's ``max_t``/``grace_period``/
    ``reduction_factor`` are filled in, and choices and conditions hold the values
    TrainConfig will see. ``model_dump()`` validates back to an equal spec.

    >>> spec = SweepSpec.from_yaml("search_spaces/quickstart.yaml")  # doctest: +SKIP
    >>> spec.train_config({"method": "minent", "lambda_ent_main": 1e-3}).method  # doctest: +SKIP
    'minent'
    """

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

    @model_validator(mode="wrap")
    @classmethod
    def _validate_in_full(cls, values: Any, handler: Any) -> "SweepSpec":
        if not isinstance(values, dict):
            return handler(values)
        from advent_sweep.sweep._spec_checks import check  # (imported here: it uses the models above)

        problems, resolved = check(values)
        if problems.details:
            raise ValidationError.from_exception_data(cls.__name__, problems.details)
        return handler(resolved)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "SweepSpec":
        """Load a space.yaml; ConfigError names the file and lists every problem in it."""
        return load_yaml(cls, path)

    # --- what a trial trains with ---------------------------------------------------------

    @property
    def base_config(self) -> TrainConfig:
        """The fixed trainer settings and the data, every other setting at its default."""
        return TrainConfig.model_validate({**self._fixed_settings({}), "data": self.data})

    @property
    def trial_threads(self) -> int:
        """Each trial's torch threads: trainer.threads, else the trial's whole CPUs (at least 1).

        The trial computes with as many threads as it holds CPUs, and its config (in trials.parquet,
        and in the file ``advent-sweep best`` exports) records that count, so a rerun adds up floats
        in the same order.
        """
        return self.trainer.get("threads") or max(1, math.floor(self.resources.cpu))

    def train_config(self, params: dict[str, Any]) -> TrainConfig:
        """The TrainConfig of one trial: fixed trainer settings + data + the sampled ``params`` + its threads."""
        unknown = sorted(set(params) - set(self.space))
        if unknown:
            raise ConfigError(
                f"sweep {self.name}: trial parameters {', '.join(unknown)} are not in the space; "
                f"allowed: {', '.join(self.space)}"
            )
        values = {**self._fixed_settings(params), **params, "threads": self.trial_threads, "data": self.data}
        return validate(TrainConfig, values, f"sweep {self.name}: trial {params}")

    def _fixed_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        """The fixed settings for a trial with ``params``: a weights mapping becomes its backbone's entry.

        Validation gave every backbone a trial can have an entry; only params that leave out a searched
        backbone (``{}``: the sweep's base, not a trial) can find none, and get no weights.
        """
        weights = self.trainer.get("weights")
        if not isinstance(weights, dict):
            return self.trainer
        backbone = params.get("backbone", self.trainer.get("backbone", DEFAULT_BACKBONE))
        if "backbone" in params and backbone not in weights:
            raise ConfigError(
                f"sweep {self.name}: trainer.weights has no entry for the trial's backbone {backbone!r}; "
                f"allowed: {', '.join(weights)}"
            )
        return {**self.trainer, "weights": weights.get(backbone)}

    def with_storage(self, storage: str) -> "SweepSpec":
        """The same spec writing to another storage (the CLI's ``--storage``)."""
        from advent_sweep.sweep._spec_checks import normalise_storage

        normalised, problem = normalise_storage(storage)
        if problem:
            raise ConfigError(f"storage: {problem} (got {storage!r})")
        return self.model_copy(update={"storage": normalised})

    @property
    def folder(self) -> str:
        """Where this sweep's results live: ``<storage>/<name>``."""
        return f"{self.storage.rstrip('/')}/{self.name}"

    @property
    def cache_dir(self) -> str:
        """p_s and source warm-ups are cached beside the sweeps, in the storage they share (a folder or a URI)."""
        return f"{self.storage.rstrip('/')}/.cache"

    # --- the search space, as the searcher walks it ---------------------------------------------

    @property
    def is_conditional(self) -> bool:
        return any(param.when for param in self.space.values())

    def param_order(self) -> tuple[str, ...]:
        """Space parameters in an order where each condition (and entropy_low) comes first."""
        return _space.order(self.space)[0]

    def is_active(self, name: str, sampled: dict[str, Any]) -> bool:
        """Whether ``name`` is sampled, given the values sampled before it (in :meth:`param_order`)."""
        return _space.is_active(self.space[name], sampled)

    def bounds(self, name: str, sampled: dict[str, Any]) -> tuple[float, float]:
        """The [low, high] to sample a float/int parameter from, given the values sampled so far.

        Only entropy_high moves: its low bound is raised to a sampled entropy_low (rounded up
        onto its step grid) so that entropy_low <= entropy_high holds (the module's rule).
        """
        param = self.space[name]
        low, high = param.low, param.high
        if name == "entropy_high" and self.searcher.sampler != "grid" and "entropy_low" in sampled:
            low = max(low, _space.round_up(sampled["entropy_low"], param))
        return low, high

    @property
    def entropy_high_moves(self) -> bool:
        """Whether entropy_high's low bound can be raised by a sampled entropy_low (see :meth:`bounds`)."""
        low, high = self.space.get("entropy_low"), self.space.get("entropy_high")
        if low is None or high is None or isinstance(high, CategoricalParam) or self.searcher.sampler == "grid":
            return False
        return _space.extreme(low, max) > high.low

    def random_params(self) -> set[str]:
        """Parameters GP / CMA-ES cannot model and draw at random: conditional ones, an entropy_high
        whose range moves with entropy_low, and (CMA-ES) categoricals."""
        names = {name for name, param in self.space.items() if param.when}
        if self.entropy_high_moves:
            names.add("entropy_high")
        if self.searcher.sampler == "cmaes":
            names |= {name for name, param in self.space.items() if isinstance(param, CategoricalParam)}
        return names

    def grid(self) -> dict[str, list[Any]]:
        """Every value of every parameter (categorical choices, stepped ranges) for the grid sampler."""
        return {name: _space.grid_values(param) for name, param in self.space.items()}

    # --- for `advent-sweep validate` and `launch --dry-run` -------------------------------------

    def describe(self) -> str:
        """The resolved spec in a few readable lines."""
        lines = [f"sweep {self.name!r} → {self.folder}", f"data: {_describe_data(self.data)}"]
        if self.trainer:
            lines.append("fixed trainer settings (every other setting at its TrainConfig default):")
            width = max(map(len, self.trainer))
            lines += [f"  {key:<{width}}  {_describe_setting(value)}" for key, value in self.trainer.items()]
        else:
            lines.append("fixed trainer settings: none (TrainConfig defaults)")
        base = self.base_config
        lines.append(
            f"  (trains {base.iterations} iterations of a {base.poly_horizon}-iteration poly schedule, "
            f"reports every {base.eval_interval})"
        )
        lines.append(f"search space ({len(self.space)} parameters, sampled in this order):")
        width = max(map(len, self.space))
        for name in self.param_order():
            moves = name == "entropy_high" and self.entropy_high_moves
            lines.append(f"  {name:<{width}}  {_describe_param(self.space[name], moves)}")
        lines.append(f"searcher: {self._describe_searcher()}")
        for i, point in enumerate(self.searcher.points_to_evaluate, 1):
            lines.append(f"  first point {i}: " + ", ".join(f"{k}={_space.fmt(v)}" for k, v in point.items()))
        lines.append(f"scheduler: {self._describe_scheduler()}")
        gpu = f"{_space.fmt(self.resources.gpu)} GPU"
        lines.append(
            f"trials: {self.num_samples}, at most {self.max_concurrent} at a time, each holding "
            f"{_space.fmt(self.resources.cpu)} CPU and {gpu} (torch threads: {self.trial_threads}); retries after a failure: "
            f"{'unlimited' if self.max_failures == -1 else self.max_failures}"
        )
        why = "higher is better" if self.mode == "max" else "lower is better"
        lines.append(f"metric: {self.metric} ({self.mode}: {why})")
        return "\n".join(lines)

    def _describe_searcher(self) -> str:
        sampler = self.searcher.sampler
        if sampler == "grid":
            details = f"grid of {math.prod(len(v) for v in self.grid().values())} points"
        else:
            grouped = ", grouped by condition" if self.is_conditional else ""
            details = {"tpe": f"TPE (multivariate{grouped})", "random": "random", "gp": "Gaussian process", "cmaes": "CMA-ES"}[sampler]
        text = f"Optuna {details}, seed {self.searcher.seed}"
        if self.searcher.n_startup_trials is not None:
            text += f", {self.searcher.n_startup_trials} random startup trials"
        if self.searcher.points_to_evaluate:
            text += f", {len(self.searcher.points_to_evaluate)} given points first"
        at_random = [name for name in self.space if name in self.random_params()] if sampler in ("gp", "cmaes") else []
        if at_random:
            text += f"; {details} models a fixed space only, so these are drawn at random: {', '.join(at_random)}"
        return text

    def _describe_scheduler(self) -> str:
        s = self.scheduler
        if s.type == "fifo":
            return f"FIFO (no early stopping; every trial trains {self.base_config.iterations} iterations)"
        rungs = ", ".join(str(r) for r in s.rungs()) or "none"
        return (
            f"ASHA on iteration: grace period {s.grace_period}, reduction factor {_space.fmt(s.reduction_factor)}, "
            f"max_t {s.max_t}; rungs at iterations {rungs}"
        )


# --- describe() helpers --------------------------------------------------------------------------


def _describe_setting(value: Any) -> str:
    if isinstance(value, dict):  # trainer.weights by backbone
        return "by backbone: " + ", ".join(f"{key} → {_space.fmt(entry)}" for key, entry in value.items())
    return _space.fmt(value)


def _describe_param(param: FloatParam | IntParam | CategoricalParam, moves: bool) -> str:
    text = f"categorical [{_space.fmt_list(param.choices)}]" if isinstance(param, CategoricalParam) else _space.describe_range(param)
    if moves:
        text += " (low bound raised to the sampled entropy_low)"
    for condition, values in (param.when or {}).items():
        text += f"  when {condition} in [{_space.fmt_list(values)}]"
    return text


def _describe_data(data: DataConfig) -> str:
    if data.source == "synthetic":
        s = data.synthetic
        return f"synthetic → synthetic ({s.size[0]}×{s.size[1]}, {s.num_train} train / {s.num_val} val images, seed {s.seed})"
    return (
        f"{data.source} ({data.source_root}, {data.source_size[0]}×{data.source_size[1]}) → "
        f"{data.target} ({data.target_root}, {data.target_size[0]}×{data.target_size[1]}), "
        f"{data.resolved_protocol} classes"
    )
