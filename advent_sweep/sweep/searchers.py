"""From a SweepSpec to Ray Tune's search algorithm (Optuna) and scheduler (ASHA or FIFO).

Samplers and schedulers are chosen by name from one table each; callers never branch
on type::

    search_alg = build_search_alg(spec)   # ConcurrencyLimiter(OptunaSearch(...))
    scheduler = build_scheduler(spec)     # ASHAScheduler(time_attr="iteration", ...)
    tune.TuneConfig(search_alg=search_alg, scheduler=scheduler, num_samples=spec.num_samples)

Both already carry ``metric`` and ``mode``: do not pass them to ``tune.TuneConfig`` too
(Ray refuses a metric set twice); pass ``spec.metric`` to ``ResultGrid.get_best_result``.

Nothing here starts Ray: building the searcher and scheduler needs no ``ray.init``.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import optuna
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from advent_sweep.sweep.spec import CategoricalParam, FloatParam, SweepSpec


class DefineByRun:
    """Optuna define-by-run search space of a spec: ``DefineByRun(spec)(trial)`` suggests every
    active parameter, in :meth:`SweepSpec.param_order` (conditions and entropy_low first).

    Inactive conditional parameters are not suggested: the trial's config lacks them and
    :meth:`SweepSpec.train_config` leaves them at their fixed/default value (unused by the
    method anyway). Returns None: OptunaSearch takes the suggested values as the trial's
    config (a returned dict would add constants to it; the fixed settings live in the spec).
    A class, not a closure, so Ray can pickle it with the searcher's state.
    """

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec

    def __call__(self, trial: optuna.Trial) -> None:
        sampled: dict[str, Any] = {}
        for name in self.spec.param_order():
            if self.spec.is_active(name, sampled):
                sampled[name] = self._suggest(trial, name, sampled)
        return None

    def _suggest(self, trial: optuna.Trial, name: str, sampled: dict[str, Any]) -> Any:
        param = self.spec.space[name]
        if isinstance(param, CategoricalParam):
            return trial.suggest_categorical(name, param.choices)
        low, high = self.spec.bounds(name, sampled)
        if isinstance(param, FloatParam):
            return trial.suggest_float(name, low, high, log=param.log, step=param.step)
        return trial.suggest_int(name, low, high, step=param.step, log=param.log)


def _startup(spec: SweepSpec) -> dict[str, int]:
    n = spec.searcher.n_startup_trials
    return {} if n is None else {"n_startup_trials": n}


def _tpe(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():  # group=True is marked experimental; it is what conditional spaces need
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=spec.searcher.seed, multivariate=True, group=spec.is_conditional, **_startup(spec)
        )


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler without its ``study.stop()`` after the last point.

    OptunaSearch drives the study with ask/tell, where ``stop()`` raises (Ray would log the
    error as a warning at the end of every grid sweep); Ray ends the sweep itself after
    ``num_samples`` trials, which for the grid sampler is the grid size.
    """

    def after_trial(self, study: optuna.Study, trial: Any, state: Any, values: Any) -> None:
        return None


SAMPLERS: dict[str, Callable[[SweepSpec], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "random": lambda spec: optuna.samplers.RandomSampler(seed=spec.searcher.seed),
    # GP and CMA-ES draw what they cannot model (conditional parameters, a moving entropy_high,
    # for CMA-ES also categoricals) at random; describe() says which, so no warning per trial.
    "gp": lambda spec: optuna.samplers.GPSampler(
        seed=spec.searcher.seed, warn_independent_sampling=False, **_startup(spec)
    ),
    "cmaes": lambda spec: optuna.samplers.CmaEsSampler(
        seed=spec.searcher.seed, warn_independent_sampling=False, **_startup(spec)
    ),
    "grid": lambda spec: GridSampler(spec.grid(), seed=spec.searcher.seed),
}

SCHEDULERS: dict[str, Callable[[SweepSpec], TrialScheduler]] = {
    "asha": lambda spec: ASHAScheduler(
        time_attr="iteration",  # the trainer's own reported iteration, not Ray's report count
        metric=spec.metric,
        mode=spec.mode,
        max_t=spec.scheduler.max_t,
        grace_period=spec.scheduler.grace_period,
        reduction_factor=spec.scheduler.reduction_factor,
    ),
    "fifo": lambda spec: FIFOScheduler(),
}


def build_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    """The Optuna sampler the spec names, seeded."""
    return SAMPLERS[spec.searcher.sampler](spec)


def build_search_alg(spec: SweepSpec) -> Searcher:
    """ConcurrencyLimiter(OptunaSearch(...)) for the spec; the study is named after the sweep.

    The study lives in memory and Ray checkpoints it with the searcher, so a resumed sweep
    goes on with it. ``points_to_evaluate`` are tried first, in order.
    """
    searcher = OptunaSearch(
        space=DefineByRun(spec),
        metric=spec.metric,
        mode=spec.mode,
        sampler=build_sampler(spec),
        points_to_evaluate=[dict(point) for point in spec.searcher.points_to_evaluate] or None,
        study_name=spec.name,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent)


def build_scheduler(spec: SweepSpec) -> TrialScheduler:
    """ASHA (time attribute: the trainer's ``iteration``) or FIFO, as the spec names."""
    return SCHEDULERS[spec.scheduler.type](spec)
