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
touches the data folders, Ray or Optuna. The sections are modelled in ``spec_models``, checked
in ``spec_checks`` (section by section) with the search space's rules of ``space_rules``
(which SweepSpec also walks by, and which state the entropy range rule).

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
from pathlib import Path
from typing import Any

from pydantic import ValidationError, model_validator

from advent_sweep.advent.config import TrainConfig
from advent_sweep.data.config import DataConfig
from advent_sweep.errors import ConfigError
from advent_sweep.sweep import space_rules
from advent_sweep.sweep.spec_checks import check, normalise_storage
from advent_sweep.sweep.spec_models import DEFAULT_BACKBONE, CategoricalParam, Param, SweepFields
from advent_sweep.validation import load_yaml, validate


class SweepSpec(SweepFields):
    """A validated space.yaml. Build it with :meth:`from_yaml` (or ``model_validate``).

    Every value is resolved at validation: ``storage`` is absolute (or a URI),
    ``num_samples`` and ``mode`` are set, ASHA's ``max_t``/``grace_period``/
    ``reduction_factor`` are filled in, and choices and conditions hold the values
    TrainConfig will see. ``model_dump()`` validates back to an equal spec.

    >>> spec = SweepSpec.from_yaml("search_spaces/quickstart.yaml")  # doctest: +SKIP
    >>> spec.train_config({"method": "minent", "lambda_ent_main": 1e-3}).method  # doctest: +SKIP
    'minent'
    """

    @model_validator(mode="wrap")
    @classmethod
    def _validate_in_full(cls, values: Any, handler: Any) -> "SweepSpec":
        if not isinstance(values, dict):
            return handler(values)
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
        values = {**self._fixed_settings(params), **params, "threads": self.trial_threads, "data": self.data,
                  "keep_snapshots": self.checkpoints.keep_rules}
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
        return space_rules.order(self.space)[0]

    def is_active(self, name: str, sampled: dict[str, Any]) -> bool:
        """Whether ``name`` is sampled, given the values sampled before it (in :meth:`param_order`)."""
        return space_rules.is_active(self.space[name], sampled)

    def bounds(self, name: str, sampled: dict[str, Any]) -> tuple[float, float]:
        """The [low, high] to sample a float/int parameter from, given the values sampled so far.

        Only entropy_high moves: its low bound is raised to a sampled entropy_low (rounded up
        onto its step grid) so that entropy_low <= entropy_high holds (the rule in ``space_rules``).
        """
        return space_rules.bounds(self.space, name, sampled, self.searcher.sampler == "grid")

    @property
    def entropy_high_moves(self) -> bool:
        """Whether entropy_high's low bound can be raised by a sampled entropy_low (see :meth:`bounds`)."""
        return space_rules.entropy_high_moves(self.space, self.searcher.sampler == "grid")

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
        return {name: space_rules.grid_values(param) for name, param in self.space.items()}

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
            lines.append(f"  first point {i}: " + ", ".join(f"{k}={space_rules.fmt(v)}" for k, v in point.items()))
        lines.append(f"scheduler: {self._describe_scheduler()}")
        gpu = f"{space_rules.fmt(self.resources.gpu)} GPU"
        lines.append(
            f"trials: {self.num_samples}, at most {self.max_concurrent} at a time, each holding "
            f"{space_rules.fmt(self.resources.cpu)} CPU and {gpu} (torch threads: {self.trial_threads}); retries after a failure: "
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
            f"ASHA on iteration: grace period {s.grace_period}, reduction factor {space_rules.fmt(s.reduction_factor)}, "
            f"max_t {s.max_t}; rungs at iterations {rungs}"
        )


# --- describe() helpers --------------------------------------------------------------------------


def _describe_setting(value: Any) -> str:
    if isinstance(value, dict):  # trainer.weights by backbone
        return "by backbone: " + ", ".join(f"{key} → {space_rules.fmt(entry)}" for key, entry in value.items())
    return space_rules.fmt(value)


def _describe_param(param: Param, moves: bool) -> str:
    text = f"categorical [{space_rules.fmt_list(param.choices)}]" if isinstance(param, CategoricalParam) else space_rules.describe_range(param)
    if moves:
        text += " (low bound raised to the sampled entropy_low)"
    for condition, values in (param.when or {}).items():
        text += f"  when {condition} in [{space_rules.fmt_list(values)}]"
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
